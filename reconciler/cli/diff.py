"""``reconciler diff``: what merging a change would do, before it is merged.

Owns: the command's arguments, exit codes (as ``terraform plan -detailed-exitcode``: 0 no
changes, 1 an error, 2 changes) and output formats (text, JSON, YAML, Markdown for a
pull-request comment). The head is planned against the fleet settled on the base; with
``--terraform plan`` each changed stack is planned for real, with ``--live`` each
changed cell's apply is dry-run on its cluster.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.cli.commands import parse_now
from reconciler.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    UsageError,
    color_wanted,
    dump,
    paint,
    shown_problem,
)

if TYPE_CHECKING:  # the Git parts load only when the command runs
    from reconciler.compose.preview import Revisions

EXIT_CHANGES = 2
FORMATS = ("text", "json", "yaml", "markdown")
_DIFF_LINE = re.compile(r"^      ([-+@])")


def colour_diff(text: str) -> str:
    """Colour a text preview: diff lines, headers, refusals."""
    out = []
    for line in text.split("\n"):
        m = _DIFF_LINE.match(line)
        if m and line[6:9] in ("---", "+++"):
            out.append(paint(line, "bold"))
        elif m:
            out.append(paint(line, {"+": "green", "-": "red", "@": "cyan"}[m.group(1)]))
        elif line.startswith(("wave ", "Diff:", "SQL")):
            out.append(paint(line, "bold"))
        elif line.lstrip().startswith("!"):
            out.append(paint(line, "red-bold"))
        else:
            out.append(line)
    return "\n".join(out)


def _settings(args: argparse.Namespace) -> Any:
    """The daemon's backend settings — its Terraform engine and sandbox (bubblewrap by
    default, as the daemon's), state directory and policy: from --config when given,
    else the daemon's defaults; --state-dir and --policy override."""
    from dataclasses import replace

    from reconciler.compose.oneshot import read_policy
    from reconciler.compose.sources import backend_settings
    from reconciler.core.policy import PolicyError
    from reconciler.daemon.config import ConfigError, DaemonConfig, load_config

    try:
        cfg = load_config(args.config) if args.config else DaemonConfig()
        if args.state_dir:
            cfg = replace(cfg, state_dir=args.state_dir)
        elif not args.config:
            cfg = replace(cfg, state_dir=args.default_state_dir)
        s = backend_settings(cfg)
        if args.policy:
            s = replace(s, policy=read_policy(args.policy))
    except ConfigError as e:
        raise UsageError(f"--config {e}") from None
    except PolicyError as e:
        raise UsageError(f"--policy {e}") from None
    return s


def _render_settings(args: argparse.Namespace) -> Any:
    """``render:`` of --config (None without --config: the environment's)."""
    if not args.config:
        return None
    from reconciler.compose.sources import backend_settings
    from reconciler.daemon.config import ConfigError, load_config

    try:
        return backend_settings(load_config(args.config)).render
    except ConfigError as e:
        raise UsageError(f"--config {e}") from None


def _print_invalid(rev: str | None, what: str, result: Any, repo: str) -> None:
    """Every error as ``path:line:col: message``; a path read from Git as ``REV:path``."""
    for p in result.errors:
        print(f"{rev}:{p}" if rev else shown_problem(repo, p), file=sys.stderr)
    n = len(result.errors)
    print(f"{n} error{'s' if n != 1 else ''}: {what} is not a valid desired state",
          file=sys.stderr)


def cmd_diff(args: argparse.Namespace) -> int:
    from reconciler.adapters.errors import PermanentError
    from reconciler.compose.preview import load_revisions

    # The two revisions are millions of small objects that live until the command ends:
    # the cyclic collector is paused while they are read, then set aside (frozen) while
    # the command runs, so it never walks them (~0.15 s at 10,000 cells).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            revs = load_revisions(args.repo, args.base, args.head, _render_settings(args))
        except PermanentError as e:
            raise UsageError(str(e)) from None
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()
        return _preview(args, revs)
    finally:
        gc.unfreeze()


def _preview(args: argparse.Namespace, revs: Revisions) -> int:
    from dataclasses import replace

    from reconciler.adapters.errors import AdapterError
    from reconciler.core.live import LiveSnapshot
    from reconciler.core.preview import build_preview
    from reconciler.core.settled import settled_snapshot

    for w in revs.head.warnings:
        print(f"{shown_problem(args.repo, w)} (warning)", file=sys.stderr)
    if not revs.head.ok:
        rev = None if revs.head_dir is not None else args.head or "HEAD"
        _print_invalid(rev, revs.head_label, revs.head, args.repo)
        return EXIT_INVALID
    if revs.base is not None and not revs.base.ok:
        _print_invalid(args.base or "HEAD", f"the base {revs.base_label}", revs.base,
                       args.repo)
        return EXIT_INVALID
    # the daemon's settings only when something needs them (they import every backend)
    wanted = args.config or args.policy or args.terraform == "plan" or args.live
    settings = _settings(args) if wanted else None
    if settings is not None and settings.policy is not None:  # a violating head: refused
        from reconciler.compose.oneshot import checked

        judged = checked(revs.head, settings.policy)
        if not judged.ok:
            _print_invalid(None if revs.head_dir is not None else args.head or "HEAD",
                           f"{revs.head_label} (policy {settings.policy.source})", judged,
                           args.repo)
            return EXIT_INVALID
    elif args.terraform == "plan" or args.live:
        print("warning: no policy (--policy or policy_file in --config): the head is "
              "planned / dry-run without the operator's checks", file=sys.stderr)
    head = revs.head.desired
    base = revs.base.desired if revs.base is not None else None
    assert head is not None
    cells = [c for group in args.cell or [] for c in group]
    unknown = sorted(set(cells) - set(head.cells) - (set(base.cells) if base else set()))
    if unknown:
        raise UsageError(f"--cell: no such cell: {', '.join(unknown)}")
    now = parse_now(args.now)
    if base is not None:
        live, live_text = settled_snapshot(base, now), f"the fleet settled on {revs.base_label}"
    else:
        live, live_text = LiveSnapshot(), "an empty fleet (no base: not in a Git repository)"
    preview = build_preview(base, head, live, now, live_text, cells)
    preview = replace(preview, base=revs.base_label, head=revs.head_label)
    try:
        preview = _real_parts(args, preview, head, settings)
    except AdapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    _write(args, preview)
    return EXIT_CHANGES if preview.changed else EXIT_OK


