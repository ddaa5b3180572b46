"""Cross-file validation: references between files, names, waves, referenced files.

Owns: every rule that needs more than one file — unknown group / service / database,
duplicate names, a cell in no wave or in two, file names matching metadata names,
referenced manifests, stacks and SQL files existing inside the repository, SQL steps
free of statements that would break their one transaction (``sqlcheck``) — and
reading the referenced files' text for the model. Works on whatever files did build,
so one run reports every error.

Also defines what it is handed (``Parsed``, one model file after parsing) and the file
limits (size, symlinks) that both it and the loader apply: the loader imports these
from here, so imports between the two go one way (loader → crosscheck).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.kinds import Built
from reconciler.core.model import Cell, Flag, Fleet, Migration, Release, Service
from reconciler.core.source import FileEntry, RepoSource
from reconciler.core.sqlcheck import check_sql
from reconciler.core.stackfiles import stack_file_problem
from reconciler.core.yamldoc import Problem, YamlProblem, parse, position

MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Parsed:
    """One model file after parsing, validation and building (what the cache holds)."""

    path: str
    kind: str
    doc: Any
    built: Built | None
    problems: tuple[Problem, ...]
    raw: bytes = b""

    def positioned(self) -> Any:
        """The document re-parsed with positions (for error messages only)."""
        try:
            return parse(self.path, self.raw)
        except YamlProblem:
            return self.doc


def file_limit_problem(entry: FileEntry) -> Problem | None:
    """A problem when the file may not be read at all (symlink, too large)."""
    if entry.is_symlink:
        return Problem(entry.path, 1, 1, "symbolic links are not allowed in the repository")
    if entry.size > MAX_FILE_BYTES:
        return Problem(entry.path, 1, 1,
                       f"file is {entry.size} bytes, over the limit of {MAX_FILE_BYTES}")
    return None


@dataclass
class CrossResult:
    """Errors, warnings and the referenced files' text."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


class _Ctx:
    def __init__(self, parsed: list[Parsed], entries: dict[str, FileEntry],
                 source: RepoSource) -> None:
        self.all = parsed
        self.parsed = [p for p in parsed if p.built is not None]
        #: kinds with a file that failed to build: references to them can't be judged
        self.incomplete = {p.kind for p in parsed if p.built is None}
        self.entries, self.source = entries, source
        self.result = CrossResult()
        self._positioned: dict[str, object] = {}
        self._by_kind: dict[str, list[Parsed]] = {}

    def of(self, kind: str) -> list[Parsed]:
        if not self._by_kind:
            for p in self.parsed:
                self._by_kind.setdefault(p.kind, []).append(p)
        return self._by_kind.get(kind, [])

    def _pos(self, p: Parsed, keys: list[str | int]) -> tuple[int, int]:
        if p.path not in self._positioned:
            self._positioned[p.path] = p.positioned()
        return position(self._positioned[p.path], keys)

    def err(self, p: Parsed, keys: list[str | int], message: str) -> None:
        self.result.errors.append(Problem(p.path, *self._pos(p, keys), message))

    def warn(self, p: Parsed, keys: list[str | int], message: str) -> None:
        self.result.warnings.append(Problem(p.path, *self._pos(p, keys), message))


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def _expected_name(p: Parsed) -> str:
    if p.kind == "Service":
        return posixpath.basename(posixpath.dirname(p.path))
    return _stem(p.path)


def _check_names(ctx: _Ctx) -> None:
    for kind in ("Cell", "Service", "Release", "Migration", "Flag"):
        seen: dict[str, str] = {}
        for p in ctx.of(kind):
            name = p.doc["metadata"]["name"]
            if kind != "Migration" and name != _expected_name(p):
                ctx.err(p, ["metadata", "name"],
                        f"{kind} name {name!r} must match its file name {_expected_name(p)!r}")
            key = f"{p.doc['spec'].get('service', '')}/{name}" if kind == "Migration" else name
            if key in seen:
                ctx.err(p, ["metadata", "name"],
                        f"duplicate {kind} name {name!r} (also in {seen[key]})")
            seen.setdefault(key, p.path)


def _check_fleet(ctx: _Ctx) -> Parsed | None:
    fleets = ctx.of("Fleet")
    if not fleets:
        if not any(p.kind == "Fleet" for p in ctx.all):
            ctx.result.errors.append(Problem("reconciler.yaml", 1, 1,
                                             "missing reconciler.yaml (kind Fleet)"))
        return None
    for extra in fleets[1:]:
        ctx.err(extra, [], f"second Fleet file (first is {fleets[0].path})")
    return fleets[0]


def _cell_groups(ctx: _Ctx) -> dict[str, list[Parsed]]:
    groups: dict[str, list[Parsed]] = {}
    for p in ctx.of("Cell"):
        cell: Cell = p.built.value  # type: ignore[union-attr]
        groups.setdefault(cell.group, []).append(p)
    return groups


