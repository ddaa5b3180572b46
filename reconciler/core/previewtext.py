"""The text and Markdown forms of a ``Preview`` (``reconciler diff -o text|markdown``).

Owns: the layout — a summary first, then per wave (in order) each service's changing
cells, cells whose change is the same (with the cell's own name and namespace set
aside) shown once with every cell named, each with its manifests diff, Terraform inputs
and plan, the API server's view, then the SQL of every migration step. The Markdown form
is a pull-request comment: a summary table, one collapsible section per wave and one for
the SQL, kept under a size limit (``max_chars``). Pure; nothing secret reaches it (the
preview has redacted Secret values already).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core import flags
from reconciler.core.preview import CellChange, ObjectDiff, Preview, SqlStep
from reconciler.core.words import plural

#: GitHub refuses comments over 65,536 characters; leave room for a header.
MAX_MARKDOWN = 60_000
_SYMBOL = {"install": "+", "upgrade": "~", "rollback": "-", "held": "‖", "refused": "!",
           "none": "=", "removed": "-"}
#: How a diff line is indented in the text form (the CLI colours by it).
DIFF_INDENT = "      "


@dataclass(frozen=True)
class Group:
    """Cells of one wave and service whose change is the same."""

    first: CellChange
    cells: tuple[CellChange, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.cell for c in self.cells)


def _normal(c: CellChange, text: str) -> str:
    return text.replace(c.cell, "<cell>")


def _key(c: CellChange) -> tuple[object, ...]:
    tf = c.terraform
    return (c.wave_index, c.service, c.from_version, c.to_version, c.action, c.steps, c.note,
            tuple((_normal(c, o.ref), o.change, _normal(c, o.diff), o.message)
                  for o in c.objects),
            (tf.stack, tf.variables, tf.files, tf.plan) if tf is not None else None,
            tuple((_normal(c, o.ref), o.change, _normal(c, o.diff), _normal(c, o.message))
                  for o in c.server) if c.server is not None else None)


def groups(changes: Sequence[CellChange]) -> list[Group]:
    """Changes grouped by identical content, in the order of their first cell."""
    found: dict[tuple[object, ...], list[CellChange]] = {}
    for c in changes:
        found.setdefault(_key(c), []).append(c)
    return [Group(cs[0], tuple(cs)) for cs in found.values()]


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _versions(c: CellChange) -> str:
    frm, to = flags.shown(c.service, c.from_version), flags.shown(c.service, c.to_version)
    return f"{frm or '-'} → {to or '-'}"


def _arrow(c: CellChange) -> str:
    """``api 1.4.2 → 1.5.0``; ``flag checkout-v2: off → on`` for a flag."""
    if flags.flag_name(c.service) is not None:
        return f"{flags.shown_service(c.service)}: {_versions(c)}"
    return f"{c.service} {_versions(c)}"


def _by_wave(p: Preview) -> list[tuple[int, str, list[CellChange]]]:
    out: list[tuple[int, str, list[CellChange]]] = []
    for i, name in enumerate(p.waves):
        changes = [c for c in p.changes if c.wave_index == i]
        if changes:
            out.append((i, name, changes))
    return out


def summary_line(p: Preview) -> str:
    cells = len({c.cell for c in p.changes})
    waves = len({c.wave_index for c in p.changes})
    if not p.changed:
        return "No changes: merging this changes nothing in the fleet."
    verb = "changes" if cells == 1 else "change"
    return (f"{plural(cells, 'cell')} {verb} in {plural(waves, 'wave')} "
            f"({plural(p.steps, 'planned step')}); "
            f"{plural(len(p.stacks()), 'Terraform stack')}; "
            f"{plural(len(p.sql), 'migration step')}"
            + (f"; {plural(len(p.removed_cells), 'cell')} removed" if p.removed_cells else "")
            + ".")


def _title(p: Preview) -> str:
    return f"{p.base or '(nothing)'} → {p.head}"


# -- text ----------------------------------------------------------------------------


def _diff_lines(diffs: Sequence[ObjectDiff]) -> list[str]:
    out = []
    for d in diffs:
        if d.change == "refused":
            out.append(f"    ! {d.ref}: the apply would fail: {d.message}")
            continue
        if d.change == "skipped":
            out.append(f"    ◷ {d.ref}: not dry-run: {d.message}")
            continue
        out += [DIFF_INDENT + line for line in d.diff.rstrip("\n").split("\n")]
    return out


def _terraform_text(c: CellChange) -> list[str]:
    tf = c.terraform
    if tf is None:
        return []
    parts = [f"{n} {b or '(none)'} → {a or '(none)'}" for n, b, a in tf.variables]
    parts += [f"{f} {change}" for f, change in tf.files]
    out = [f"    terraform {tf.stack}: {'; '.join(parts) or 'inputs unchanged (drift heal)'}"]
    if tf.plan is not None:
        pl = tf.plan
        if pl.error:
            out.append(f"      plan ({pl.engine}) failed: {pl.error}")
        else:
            note = f" — {pl.note}" if pl.note else ""
            out.append(f"      plan ({pl.engine}): {pl.add} to add, {pl.change} to change, "
                       f"{pl.destroy} to destroy{note}")
            out += [f"        {_TF.get(x, '~')} {a} ({x})" for a, x in pl.resources]
    return out


_TF = {"create": "+", "delete": "-", "replace": "-/+", "update": "~"}


def _group_text(g: Group, server: bool) -> list[str]:
    c = g.first
    who = c.cell if len(g.cells) == 1 else f"{len(g.cells)} cells: {_names(g.names)}"
    steps = ", ".join(c.steps) if c.steps else "no step"
    when = f"   [{c.when}]" if c.when and len(g.cells) == 1 else ""
    lines = [f"  {_SYMBOL.get(c.action, '~')} {_arrow(c)} on {who}",
             f"    steps: {steps}{when}"]
    if c.note:
        lines.append(f"    note: {c.note}")
    if c.objects:
        shown = f" (shown for {c.cell})" if len(g.cells) > 1 else ""
        lines.append(f"    manifests{shown}:")
        lines += _diff_lines(c.objects)
    lines += _terraform_text(c)
    if server:
        if c.server:
            lines.append("    the API server (dry-run) would change:")
            lines += _diff_lines(c.server)
        elif c.server is not None:
            lines.append("    the API server (dry-run): no change")
    return lines


def _sql_text(steps: Sequence[SqlStep]) -> list[str]:
    out = ["SQL"] if steps else []
    for s in steps:
        out.append(f"  {s.migration} {s.action} on database {s.database!r} of "
                   f"{plural(len(s.cells), 'cell')}: {_names(s.cells)}")
        if s.job:
            out.append(f"    a Kubernetes Job from {s.job}")
        for path, statements in s.files:
            out.append(f"    -- {path}")
            for st in statements:
                out += [f"    {line}" for line in st.splitlines()]
    return out


def render_text(p: Preview) -> str:
    """The preview as plain text (the CLI colours it on a terminal)."""
    out = [f"Diff: {_title(p)}", f"Planned against {p.live}.", summary_line(p), ""]
    for i, name, changes in _by_wave(p):
        out.append(f"wave {i + 1}/{len(p.waves)} {name}")
        for g in groups(changes):
            out += _group_text(g, p.server)
        out.append("")
    if p.removed_cells:
        out += [f"Removed from the desired state (the reconciler stops managing them; nothing "
                f"is deleted): {_names(p.removed_cells)}", ""]
    sql = _sql_text(p.sql)
    out += [*sql, ""] if sql else []
    for title, items in (("Held", p.holds), ("Refused (unsafe)", p.refusals),
                         ("Warnings", p.warnings)):
        if items:
            out.append(f"{title}:")
            out += [f"  {x}" for x in items]
    return "\n".join(out).rstrip("\n") + "\n"


# -- Markdown -------------------------------------------------------------------------


def _fence(text: str, lang: str) -> str:
    """``text`` in a code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _md(text: str) -> str:
    """Plain text safe in a Markdown table cell or paragraph."""
    return re.sub(r"([\\`*_{}\[\]<>|#])", r"\\\1", text)