def _real_parts(args: argparse.Namespace, preview: Any, head: Any, settings: Any) -> Any:
    """Real Terraform plans (``--terraform plan``) and the API server's view (``--live``)."""
    from reconciler.core.preview import server_diffs, with_results

    if args.terraform == "plan" and preview.stacks():
        from reconciler.compose.preview import terraform_plans

        stacks = [(c.cell, c.service, c.to_version) for c in preview.stacks()]
        engine, plans = terraform_plans(head, stacks, settings)
        preview = with_results(preview, plans=plans, engine=engine)
    if args.live:
        from reconciler.compose.preview import server_answers

        targets = [(c.cell, c.service, c.to_version, c.from_version) for c in preview.changes
                   if c.to_version is not None and c.cell in head.cells
                   and c.action not in ("held", "refused")]
        answers = server_answers(head, targets, settings)
        server = {k: server_diffs((a.ref, a.live, a.result, a.error, a.skipped) for a in v)
                  for k, v in answers.items()}
        preview = with_results(preview, server=server)
    return preview


def _write(args: argparse.Namespace, preview: Any) -> None:
    from reconciler.core.previewtext import render_markdown, render_text

    if args.output == "markdown":
        sys.stdout.write(render_markdown(preview))
    elif args.output in ("json", "yaml"):
        sys.stdout.write(dump(preview.to_json(), args.output))
    else:
        text = render_text(preview)
        sys.stdout.write(colour_diff(text) if color_wanted(args.color) else text)


def register(sub: Any, state_dir: str,
             add_common: Callable[[argparse.ArgumentParser], None],
             add_color: Callable[[argparse.ArgumentParser], None]) -> None:
    d = sub.add_parser(
        "diff", help="preview what merging a change would do",
        description="Preview a change before it is merged: for every cell the plan would "
                    "change, in wave order, the rendered manifests before → after (fields "
                    "the server owns masked, Secret values never shown), the Terraform "
                    "inputs per changed stack (a real plan with --terraform plan) and the "
                    "SQL of every expand/contract step. The head is planned against the "
                    "fleet settled on the base. Exit 0 no changes, 1 an error, 2 changes "
                    "(as terraform plan -detailed-exitcode).")
    d.add_argument("repo", metavar="REPO",
                   help="the repository: a directory (its working tree is the head unless "
                        "--head is given) or a bare Git repository")
    d.add_argument("--base", metavar="REV",
                   help="the revision to compare with, read from Git without a checkout "
                        "(default HEAD; e.g. origin/main in a pull-request check)")
    d.add_argument("--head", metavar="REV",
                   help="compare this revision instead of the working tree (default for a "
                        "bare repository: HEAD)")
    d.add_argument("--cell", metavar="NAME", nargs="+", action="append",
                   help="only these cells")
    d.add_argument("--live", action="store_true",
                   help="also dry-run each changed cell's apply on its cluster (server-side "
                        "apply, dryRun=All: nothing is written) and show what the API "
                        "server would change")
    d.add_argument("--terraform", choices=("inputs", "plan"), default="inputs",
                   help="inputs: the variables and files that change per stack (default, "
                        "offline); plan: a real plan of each changed stack with the engine "
                        "the daemon would use, from the state it recorded (never written)")
    d.add_argument("--state-dir", default=None,
                   help=f"the daemon's state directory (recorded Terraform state and "
                        f"outputs); default {state_dir}, or state_dir in --config")
    d.add_argument("--config", metavar="FILE",
                   help="the daemon's configuration: its state directory, Terraform "
                        "sandbox (bubblewrap unless it says none), policy_file and render "
                        "(limits, chart cache)")
    d.add_argument("--policy", metavar="FILE",
                   help="the operator's policy: a head that violates it is refused (exit "
                        "1) before anything is planned or dry-run")
    d.add_argument("--now", metavar="TIME",
                   help="plan as of this RFC 3339 time (default: now)")
    d.add_argument("-o", "--output", choices=FORMATS, default="text",
                   help="text (default), json, yaml, or markdown: a pull-request comment")
    add_color(d)
    add_common(d)
    d.set_defaults(func=cmd_diff, default_state_dir=state_dir)