def _check_waves(ctx: _Ctx, fp: Parsed, groups: dict[str, list[Parsed]]) -> None:
    fleet: Fleet = fp.built.value  # type: ignore[union-attr]
    wave_of: dict[str, str] = {}
    names: set[str] = set()
    for i, wave in enumerate(fleet.waves):
        if wave.name in names:
            ctx.err(fp, ["spec", "waves", i, "name"], f"duplicate wave name {wave.name!r}")
        names.add(wave.name)
        for j, g in enumerate(wave.groups):
            keys: list[str | int] = ["spec", "waves", i, "groups", j]
            if g in wave_of:
                ctx.err(fp, keys, f"group {g!r} is in two waves: {wave_of[g]!r} and "
                                  f"{wave.name!r}")
            elif g not in groups and "Cell" not in ctx.incomplete:
                ctx.err(fp, keys, f"wave {wave.name!r} names unknown group {g!r} "
                                  "(no cell belongs to it)")
            wave_of.setdefault(g, wave.name)
    for g, cells in sorted(groups.items()):
        if g not in wave_of:
            for p in cells:
                ctx.err(p, ["spec", "group"], f"group {g!r} is in no wave of reconciler.yaml")


def _check_releases(ctx: _Ctx, services: dict[str, Parsed], groups: set[str]) -> None:
    seen: dict[str, str] = {}
    for p in ctx.of("Release"):
        rel: Release = p.built.value  # type: ignore[union-attr]
        if rel.service not in services and "Service" not in ctx.incomplete:
            ctx.err(p, ["spec", "service"], f"unknown service {rel.service!r}")
        if rel.service in seen:
            ctx.err(p, ["spec", "service"],
                    f"service {rel.service!r} already has a release in {seen[rel.service]}")
        seen.setdefault(rel.service, p.path)
        for i, entry in enumerate(rel.entries):
            for j, g in enumerate(entry.groups):
                if g not in groups and "Cell" not in ctx.incomplete:
                    ctx.err(p, ["spec", "versions", i, "groups", j], f"unknown group {g!r}")


def _check_flags(ctx: _Ctx, services: dict[str, Parsed], groups: set[str]) -> None:
    for p in ctx.of("Flag"):
        flag: Flag = p.built.value  # type: ignore[union-attr]
        for i, entry in enumerate(flag.entries):
            for j, g in enumerate(entry.groups):
                if g not in groups and "Cell" not in ctx.incomplete:
                    ctx.err(p, ["spec", "groups", i, "groups", j], f"unknown group {g!r}")
        for i, v in enumerate(flag.variants):
            if v.requires is not None and v.requires.service not in services and \
                    "Service" not in ctx.incomplete:
                ctx.err(p, ["spec", "variants", i, "requires", "service"],
                        f"variant {v.name!r} requires unknown service {v.requires.service!r}")


def _read_text(ctx: _Ctx, p: Parsed, keys: list[str | int], path: str) -> bool:
    entry = ctx.entries.get(path)
    if entry is None:
        ctx.err(p, keys, f"file {path!r} does not exist")
        return False
    problem = file_limit_problem(entry)
    if problem:
        ctx.err(p, keys, f"{path}: {problem.message}")
        return False
    try:
        ctx.result.files[path] = ctx.source.read(path).decode("utf-8")
    except UnicodeDecodeError:
        ctx.err(p, keys, f"file {path!r} is not UTF-8 text")
        return False
    return True


#: A chart or Kustomize directory: at most this many files and bytes in all.
MAX_TOOL_FILES = 1000
MAX_TOOL_BYTES = 8 << 20


def _check_tool_dir(ctx: _Ctx, p: Parsed, svc: Service) -> None:
    """Every file of the chart or Kustomize directory read (all must be UTF-8 text),
    its marker file present, within the size limits; Helm values files read."""
    root = svc.tool_root
    if root is None:
        if svc.helm is not None:  # a chart archive: its values files are in the repository
            for i, path in enumerate(svc.helm.values):
                _read_text(ctx, p, ["spec", "kubernetes", "helm", "values", i], path)
        return
    keys: list[str | int] = (["spec", "kubernetes", "helm", "chart"] if svc.helm
                             else ["spec", "kubernetes", "kustomize"])
    prefix = root.rstrip("/") + "/"
    found = sorted(x for x in ctx.entries if x.startswith(prefix))
    marker = ("Chart.yaml",) if svc.helm else (
        "kustomization.yaml", "kustomization.yml", "Kustomization")
    if not any(f"{prefix}{m}" in ctx.entries for m in marker):
        ctx.err(p, keys, f"{root!r} has no {' or '.join(marker)}")
        return
    total = sum(ctx.entries[x].size for x in found)
    if len(found) > MAX_TOOL_FILES or total > MAX_TOOL_BYTES:
        ctx.err(p, keys, f"{root!r} has {len(found)} files, {total} bytes: over the limit "
                         f"of {MAX_TOOL_FILES} files, {MAX_TOOL_BYTES} bytes")
        return
    for path in found:
        _read_text(ctx, p, keys, path)
    for i, path in enumerate(svc.helm.values if svc.helm else ()):
        _read_text(ctx, p, ["spec", "kubernetes", "helm", "values", i], path)


