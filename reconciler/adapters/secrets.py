"""Reading a secret named by configuration: a file, or an environment variable.

Owns: the one way every adapter and the daemon read a secret (the Git password, a
database's connection secret, the webhook secret): read when used, never cached, one
trailing line ending removed, and errors that name the file or the variable but never
the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.adapters.errors import PermanentError


def _strip_line_end(text: str) -> str:
    """``text`` without one trailing ``\\n`` (or ``\\r\\n``), as ``echo`` leaves it."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def _read_file(path: str, what: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise PermanentError(f"cannot read {what} from file {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PermanentError(f"{what} in file {path} is not UTF-8 text") from None


def read_secret(file: str | None, env_name: str | None, environ: Mapping[str, str],
                what: str) -> str | None:
    """The secret in ``file``, else in the variable ``env_name`` of ``environ``; None when
    neither is named. ``what`` names the secret in messages (e.g. ``the Git password``).

    Raises PermanentError when the file cannot be read or the variable is not set."""
    if file:
        return _strip_line_end(_read_file(file, what))
    if env_name:
        if env_name not in environ:
            raise PermanentError(f"environment variable {env_name} ({what}) is not set")
        return _strip_line_end(environ[env_name])
    return None
