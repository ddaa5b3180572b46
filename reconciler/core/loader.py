"""The loader: a whole repository revision into a validated ``DesiredState``, or every error.

Owns: which path holds which kind, per-file parse and schema validation behind a parse
cache keyed by content id (Git blob id), and the hand-off to the cross-file checks
(``crosscheck``, which also defines the file limits and the ``Parsed`` record both
apply; re-exported here), then rendering every template for every cell
(``validate_render``). All or nothing: one error rejects the revision. Every path is
normalised first (``source.path_problem``): a ``..``, absolute or ``.git`` path, or a
symlink, is a ``path:1:1`` error and the path is never read.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.core import crosscheck
from reconciler.core.crosscheck import MAX_FILE_BYTES, Parsed, file_limit_problem
from reconciler.core.flags import stand_ins
from reconciler.core.kinds import Built, cell, flag, fleet, migration, release, service
from reconciler.core.model import Cell, DesiredState, Flag, Fleet, Migration, Release, Service
from reconciler.core.schema import fast, validate_document
from reconciler.core.source import FileEntry, RepoSource, path_problem
from reconciler.core.toolrender import ToolRenderer
from reconciler.core.validate_render import RenderCache, check_templates
from reconciler.core.validate_tools import ToolCheckCache, check_tool_services
from reconciler.core.yamldoc import Problem, YamlProblem, parse, parse_fast, position

__all__ = ["MAX_FILE_BYTES", "LoadResult", "ParseCache", "ParseTexts", "Parsed", "TextOutcome",
           "classify", "file_limit_problem", "load_repository", "parse_text", "parse_texts",
           "quick_valid"]

_KINDS: tuple[tuple[re.Pattern[str], str, str, Callable[[str, Any], Built]], ...] = (
    (re.compile(r"^reconciler\.ya?ml$"), "Fleet", "fleet", fleet.build),
    (re.compile(r"^cells/[^/]+\.ya?ml$"), "Cell", "cell", cell.build),
    (re.compile(r"^services/[^/]+/service\.ya?ml$"), "Service", "service", service.build),
    (re.compile(r"^releases/[^/]+\.ya?ml$"), "Release", "release", release.build),
    (re.compile(r"^migrations/[^/]+/[^/]+\.ya?ml$"), "Migration", "migration", migration.build),
    (re.compile(r"^flags/[^/]+\.ya?ml$"), "Flag", "flag", flag.build),
)


@dataclass
class ParseCache:
    """Parsed files by (path, content id); keeps the last two loads' entries."""

    entries: dict[tuple[str, str], Parsed] = field(default_factory=dict)
    misses: int = 0
    previous: set[tuple[str, str]] = field(default_factory=set)
    renders: RenderCache = field(default_factory=RenderCache)
    tool_checks: ToolCheckCache = field(default_factory=ToolCheckCache)

    def get(self, key: tuple[str, str]) -> Parsed | None:
        return self.entries.get(key)

    def put(self, key: tuple[str, str], value: Parsed) -> None:
        self.misses += 1
        self.entries[key] = value

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        """Drop entries used by neither of the last two loads (memory stays bounded)."""
        keep = keys | self.previous
        for k in [k for k in self.entries if k not in keep]:
            del self.entries[k]
        self.previous = keys


@dataclass(frozen=True)
class LoadResult:
    """The outcome of loading one revision."""

    revision: str
    desired: DesiredState | None
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()
    parsed: int = 0  # files parsed in this load (cache misses)

    @property
    def ok(self) -> bool:
        return self.desired is not None


def classify(path: str) -> tuple[str, str, Callable[[str, Any], Built]] | None:
    """The kind, schema name and builder for a model file path; None for other files."""
    for pattern, kind, schema_name, builder in _KINDS:
        if pattern.match(path):
            return kind, schema_name, builder
    return None


#: What ``parse_text`` says of one file: its value and None, or None and why it is
#: refused; and whether the value passed its schema's quick check (``schema.fast``;
#: False: not known, ``validate_document`` decides).
TextOutcome = tuple[Any, Problem | None, bool]
#: Parses YAML texts, each as ``parse_text`` does, for every (path, bytes) in order.
#: Consumed lazily: each outcome is checked before the next one is asked for.
ParseTexts = Callable[[Sequence[tuple[str, bytes]]], Iterable[TextOutcome]]


