"""Splitting an SQL file into statements, each with the line and column it starts at.

Owns: a small lexer that knows PostgreSQL's quoting (``'…'``, ``E'…'``, ``"…"``,
``$tag$…$tag$``) and comments (``--``, nested ``/* */``), so that a failing statement
can be reported as ``file:line:col``. A SQL-standard function body ``BEGIN ATOMIC … END``
is kept inside its statement: as psql does, ``;`` ends a statement only outside such a
block, and within one every ``CASE`` and ``BEGIN`` opens a level that ``END`` closes.
Pure: no I/O (shared by the loader's checks in ``sqlcheck`` and the migrations adapter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")
_ATOMIC = re.compile(r"\s+ATOMIC\b", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One statement of a file: its text and where it starts (1-based)."""

    text: str
    offset: int  # 0-based character offset in the file

    def position(self, source: str, char_in_statement: int = 1) -> tuple[int, int]:
        """Line and column in ``source`` of 1-based character ``char_in_statement``."""
        index = self.offset + max(char_in_statement, 1) - 1
        before = source[:index]
        return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    """Index just after the quoted literal starting at ``i``."""
    j = i + 1
    while j < len(text):
        ch = text[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if text.startswith(quote, j + 1):
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)


def _skip_block_comment(text: str, i: int) -> int:
    depth, j = 0, i
    while j < len(text):
        if text.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif text.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(text)


def _skip_line_comment(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _skip_dollar(text: str, i: int) -> int | None:
    match = _DOLLAR.match(text, i)
    if match is None or (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
        return None
    end = text.find(match.group(0), match.end())
    return len(text) if end < 0 else end + len(match.group(0))


def _next_token_end(text: str, i: int) -> tuple[int, bool]:
    """Where the token at ``i`` ends, and whether it is code (not a comment)."""
    ch = text[i]
    if text.startswith("--", i):
        return _skip_line_comment(text, i), False
    if text.startswith("/*", i):
        return _skip_block_comment(text, i), False
    if ch in "'\"":
        escaped = ch == "'" and i > 0 and text[i - 1] in "eE" and (
            i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
        return _skip_quoted(text, i, ch, escaped), True
    if ch == "$":
        end = _skip_dollar(text, i)
        if end is not None:
            return end, True
    return i + 1, not ch.isspace()


def _word_at(text: str, i: int) -> str | None:
    """The keyword or identifier starting at ``i`` (not in the middle of one)."""
    if i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$"):
        return None
    match = _WORD.match(text, i)
    return match.group(0) if match else None


def _atomic_depth(text: str, i: int, word: str, depth: int) -> int:
    """The ``BEGIN ATOMIC`` nesting after ``word`` at ``i``."""
    upper = word.upper()
    if upper == "BEGIN" and (depth > 0 or _ATOMIC.match(text, i + len(word))):
        return depth + 1
    if depth > 0 and upper == "CASE":
        return depth + 1
    if depth > 0 and upper == "END":
        return depth - 1
    return depth


def split_statements(text: str) -> list[Statement]:
    """The statements of ``text`` in order; empty ones (only comments) are dropped."""
    out: list[Statement] = []
    start, code_start, i, depth = 0, -1, 0, 0
    while i < len(text):
        if text[i] == ";" and depth == 0:
            if code_start >= 0:
                out.append(Statement(text[code_start:i + 1], code_start))
            start, code_start, i = i + 1, -1, i + 1
            continue
        word = _word_at(text, i) if text[i].isalpha() or text[i] == "_" else None
        if word is not None:
            depth = _atomic_depth(text, i, word, depth)
            end, is_code = i + len(word), True
        else:
            end, is_code = _next_token_end(text, i)
        if is_code and code_start < 0:
            code_start = i
        i = end
    if code_start >= 0 and text[start:].strip():
        out.append(Statement(text[code_start:], code_start))
    return out


def leading_words(statement: str, limit: int = 8) -> list[str]:
    """The first ``limit`` keywords / identifiers of a statement, upper-cased.

    Comments are skipped; anything else (a quoted literal, punctuation) ends the list, so
    ``COMMIT`` in a string or a dollar-quoted body is never one of them.
    """
    out: list[str] = []
    i = 0
    while i < len(statement) and len(out) < limit:
        ch = statement[i]
        word = _word_at(statement, i) if ch.isalpha() or ch == "_" else None
        if word is not None:
            out.append(word.upper())
            i += len(word)
            continue
        end, is_code = _next_token_end(statement, i)
        if is_code and not ch.isspace():
            break
        i = end
    return out
