"""Counting words in messages: ``plural(1, "step")`` is ``1 step``, ``plural(2, "step")``
is ``2 steps``. Pure."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, in the plural (``many``, or ``word`` + ``s``) unless n is 1."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