def parse_text(path: str, raw: bytes) -> TextOutcome:
    """``raw`` parsed (``yamldoc.parse_fast``) and quickly checked against the schema of
    the file's kind, or why it is refused."""
    try:
        doc = parse_fast(path, raw)
    except YamlProblem as e:
        return None, e.problem, False
    return doc, None, quick_valid(path, doc)


def quick_valid(path: str, doc: Any) -> bool:
    """Whether ``doc`` (the file at ``path``, parsed) passes its kind's quick schema check
    (False: not known; ``validate_document`` decides)."""
    kind = classify(path)
    quick = fast(kind[1]) if kind is not None else None
    return quick is not None and quick(doc)


def parse_texts(texts: Sequence[tuple[str, bytes]]) -> list[TextOutcome]:
    """Every text parsed in turn (the default ``ParseTexts``)."""
    return [parse_text(path, raw) for path, raw in texts]


def _checked_file(entry: FileEntry, raw: bytes, outcome: TextOutcome) -> Parsed:
    """The parsed file, schema-checked and built (``outcome``: ``raw`` parsed)."""
    doc, problem, valid = outcome
    kind, schema_name, builder = classify(entry.path) or ("", "", fleet.build)
    if problem is not None:
        return Parsed(entry.path, kind, None, None, (problem,), raw)
    if not valid and validate_document(entry.path, doc, schema_name):
        rt = parse(entry.path, raw)
        problems = validate_document(entry.path, rt, schema_name) or [Problem(
            entry.path, 1, 1, "the document is valid only if yes/no/on/off are read as "
            "strings, not booleans: quote them")]
        return Parsed(entry.path, kind, doc, None, tuple(problems), raw)
    built = builder(entry.path, doc)
    if built.problems:
        built = builder(entry.path, parse(entry.path, raw))
    return Parsed(entry.path, kind, doc, built, built.problems, raw)


def _parse_files(source: RepoSource, files: list[FileEntry],
                 parse_many: ParseTexts) -> list[Parsed]:
    """Each file read, parsed (all texts by one call of ``parse_many``) and checked."""
    out: list[Parsed | None] = []
    texts: list[tuple[str, bytes]] = []
    for entry in files:
        limit = file_limit_problem(entry)
        if limit:
            kind = (classify(entry.path) or ("",))[0]
            out.append(Parsed(entry.path, kind, None, None, (limit,)))
        else:
            out.append(None)
            texts.append((entry.path, source.read(entry.path)))
    if not texts:
        return [p for p in out if p is not None]
    outcomes = iter(parse_many(texts))
    raws = iter(texts)
    done: list[Parsed] = []
    for entry, parsed in zip(files, out, strict=True):
        if parsed is None:
            parsed = _checked_file(entry, next(raws)[1], next(outcomes))
        done.append(parsed)
    return done


def _parse_all(source: RepoSource, entries: dict[str, FileEntry],
               cache: ParseCache, parse_many: ParseTexts) -> list[Parsed]:
    keys: list[tuple[str, str]] = []
    missing: list[FileEntry] = []
    for path in sorted(entries):
        if classify(path) is None:
            continue
        key = (path, entries[path].content_id)
        keys.append(key)
        if cache.get(key) is None:
            missing.append(entries[path])
    for entry, parsed in zip(missing, _parse_files(source, missing, parse_many), strict=True):
        cache.put((entry.path, entry.content_id), parsed)
    out = [cache.entries[k] for k in keys]
    cache.keep_only(set(keys))
    return out


def _assemble(revision: str, parsed: list[Parsed], files: dict[str, str],
              entries: dict[str, FileEntry]) -> DesiredState:
    def values(kind: str) -> list[Any]:
        return [p.built.value for p in parsed if p.kind == kind and p.built]

    fleets: list[Fleet] = values("Fleet")
    cells: list[Cell] = values("Cell")
    services: list[Service] = values("Service")
    releases: list[Release] = values("Release")
    migrations: list[Migration] = values("Migration")
    flags: list[Flag] = values("Flag")
    for f in flags:  # a flag is planned as a service whose versions are its variants
        svc, rel = stand_ins(f)
        services.append(svc)
        releases.append(rel)
    return DesiredState(
        revision=revision, fleet=fleets[0],
        cells={c.name: c for c in cells}, services={s.name: s for s in services},
        releases={r.service: r for r in releases}, flags={f.name: f for f in flags},
        migrations=tuple(sorted(migrations, key=lambda m: (m.service, m.id))),
        file_ids={p: e.content_id for p, e in entries.items()}, files=files)


