"""What a merge will do: the preview ``reconciler diff`` prints. Pure.

Owns: turning a base and a head desired state, the live snapshot the head is planned
against (by default the fleet settled on the base) and an instant into a ``Preview`` —
for every cell the plan changes, in wave order: the rendered manifests before → after
(unified diffs, fields the server owns masked, Secret values never shown), the
Terraform inputs that change per stack (a real plan summary is added by the caller), and
the SQL statements of every expand / contract / rollback step; plus cells whose
manifests change without any planned step (the planner applies manifests with a version
change only), holds, refusals and warnings. A server-side dry-run's answers (read by the
caller) are turned into diffs here too (``server_diffs``).
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import yaml

from reconciler.core.hashing import terraform_variables
from reconciler.core.live import LiveSnapshot
from reconciler.core.model import Cell, DesiredState, MigrationStep
from reconciler.core.phases import cell_phases
from reconciler.core.plan import Plan, Step, StepKind
from reconciler.core.planner import plan as make_plan
from reconciler.core.render import RenderError, default_context, render_service, template_files
from reconciler.core.sqlscript import split_statements
from reconciler.core.validate_render import declared_outputs

#: Metadata the API server writes (never part of what we apply): masked in every diff.
SERVER_OWNED_METADATA = ("managedFields", "resourceVersion", "uid", "generation",
                         "creationTimestamp", "selfLink", "deletionTimestamp",
                         "deletionGracePeriodSeconds", "ownerReferences")
#: Annotations that change on every apply or belong to other tools (masked).
MASKED_ANNOTATIONS = ("reconciler.dev/applied-hash",
                      "kubectl.kubernetes.io/last-applied-configuration",
                      "deployment.kubernetes.io/revision")
#: libyaml's emitter when PyYAML has it (the pure-Python one is ~10x slower).
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: What a Secret's values are shown as.
SENSITIVE = "(sensitive value)"
SENSITIVE_CHANGED = "(sensitive value, changed)"

#: Step kinds that run SQL (or a Job) against a cell's database.
_MIGRATION_KINDS = {StepKind.MIGRATION_EXPAND: "expand", StepKind.MIGRATION_CONTRACT: "contract",
                    StepKind.MIGRATION_ROLLBACK: "rollback"}


@dataclass(frozen=True)
class ObjectDiff:
    """One Kubernetes object before → after: ``added``, ``removed``, ``changed``,
    ``unchanged`` (no diff text), ``refused`` (why the apply would fail) or ``skipped``
    (why the server could not be asked)."""

    ref: str
    change: str
    diff: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": self.ref, "change": self.change, "diff": self.diff}
        if self.message:
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class TerraformPlanSummary:
    """A real plan of one stack in one cell, by the engine the daemon would use."""

    engine: str
    add: int = 0
    change: int = 0
    destroy: int = 0
    resources: tuple[tuple[str, str], ...] = ()  # (address, action)
    note: str = ""  # e.g. "no recorded state: planned as a first apply"
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "add": self.add, "change": self.change,
                "destroy": self.destroy, "note": self.note, "error": self.error,
                "resources": [{"address": a, "action": x} for a, x in self.resources]}


@dataclass(frozen=True)
class TerraformChange:
    """A stack whose inputs change in one cell: which variables and files."""

    stack: str
    variables: tuple[tuple[str, str, str], ...]  # (name, before JSON, after JSON)
    files: tuple[tuple[str, str], ...]  # (file in the stack, added|removed|changed)
    plan: TerraformPlanSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack,
                "variables": [{"name": n, "before": b, "after": a}
                              for n, b, a in self.variables],
                "files": [{"file": f, "change": c} for f, c in self.files],
                "plan": self.plan.to_json() if self.plan else None}


@dataclass(frozen=True)
class CellChange:
    """One service in one cell: where it goes, the steps, and what they change."""

    service: str
    wave: str
    wave_index: int
    waves: int
    cell: str
    from_version: str | None
    to_version: str | None
    action: str  # install | upgrade | rollback | held | refused | none | removed
    steps: tuple[str, ...] = ()
    when: str = ""  # "due now", or what the first step waits for
    objects: tuple[ObjectDiff, ...] = ()
    terraform: TerraformChange | None = None
    note: str = ""
    #: The API server's view (``--live``): None when not asked for.
    server: tuple[ObjectDiff, ...] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.cell, self.service

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "wave": self.wave, "waveIndex": self.wave_index,
                "cell": self.cell, "fromVersion": self.from_version,
                "toVersion": self.to_version, "action": self.action,
                "steps": list(self.steps), "when": self.when, "note": self.note,
                "manifests": [o.to_json() for o in self.objects],
                "terraform": self.terraform.to_json() if self.terraform else None,
                "server": [o.to_json() for o in self.server]
                if self.server is not None else None}


@dataclass(frozen=True)
class SqlStep:
    """One migration step the plan runs, the same SQL on each listed cell's database."""

    service: str
    migration: str
    action: str  # expand | contract | rollback
    database: str
    files: tuple[tuple[str, tuple[str, ...]], ...]  # (path, statements)
    job: str | None
    cells: tuple[str, ...]
    wave_index: int

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "migration": self.migration, "action": self.action,
                "database": self.database, "job": self.job, "cells": list(self.cells),
                "files": [{"path": p, "statements": list(s)} for p, s in self.files]}


