"""Chart archives pinned by a service (``kubernetes.helm.chart: {name, version, digest}``),
taken from the operator's chart cache — never fetched.

Owns: finding ``<name>-<version>.tgz`` in the chart cache directory (the operator fills
it; the name and version a pull request writes are checked again here so they can only
name a file directly in that directory), refusing it unless its sha256 is the pinned
digest, and unpacking it in memory within limits: the archive at most
``MAX_ARCHIVE_BYTES``, the decompressed tar at most what ``MAX_FILES`` files of
``MAX_BYTES`` in all can take (a gzip bomb stops there), regular files and directories
only (no links, devices or FIFOs), every member under the archive's one top directory,
no absolute path and no ``..``, every file UTF-8 text (as a vendored chart's must be).
Problems name the service file (line and column filled in by the loader) or the member.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import tarfile
import zlib
from pathlib import Path

from reconciler.core.crosscheck import MAX_TOOL_BYTES, MAX_TOOL_FILES
from reconciler.core.model import ChartArchive
from reconciler.core.yamldoc import Problem

#: The limits of one archive (a vendored chart's: crosscheck.MAX_TOOL_FILES/_BYTES).
MAX_ARCHIVE_BYTES = 8 << 20
MAX_FILES = MAX_TOOL_FILES
MAX_BYTES = MAX_TOOL_BYTES
#: The tar's own bytes besides the files' contents: a header and padding per member.
_TAR_OVERHEAD = (MAX_FILES * 2 + 16) * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_VERSION = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ArchiveProblem(Exception):
    """The archive cannot be used; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _fail(archive: ChartArchive, message: str) -> ArchiveProblem:
    return ArchiveProblem(Problem(archive.path, 1, 1, f"kubernetes.helm.chart: {message}"))


def archive_path(archive: ChartArchive, cache: Path | None) -> Path:
    """Where the archive must be (ArchiveProblem when it cannot be anywhere)."""
    if cache is None:
        raise _fail(archive, f"chart archive {archive.file_name} named, but this reconciler "
                    "has no chart cache (render.chart_cache in the daemon's configuration, "
                    "RECONCILER_CHART_CACHE for the command line)")
    if not (_NAME.fullmatch(archive.name) and _VERSION.fullmatch(archive.version)
            and _DIGEST.fullmatch(archive.digest)):
        raise _fail(archive, "not a chart name, version and sha256 digest")
    return cache / archive.file_name


def read_archive(archive: ChartArchive, cache: Path | None) -> bytes:
    """The archive's bytes, only when its digest is the pinned one."""
    path = archive_path(archive, cache)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ARCHIVE_BYTES + 1)
    except FileNotFoundError:
        raise _fail(archive, f"chart archive {archive.file_name} is not in the chart cache "
                    f"{cache} (the operator puts pinned charts there; nothing is "
                    "fetched)") from None
    except OSError as e:
        raise _fail(archive, f"chart archive {archive.file_name}: {e.strerror}") from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _fail(archive, f"chart archive {archive.file_name} is over the limit of "
                    f"{MAX_ARCHIVE_BYTES} bytes")
    found = "sha256:" + hashlib.sha256(data).hexdigest()
    if found != archive.digest:
        raise _fail(archive, f"chart archive {archive.file_name} in the chart cache has "
                    f"digest {found}, not the pinned {archive.digest}")
    return data


def _gunzip(archive: ChartArchive, data: bytes) -> bytes:
    cap = MAX_BYTES + _TAR_OVERHEAD
    d = zlib.decompressobj(wbits=31)
    try:
        raw = d.decompress(data, cap + 1)
    except zlib.error as e:
        raise _fail(archive, f"chart archive {archive.file_name} is not gzip: {e}") from None
    if len(raw) > cap or d.unconsumed_tail:
        raise _fail(archive, f"chart archive {archive.file_name} unpacks to more than "
                    f"{cap} bytes")
    return raw


def _member_path(archive: ChartArchive, member: tarfile.TarInfo, top: list[str]) -> str:
    """The member's path below the archive's top directory ('' for that directory)."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or \
            posixpath.normpath(name).startswith(".."):
        raise _fail(archive, f"chart archive {archive.file_name}: member {name!r} is not "
                    "a relative path inside the archive")
    parts = [x for x in parts if x not in ("", ".")]
    if not parts:
        return ""
    if not top:
        top.append(parts[0])
    if parts[0] != top[0]:
        raise _fail(archive, f"chart archive {archive.file_name}: member {name!r} is not "
                    f"under its top directory {top[0]!r}")
    return "/".join(parts[1:])


def unpack(archive: ChartArchive, data: bytes) -> tuple[tuple[str, str], ...]:
    """The chart's files (path below the top directory, text), within the limits."""
    raw = _gunzip(archive, data)
    files: dict[str, str] = {}
    total, top = 0, list[str]()
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_FILES * 2:
                    raise _fail(archive, f"chart archive {archive.file_name} has more "
                                f"than {MAX_FILES} files")
                rel = _member_path(archive, member, top)
                if member.isdir():
                    continue
                if not rel:
                    raise _fail(archive, f"chart archive {archive.file_name}: member "
                                f"{member.name!r} is not under a top directory")
                if not member.isfile():
                    raise _fail(archive, f"chart archive {archive.file_name}: member "
                                f"{member.name!r} is not a regular file (links and "
                                "devices are refused)")
                total += member.size
                if len(files) >= MAX_FILES or total > MAX_BYTES:
                    raise _fail(archive, f"chart archive {archive.file_name} is over the "
                                f"limit of {MAX_FILES} files, {MAX_BYTES} bytes")
                f = tar.extractfile(member)
                body = f.read(member.size) if f is not None else b""
                try:
                    files[rel] = body.decode()
                except UnicodeDecodeError:
                    raise _fail(archive, f"chart archive {archive.file_name}: member "
                                f"{member.name!r} is not UTF-8 text") from None
    except tarfile.TarError as e:
        raise _fail(archive, f"chart archive {archive.file_name} is not a tar archive: "
                    f"{e}") from None
    if "Chart.yaml" not in files:
        raise _fail(archive, f"chart archive {archive.file_name} has no Chart.yaml at its "
                    "top directory")
    return tuple(sorted(files.items()))