def _checked_entries(found: Iterable[FileEntry]) -> tuple[dict[str, FileEntry],
                                                          list[Problem], list[Problem]]:
    """The entries with normal paths; a problem for every other one and every symlink,
    a warning for every skipped entry (a socket, FIFO or device: left out).

    An abnormal path (``..``, absolute, ``.git``, ...) is left out of what the rest of
    the load sees, so no later step reads, copies or writes it; its problem alone
    rejects the revision.
    """
    entries: dict[str, FileEntry] = {}
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for e in found:
        if e.skipped is not None:
            warnings.append(Problem(e.path, 1, 1, f"{e.skipped}: skipped"))
            continue
        why = path_problem(e.path)
        if why is not None:
            errors.append(Problem(e.path, 1, 1, why))
            continue
        if e.is_symlink:
            errors.append(Problem(e.path, 1, 1,
                                  "symbolic links are not allowed in the repository"))
        if e.path in entries:
            errors.append(Problem(e.path, 1, 1, "the same path appears twice"))
        entries[e.path] = e
    return entries, errors, warnings


def load_repository(source: RepoSource, cache: ParseCache | None = None,
                    parse_many: ParseTexts = parse_texts,
                    tools: ToolRenderer | None = None) -> LoadResult:
    """Load and validate the whole revision ``source``; all errors, or a DesiredState.
    ``parse_many`` parses the YAML of every file not in ``cache`` (its caller may spread
    that over processes; the result is the same). ``tools`` renders services written as
    Helm charts or Kustomize directories (the revision is rejected when one must be
    rendered and no renderer is given); the desired state keeps it for later renders.

    The cyclic garbage collector is paused while loading (as while planning): a cold
    load allocates a few million small acyclic values that stay alive, and collection
    passes over them cost ~15% of it at 10,000 cells. Its previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(source, cache if cache is not None else ParseCache(), parse_many, tools)
    finally:
        if was_enabled:
            gc.enable()


def _load(source: RepoSource, cache: ParseCache, parse_many: ParseTexts,
          tools: ToolRenderer | None) -> LoadResult:
    misses_before = cache.misses
    entries, errors, skipped = _checked_entries(source.entries())
    parsed = _parse_all(source, entries, cache, parse_many)
    errors += [p for item in parsed for p in item.problems]
    cross = crosscheck.check(parsed, entries, source)
    errors += cross.errors
    warnings = (*skipped, *cross.warnings)
    if errors:
        return LoadResult(source.revision, None, tuple(_sorted(errors)), warnings,
                          cache.misses - misses_before)
    desired = replace(_assemble(source.revision, parsed, cross.files, entries), tools=tools)
    rendered = check_templates(desired, cache.renders)  # what every tick would render
    rendered += _at_tool_key(check_tool_services(desired, tools, cache.tool_checks), parsed)
    if rendered:
        return LoadResult(source.revision, None, tuple(_sorted(rendered)), warnings,
                          cache.misses - misses_before)
    return LoadResult(source.revision, desired, (), warnings, cache.misses - misses_before)


def _at_tool_key(problems: list[Problem], parsed: list[Parsed]) -> list[Problem]:
    """A tool's problem that names a service file without a position (a chart archive
    missing or not the pinned one, no tool here) at the service's chart or Kustomize
    key."""
    if not problems:
        return problems
    services = {p.path: p for p in parsed if p.kind == "Service"}
    out = []
    for pr in problems:
        item = services.get(pr.path)
        if item is None or (pr.line, pr.col) != (1, 1):
            out.append(pr)
            continue
        doc = item.positioned()
        kube = doc.get("spec", {}).get("kubernetes", {}) if isinstance(doc, dict) else {}
        keys: list[str | int] = ["spec", "kubernetes"]
        keys += ["helm", "chart"] if isinstance(kube, dict) and "helm" in kube else \
            ["kustomize"]
        out.append(Problem(pr.path, *position(doc, keys), pr.message))
    return out


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(set(problems), key=lambda p: (p.path, p.line, p.col, p.message))