def _summary_table(p: Preview) -> list[str]:
    rows = ["| wave | cells | services | steps | Terraform stacks | migration steps |",
            "|---|---|---|---|---|---|"]
    contracts = 0
    for i, name, changes in _by_wave(p):
        services = sorted({_arrow(c) for c in changes})
        steps = [s for c in changes for s in c.steps]
        contracts += sum(1 for s in steps if s.startswith("migration-contract"))
        wave_steps = [s for s in steps if not s.startswith("migration-contract")]
        migs = sum(1 for s in wave_steps if s.startswith("migration-"))
        stacks = sum(1 for c in changes if c.terraform is not None)
        rows.append(f"| {i + 1}/{len(p.waves)} {_md(name)} | {len({c.cell for c in changes})} "
                    f"| {_md(', '.join(services))} | {len(wave_steps)} | {stacks} | {migs} |")
    if contracts:
        rows.append(f"| after the last wave | | | {contracts} | | {contracts} |")
    return rows


def _group_md(g: Group, server: bool) -> list[str]:
    c = g.first
    who = f"`{c.cell}`" if len(g.cells) == 1 else \
        f"{len(g.cells)} cells: " + ", ".join(f"`{n}`" for n in g.names[:20]) + \
        (f" and {len(g.names) - 20} more" if len(g.names) > 20 else "")
    what = _md(_arrow(c)) if flags.flag_name(c.service) else \
        f"{_md(c.service)} {_versions(c)}"
    out = [f"#### {_SYMBOL.get(c.action, '~')} {what} — {who}", ""]
    steps = ", ".join(f"`{s}`" for s in c.steps) if c.steps else "no step"
    out.append(f"Steps: {steps}" + (f" — {_md(c.when)}" if c.when and len(g.cells) == 1
                                    else ""))
    if c.note:
        out += ["", f"> {_md(c.note)}"]
    if c.objects:
        shown = f" (shown for `{c.cell}`)" if len(g.cells) > 1 else ""
        out += ["", f"Manifests{shown}:", "", _fence(_diffs_plain(c.objects), "diff")]
    tf = c.terraform
    if tf is not None:
        parts = [f"`{n}` {_md(b or '(none)')} → {_md(a or '(none)')}"
                 for n, b, a in tf.variables]
        parts += [f"`{f}` {change}" for f, change in tf.files]
        out += ["", f"Terraform `{tf.stack}`: " + ("; ".join(parts) or "inputs unchanged")]
        if tf.plan is not None:
            pl = tf.plan
            if pl.error:
                out.append(f"plan ({pl.engine}) failed: {_md(pl.error)}")
            else:
                out.append(f"plan ({pl.engine}): **{pl.add} to add, {pl.change} to change, "
                           f"{pl.destroy} to destroy**" + (f" — {_md(pl.note)}" if pl.note
                                                           else ""))
                if pl.resources:
                    out += ["", _fence("\n".join(f"{_TF.get(x, '~')} {a}"
                                                 for a, x in pl.resources), "diff")]
    if server and c.server is not None:
        if c.server:
            out += ["", "The API server (server-side dry-run) would change:", "",
                    _fence(_diffs_plain(c.server), "diff")]
        else:
            out += ["", "The API server (server-side dry-run): no change."]
    out.append("")
    return out