def _check_service_files(ctx: _Ctx, p: Parsed) -> None:
    svc: Service = p.built.value  # type: ignore[union-attr]
    for i, path in enumerate(svc.manifests):
        _read_text(ctx, p, ["spec", "kubernetes", "manifests", i], path)
    _check_tool_dir(ctx, p, svc)
    if svc.terraform is None:
        return
    prefix = svc.terraform.rstrip("/") + "/"
    stack = sorted(x for x in ctx.entries if x.startswith(prefix))
    if not stack:
        ctx.err(p, ["spec", "terraform", "stack"],
                f"Terraform stack directory {svc.terraform!r} has no files")
    for path in stack:
        problem = stack_file_problem(path[len(prefix):])
        if problem:
            ctx.result.errors.append(Problem(path, 1, 1, problem))
            continue
        _read_text(ctx, p, ["spec", "terraform", "stack"], path)


def _step_files(m: Migration) -> Iterable[tuple[str, int | None, str]]:
    for key in ("expand", "contract", "rollback"):
        step = getattr(m, key)
        if step is None:
            continue
        for i, f in enumerate(step.files):
            yield key, i, f
        if step.job:
            yield key, None, step.job


def _check_migrations(ctx: _Ctx, services: dict[str, Parsed]) -> None:
    checked: set[str] = set()  # SQL files judged by sqlcheck (a file may serve two steps)
    for p in ctx.of("Migration"):
        mig: Migration = p.built.value  # type: ignore[union-attr]
        folder = posixpath.basename(posixpath.dirname(p.path))
        if mig.service != folder:
            ctx.err(p, ["spec", "service"],
                    f"migration of service {mig.service!r} must live in migrations/"
                    f"{mig.service}/, not migrations/{folder}/")
        sp = services.get(mig.service)
        if sp is None:
            if "Service" not in ctx.incomplete:
                ctx.err(p, ["spec", "service"], f"unknown service {mig.service!r}")
        elif mig.database not in sp.built.value.databases:  # type: ignore[union-attr]
            ctx.err(p, ["spec", "database"], f"service {mig.service!r} declares no database "
                                             f"{mig.database!r} (spec.databases)")
        for key, i, path in _step_files(mig):
            keys: list[str | int] = ["spec", key, "sql", i] if i is not None else [
                "spec", key, "job"]
            if _read_text(ctx, p, keys, path) and i is not None and path not in checked:
                checked.add(path)
                ctx.result.errors.extend(check_sql(path, ctx.result.files[path]))


def _released_groups(ctx: _Ctx) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in ctx.of("Release"):
        rel: Release = p.built.value  # type: ignore[union-attr]
        out.setdefault(rel.service, set()).update(g for e in rel.entries for g in e.groups)
    return out


def _needed_databases(ctx: _Ctx, services: dict[str, Parsed]) -> dict[str, list[tuple[str,
                                                                                   str]]]:
    """Per group: (service, database) pairs its cells must declare."""
    need: dict[str, list[tuple[str, str]]] = {}
    for name, groups in sorted(_released_groups(ctx).items()):
        sp = services.get(name)
        if sp is None:
            continue
        for g in groups:
            need.setdefault(g, []).extend(
                (name, db) for db in sp.built.value.databases)  # type: ignore[union-attr]
    return need


def _check_cell_databases(ctx: _Ctx, services: dict[str, Parsed]) -> None:
    need = _needed_databases(ctx, services)
    for p in ctx.of("Cell"):
        cell: Cell = p.built.value  # type: ignore[union-attr]
        wanted = need.get(cell.group)
        if not wanted:
            continue
        have = {d.name for d in cell.databases}
        for name, db in sorted(wanted):
            if db not in have:
                ctx.err(p, ["spec"], f"cell runs service {name!r}, which uses database "
                                     f"{db!r}, but declares no such database")


def check(parsed: list[Parsed], entries: dict[str, FileEntry],
          source: RepoSource) -> CrossResult:
    """Run every cross-file rule over the files that built."""
    ctx = _Ctx(parsed, entries, source)
    _check_names(ctx)
    groups = _cell_groups(ctx)
    fp = _check_fleet(ctx)
    if fp is not None:
        _check_waves(ctx, fp, groups)
    services = {p.built.value.name: p for p in ctx.of("Service")}  # type: ignore[union-attr]
    _check_releases(ctx, services, set(groups))
    _check_flags(ctx, services, set(groups))
    for p in services.values():
        _check_service_files(ctx, p)
    _check_migrations(ctx, services)
    _check_cell_databases(ctx, services)
    return ctx.result