@dataclass(frozen=True)
class Preview:
    """Everything ``reconciler diff`` shows, in wave order."""

    base: str | None
    head: str
    live: str  # what the head was planned against, in words
    generated_at: datetime
    changes: tuple[CellChange, ...]
    sql: tuple[SqlStep, ...]
    holds: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    removed_cells: tuple[str, ...] = ()
    waves: tuple[str, ...] = ()
    steps: int = 0
    engine: str = ""  # the Terraform engine real plans ran with ("" when none ran)
    server: bool = False  # whether a server-side dry-run was asked for

    @property
    def changed(self) -> bool:
        """Whether merging would change anything (``diff`` exits 2)."""
        return bool(self.changes or self.sql or self.removed_cells)

    def stacks(self) -> tuple[CellChange, ...]:
        return tuple(c for c in self.changes if c.terraform is not None)

    def to_json(self) -> dict[str, Any]:
        from reconciler.core.live import format_time

        return {
            "apiVersion": "reconciler.dev/v1", "kind": "Preview",
            "base": self.base, "head": self.head, "live": self.live,
            "generatedAt": format_time(self.generated_at), "changed": self.changed,
            "summary": {"cells": len({c.cell for c in self.changes}),
                        "changes": len(self.changes), "steps": self.steps,
                        "terraformStacks": len(self.stacks()),
                        "migrationSteps": len(self.sql),
                        "holds": len(self.holds), "refusals": len(self.refusals)},
            "waves": list(self.waves),
            "changes": [c.to_json() for c in self.changes],
            "sql": [s.to_json() for s in self.sql],
            "holds": list(self.holds), "refusals": list(self.refusals),
            "warnings": list(self.warnings), "removedCells": list(self.removed_cells),
            "terraformEngine": self.engine or None, "serverDryRun": self.server,
        }


# -- masking and diffs ---------------------------------------------------------------