def _diffs_plain(diffs: Sequence[ObjectDiff]) -> str:
    parts = []
    for d in diffs:
        if d.change == "refused":
            parts.append(f"! {d.ref}: the apply would fail: {d.message}")
        elif d.change == "skipped":
            parts.append(f"# {d.ref}: not dry-run: {d.message}")
        else:
            parts.append(d.diff.rstrip("\n"))
    return "\n".join(parts)


def _sql_md(steps: Sequence[SqlStep]) -> list[str]:
    if not steps:
        return []
    out = [f"<details><summary>SQL — {plural(len(steps), 'migration step')}</summary>", ""]
    for s in steps:
        cells = ", ".join(f"`{c}`" for c in s.cells[:20]) + \
            (f" and {len(s.cells) - 20} more" if len(s.cells) > 20 else "")
        out += [f"#### `{s.migration}` {s.action} — database `{s.database}` of "
                f"{plural(len(s.cells), 'cell')}: {cells}", ""]
        if s.job:
            out += [f"A Kubernetes Job from `{s.job}`.", ""]
        for path, statements in s.files:
            out += [f"`{path}`", "", _fence("\n".join(statements), "sql"), ""]
    out += ["</details>", ""]
    return out


def render_markdown(p: Preview, max_chars: int = MAX_MARKDOWN) -> str:
    """The preview as a pull-request comment, at most ``max_chars`` long."""
    head = [f"### reconciler diff: {_md(_title(p))}", "",
            f"Planned against {_md(p.live)}. {_md(summary_line(p))}", ""]
    if p.changed:
        head += [*_summary_table(p), ""]
    for title, items in (("Held", p.holds), ("Refused (unsafe)", p.refusals),
                         ("Warnings", p.warnings)):
        if items:
            head += [f"**{title}**", ""] + [f"- {_md(x)}" for x in items] + [""]
    if p.removed_cells:
        head += [f"**Removed from the desired state** (no longer managed; nothing is "
                 f"deleted): {', '.join(f'`{c}`' for c in p.removed_cells)}", ""]
    sections: list[list[str]] = []
    for i, name, changes in _by_wave(p):
        body = [f"<details><summary>wave {i + 1}/{len(p.waves)} {_md(name)} — "
                f"{plural(len({c.cell for c in changes}), 'cell')}</summary>", ""]
        for g in groups(changes):
            body += _group_md(g, p.server)
        body += ["</details>", ""]
        sections.append(body)
    sql = _sql_md(p.sql)
    if sql:
        sections.append(sql)
    text = "\n".join(head)
    for n, section in enumerate(sections):
        part = "\n".join(section)
        if len(text) + len(part) + 200 > max_chars:
            left = plural(len(sections) - n, "more section")
            text += (f"\n_… {left} left out to fit a comment: run `reconciler diff` for "
                     f"the whole preview._\n")
            break
        text += "\n" + part
    return text.rstrip("\n") + "\n"
