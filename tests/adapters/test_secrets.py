"""The one secret reader: file first, then the environment; one line ending removed;
errors name the file or the variable, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.secrets import read_secret

VALUE = "s3cr3t-never-in-messages"

CASES = [  # (file content or None, env name, environ, expected)
    (VALUE + "\n", None, {}, VALUE),
    (VALUE + "\r\n", None, {}, VALUE),
    (VALUE + "\n\n", None, {}, VALUE + "\n"),
    (VALUE, "IGNORED", {"IGNORED": "other"}, VALUE),
    (None, "TOKEN", {"TOKEN": VALUE + "\n"}, VALUE),
    (None, None, {"TOKEN": VALUE}, None),
]


@pytest.mark.parametrize(("content", "env", "environ", "expected"), CASES)
def test_reads(tmp_path: Path, content: str | None, env: str | None,
               environ: dict[str, str], expected: str | None) -> None:
    file = None
    if content is not None:
        file = tmp_path / "secret"
        file.write_text(content, newline="")
    assert read_secret(str(file) if file else None, env, environ, "the token") == expected


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"cannot read the token from file .*nope"):
        read_secret(str(tmp_path / "nope"), None, {}, "the token")


def test_unset_variable_names_it_not_the_value() -> None:
    with pytest.raises(PermanentError) as e:
        read_secret(None, "TOKEN", {"OTHER": VALUE}, "the token")
    assert "TOKEN" in str(e.value) and VALUE not in str(e.value)


def test_binary_file_is_refused_without_its_content(tmp_path: Path) -> None:
    file = tmp_path / "bin"
    file.write_bytes(b"\xff\xfe" + VALUE.encode())
    with pytest.raises(PermanentError) as e:
        read_secret(str(file), None, {}, "the token")
    assert "not UTF-8" in str(e.value) and VALUE not in str(e.value)