def ref_text(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped or no namespace)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def masked(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without what the server owns (status, managed fields, resource version,
    …) or what changes on every apply (our applied-hash annotation)."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_OWNED_METADATA:
            meta.pop(key, None)
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            for key in MASKED_ANNOTATIONS:
                ann.pop(key, None)
            if not ann:
                meta.pop("annotations")
    return out


def _redact_secret(before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                          dict[str, Any] | None]:
    """Secret values replaced by a marker: never shown, only whether each changed."""
    def values(obj: dict[str, Any] | None) -> dict[tuple[str, str], Any]:
        if obj is None:
            return {}
        return {(k, str(n)): v for k in ("data", "stringData")
                for n, v in (obj.get(k) or {}).items()}

    old = values(before)

    def redact(obj: dict[str, Any] | None, mark: Any) -> dict[str, Any] | None:
        if obj is None:
            return None
        out = dict(obj)
        for k in ("data", "stringData"):
            if isinstance(out.get(k), dict):
                out[k] = {n: mark(k, n, v) for n, v in out[k].items()}
        return out

    return (redact(before, lambda k, n, v: SENSITIVE),
            redact(after, lambda k, n, v: SENSITIVE if (k, n) in old and old[(k, n)] == v
                   else SENSITIVE_CHANGED))


def _is_secret(*objs: Mapping[str, Any] | None) -> bool:
    return any(o is not None and o.get("kind") == "Secret" for o in objs)


def _yaml(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    plain = json.loads(json.dumps(obj, default=str))
    return str(yaml.dump(plain, Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                         width=100, default_flow_style=False)).splitlines(keepends=True)


def object_diff(ref: str, before: Mapping[str, Any] | None,
                after: Mapping[str, Any] | None, labels: tuple[str, str] = ("before", "after"),
                context: int = 3) -> ObjectDiff:
    """A unified diff of two objects (masked; Secret values redacted)."""
    b = masked(before) if before is not None else None
    a = masked(after) if after is not None else None
    if _is_secret(b, a):
        b, a = _redact_secret(b, a)
    old, new = _yaml(b), _yaml(a)
    if old == new:
        return ObjectDiff(ref, "unchanged")
    change = "added" if b is None else "removed" if a is None else "changed"
    text = "".join(difflib.unified_diff(old, new, f"{labels[0]}/{ref}", f"{labels[1]}/{ref}",
                                        n=context))
    return ObjectDiff(ref, change, text)


def manifest_diffs(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
                   ) -> tuple[ObjectDiff, ...]:
    """Per object (matched by kind, namespace and name), in the order of ``after`` then
    the removed ones; unchanged objects left out."""
    old = {ref_text(o): o for o in before}
    new = {ref_text(o): o for o in after}
    out = [object_diff(r, old.get(r), new[r]) for r in new]
    out += [object_diff(r, old[r], None) for r in old if r not in new]
    return tuple(d for d in out if d.change != "unchanged")


def server_diffs(answers: Iterable[tuple[str, Mapping[str, Any] | None,
                                         Mapping[str, Any] | None, str, str]]
                 ) -> tuple[ObjectDiff, ...]:
    """The API server's view: per object (ref, live object, dry-run result, why it was
    refused, why it was skipped), the diff of what runs now against what a server-side
    apply would leave."""
    out = []
    for ref, live, result, error, skipped in answers:
        if error:
            out.append(ObjectDiff(ref, "refused", message=error))
        elif skipped:
            out.append(ObjectDiff(ref, "skipped", message=skipped))
        else:
            out.append(object_diff(ref, live, result, ("live", "dry-run")))
    return tuple(d for d in out if d.change != "unchanged")


# -- rendering one side ---------------------------------------------------------------


def placeholder_outputs(desired: DesiredState, service: str) -> dict[str, str]:
    """What a Terraform output renders as when its value is not known here."""
    svc = desired.services[service]
    return {n: f"<terraform.{n}>" for n in declared_outputs(desired, svc.terraform)}


def render_cell(desired: DesiredState | None, cell: str, service: str,
                version: str | None, live: LiveSnapshot | None = None
                ) -> tuple[list[dict[str, Any]], str]:
    """The service's objects in the cell at ``version`` ([] when it does not run there),
    and a render error (empty when none). Terraform outputs come from ``live`` when it
    has them, else render as ``<terraform.NAME>``."""
    if desired is None or version is None or cell not in desired.cells \
            or service not in desired.services:
        return [], ""
    outputs: dict[str, Any] = placeholder_outputs(desired, service)
    tf = live.service(cell, service) if live is not None else None
    if tf is not None and tf.terraform is not None:
        outputs.update(tf.terraform.outputs)
    try:
        return render_service(desired, default_context(desired.cells[cell], service, version,
                                                       outputs)), ""
    except RenderError as e:
        return [], "; ".join(e.errors)


# -- Terraform inputs -----------------------------------------------------------------


def terraform_change(base: DesiredState | None, head: DesiredState, cell: Cell, service: str,
                     from_version: str | None, to_version: str) -> TerraformChange | None:
    """The stack's inputs that change for ``cell`` (None when the service has no stack)."""
    stack = head.services[service].terraform
    if stack is None:
        return None
    after_files = head.files_under(stack)
    after_vars = terraform_variables(cell, to_version)
    before_files: dict[str, str] = {}
    before_vars: dict[str, Any] = {}
    old_svc = base.services.get(service) if base is not None else None
    old_cell = base.cells.get(cell.name) if base is not None else None
    if base is not None and old_svc is not None and old_svc.terraform is not None \
            and old_cell is not None and from_version is not None:
        before_files = base.files_under(old_svc.terraform)
        before_vars = terraform_variables(old_cell, from_version)
    variables = tuple(
        (n, json.dumps(before_vars[n]) if n in before_vars else "",
         json.dumps(after_vars[n]) if n in after_vars else "")
        for n in sorted(set(before_vars) | set(after_vars))
        if before_vars.get(n) != after_vars.get(n) or (n in before_vars) != (n in after_vars))
    files = tuple(
        (f, "added" if f not in before_files else "removed" if f not in after_files
         else "changed")
        for f in sorted(set(before_files) | set(after_files))
        if before_files.get(f) != after_files.get(f))
    return TerraformChange(stack, variables, files)


# -- SQL ------------------------------------------------------------------------------


def _step_of(desired: DesiredState, service: str, migration: str,
             action: str) -> MigrationStep | None:
    m = next((m for m in desired.migrations_of(service) if m.id == migration), None)
    if m is None:
        return None
    return {"expand": m.expand, "contract": m.contract, "rollback": m.rollback}[action]


def sql_steps(desired: DesiredState, steps: Iterable[Step],
              cells: set[str] | None = None) -> tuple[SqlStep, ...]:
    """The migration steps of ``steps``, one entry per (migration, action) with the cells
    it runs on, each with its SQL statements (or its Job template)."""
    grouped: dict[tuple[str, str, str, str], list[Step]] = {}
    for s in steps:
        action = _MIGRATION_KINDS.get(s.kind)
        if action is None or s.migration is None or (cells is not None and s.cell not in cells):
            continue
        grouped.setdefault((s.service, s.migration, action, s.database or ""), []).append(s)
    out = []
    for (service, migration, action, database), group in grouped.items():
        step = _step_of(desired, service, migration, action)
        files: list[tuple[str, tuple[str, ...]]] = []
        if step is not None:
            for path in step.files:
                text = desired.files.get(path, "")
                files.append((path, tuple(st.text.strip() for st in split_statements(text))))
        out.append(SqlStep(service, migration, action, database, tuple(files),
                           step.job if step is not None else None,
                           tuple(sorted({s.cell or "" for s in group})),
                           min(s.wave_index for s in group)))
    order = {"rollback": 0, "expand": 1, "contract": 2}
    return tuple(sorted(out, key=lambda s: (order[s.action], s.wave_index, s.service,
                                            s.migration)))


# -- the preview ----------------------------------------------------------------------


@dataclass
class _Cells:
    """The per-(cell, service) steps of a plan, in plan order."""

    steps: dict[tuple[str, str], list[Step]] = field(default_factory=dict)

    @staticmethod
    def of(p: Plan) -> _Cells:
        out = _Cells()
        for s in p.steps:
            if s.cell is not None:
                out.steps.setdefault((s.cell, s.service), []).append(s)
        return out


def _when(steps: Sequence[Step]) -> str:
    if not steps:
        return ""
    first = steps[0]
    return "due now" if first.due else first.gate.reason


def _step_name(s: Step) -> str:
    if s.weight is not None:
        return f"{s.kind} {s.weight}%"
    return f"{s.kind} {s.migration}" if s.migration else str(s.kind)


def _templates(desired: DesiredState | None, service: str) -> tuple[tuple[str, str], ...]:
    if desired is None or service not in desired.services:
        return ()
    out: list[tuple[str, str]] = []
    svc = desired.services[service]
    if svc.tool_root is not None:  # a chart or Kustomize directory, and the values files
        out += desired.files_under(svc.tool_root).items()
        out += [(p, desired.files.get(p, "")) for p in (svc.helm.values if svc.helm else ())]
    for path in svc.manifests:
        try:
            out += template_files(desired, path)
        except RenderError:
            out.append((path, ""))
    return tuple(out)


def _same_inputs(base: DesiredState | None, head: DesiredState, cell: str, service: str,
                 templates_same: bool) -> bool:
    """Whether the cell's manifests cannot have changed (same templates, same cell,
    same version): then nothing is rendered for it."""
    if base is None or not templates_same:
        return False
    old, new = base.cells.get(cell), head.cells.get(cell)
    if old is None or new is None or not (old is new or old == new):
        return False
    return base.desired_version(service, old) == head.desired_version(service, new)


def build_preview(base: DesiredState | None, head: DesiredState, live: LiveSnapshot,
                  now: datetime, live_text: str, cells: Sequence[str] = ()) -> Preview:
    """The preview of moving the fleet in ``live`` (by default: settled on ``base``) to
    ``head`` as of ``now``; ``cells`` limits it to those cells (all when empty)."""
    p = make_plan(head, live, now)
    wanted = set(cells) if cells else None
    by_cell = _Cells.of(p)
    waves = tuple(w.name for w in head.fleet.waves)
    changes: list[CellChange] = []
    for svc in sorted(head.services):
        same_templates = _templates(base, svc) == _templates(head, svc)
        for w in (x for x in p.waves if x.service == svc):
            for c in w.cells:
                if wanted is not None and c.cell not in wanted:
                    continue
                steps = by_cell.steps.get((c.cell, svc), [])
                if not steps and c.action == "none" and _same_inputs(
                        base, head, c.cell, svc, same_templates):
                    continue
                changes.append(_cell_change(base, head, live, svc, w.wave, w.index,
                                            len(waves), c.cell, c.live_version,
                                            c.target_version, c.action, steps))
    changes = [c for c in changes if c.steps or c.objects or c.action != "none"]
    phases = cell_phases(head, p, live)
    changes = [replace(c, when=phases[(c.service, c.cell)].text(now))
               if (c.service, c.cell) in phases else c for c in changes]
    removed = tuple(sorted(set(base.cells) - set(head.cells))) if base is not None else ()
    if wanted is not None:
        removed = tuple(c for c in removed if c in wanted)
    return Preview(
        base=base.revision if base is not None else None, head=head.revision,
        live=live_text, generated_at=now,
        changes=tuple(sorted(changes, key=lambda c: (c.wave_index, c.service, c.cell))),
        sql=sql_steps(head, p.steps, wanted),
        holds=tuple(f"{h.service} {h.version} in wave {h.wave} ({', '.join(h.groups)}): "
                    f"{h.reason}" for h in p.holds),
        refusals=tuple(f"{r.service} {r.cell} {r.from_version or '-'} → "
                       f"{r.to_version or '-'}: {r.reason}" for r in p.refusals
                       if wanted is None or r.cell in wanted),
        warnings=tuple(f"{w.code}: {w.message}" for w in p.warnings),
        removed_cells=removed, waves=waves,
        steps=len(p.steps) if wanted is None else sum(len(c.steps) for c in changes))


def _cell_change(base: DesiredState | None, head: DesiredState, live: LiveSnapshot, svc: str,
                 wave: str, index: int, waves: int, cell: str, frm: str | None,
                 to: str | None, action: str, steps: list[Step]) -> CellChange:
    back = next((s for s in steps if s.kind == StepKind.ROLLBACK), None)
    if back is not None:
        action, frm, to = "rollback", back.from_version, back.to_version
    names = tuple(_step_name(s) for s in steps)
    kinds = {s.kind for s in steps}
    # before: what the live version renders from the base; after: the target from the head
    old_cell = base.cells.get(cell) if base is not None else None
    before, err_b = render_cell(base, cell, svc, frm if old_cell is not None else None, live)
    after, err_a = render_cell(head, cell, svc, to, live)
    objects = manifest_diffs(before, after)
    note = ""
    if action == "held":
        note = "held: nothing is applied to this cell yet"
    elif action == "refused":
        note = "refused: nothing is applied to this cell"
    elif objects and not kinds & {StepKind.KUBERNETES_APPLY, StepKind.ROLLBACK}:
        note = ("no kubernetes-apply is planned: manifests are applied with a version change "
                "(or re-applied as recorded to heal drift); bump the version to roll this out")
    if err_b or err_a:
        note = f"could not render: {err_a or err_b}"
    tf = None
    if StepKind.TERRAFORM_APPLY in kinds and to is not None:
        tf = terraform_change(base, head, head.cells[cell], svc,
                              frm if old_cell is not None else None, to)
    return CellChange(svc, wave, index, waves, cell, frm, to, action, names, _when(steps),
                      objects, tf, note)


def with_results(preview: Preview,
                 plans: Mapping[tuple[str, str], TerraformPlanSummary] | None = None,
                 server: Mapping[tuple[str, str], tuple[ObjectDiff, ...]] | None = None,
                 engine: str = "") -> Preview:
    """``preview`` with real Terraform plans and the API server's answers added, by
    (cell, service)."""
    changes = []
    for c in preview.changes:
        if plans and c.terraform is not None and c.key in plans:
            c = replace(c, terraform=replace(c.terraform, plan=plans[c.key]))
        if server is not None:
            c = replace(c, server=server.get(c.key, ()))
        changes.append(c)
    return replace(preview, changes=tuple(changes), engine=engine or preview.engine,
                   server=preview.server or server is not None)
