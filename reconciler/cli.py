"""The ``reconciler`` command line.

Owns: argument parsing, exit codes and output formats. Exit codes: 0 success, 1
invalid desired state (or a failed operation), 2 usage error, 3 a change refused as
unsafe. No traceback is shown unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import __version__

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or unreadable input files (exit 2)."""


def _load(repo: str) -> Any:
    from reconciler.adapters.errors import PermanentError
    from reconciler.compose.reconciler import load_directory

    try:
        return load_directory(repo)
    except PermanentError as e:
        raise UsageError(str(e)) from None


def _print_errors(result: Any) -> None:
    for problem in result.errors:
        print(problem, file=sys.stderr)
    n = len(result.errors)
    print(f"{n} error{'s' if n != 1 else ''}: desired state rejected", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from reconciler.compose.reconciler import checked, read_policy
    from reconciler.core.policy import PolicyError

    try:
        policy = read_policy(args.policy) if args.policy else None
    except PolicyError as e:
        raise UsageError(f"--policy {e}") from None
    result = checked(_load(args.repo), policy)
    for w in result.warnings:
        print(f"{w} (warning)", file=sys.stderr)
    d = result.desired
    if d is None:
        _print_errors(result)
        return EXIT_INVALID
    if args.output == "json":
        print(json.dumps({"valid": True, "cells": len(d.cells), "services": len(d.services),
                          "waves": len(d.fleet.waves), "migrations": len(d.migrations)}))
    else:
        print(f"valid: {len(d.cells)} cells, {len(d.fleet.waves)} waves, "
              f"{len(d.services)} services, {len(d.migrations)} migrations")
    return EXIT_OK


def _read_live(path: str | None) -> Any:
    from reconciler.core.live import LiveSnapshot, snapshot_from_json
    from reconciler.core.schema import validate_json

    if path is None:
        return LiveSnapshot()
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--live {path}: {e}") from None
    problems = validate_json(doc, "live")
    if problems:
        raise UsageError(f"--live {path}: not a valid live snapshot: " + "; ".join(problems[:5]))
    return snapshot_from_json(doc)


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r}: expected an RFC 3339 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cmd_plan(args: argparse.Namespace) -> int:
    from reconciler.core.planner import plan
    from reconciler.core.plantext import render

    live = _read_live(args.live)
    now = _parse_now(args.now)
    result = _load(args.repo)
    if not result.ok:
        _print_errors(result)
        return EXIT_INVALID
    p = plan(result.desired, live, now)
    if args.output == "json":
        print(json.dumps(p.to_json(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render(p, result.desired))
    return EXIT_REFUSED if p.refusals else EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from reconciler.adapters.errors import AdapterError
    from reconciler.compose.reconciler import BackendSettings, snapshot_readers
    from reconciler.core.live import snapshot_to_json
    from reconciler.engine.tick import take_snapshot

    result = _load(args.repo)
    if not result.ok:
        _print_errors(result)
        return EXIT_INVALID
    readers = snapshot_readers(BackendSettings(Path(args.state_dir), databases=False))
    try:
        snap = take_snapshot(result.desired, replace(readers, alarms=None))
    except AdapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    doc = snapshot_to_json(snap)
    if args.output == "json":
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for cell, body in doc["cells"].items():
            for svc, s in body["services"].items():
                drift = f" drift={len(s['drift'])}" if s["drift"] else ""
                print(f"{cell:<24} {svc:<12} {s['version'] or '-':<10} {s['health']}{drift}")
    return EXIT_OK


def _status_snapshot(args: argparse.Namespace, desired: Any) -> Any:
    from reconciler.compose.reconciler import BackendSettings, status_readers
    from reconciler.engine.tick import take_snapshot

    if args.live:
        return _read_live(args.live)
    settings = BackendSettings(Path(args.state_dir), prometheus_url=args.prometheus,
                               databases=bool(args.databases))
    return take_snapshot(desired, status_readers(settings))


def _status_once(args: argparse.Namespace) -> tuple[int, str]:
    from reconciler.adapters.errors import AdapterError
    from reconciler.core.planner import plan
    from reconciler.core.statusview import render_status, status_json

    result = _load(args.repo)
    if not result.ok:
        _print_errors(result)
        return EXIT_INVALID, ""
    try:
        live = _status_snapshot(args, result.desired)
    except AdapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID, ""
    p = plan(result.desired, live, _parse_now(None))
    if args.output == "json":
        return EXIT_OK, json.dumps(status_json(p, live), indent=2, sort_keys=True) + "\n"
    return EXIT_OK, render_status(p, live)


def cmd_status(args: argparse.Namespace) -> int:
    import time

    if not args.watch:
        code, text = _status_once(args)
        sys.stdout.write(text)
        return code
    try:
        while True:
            _, text = _status_once(args)
            sys.stdout.write("\x1b[2J\x1b[H" + text)
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _plugins() -> list[Callable[[Any], None]]:
    """Subcommands contributed by the daemon and adapters, when present."""
    found = []
    for mod, attr in (("reconciler.cli_run", "register"),):
        try:
            module = __import__(mod, fromlist=[attr])
        except ImportError:
            continue
        found.append(getattr(module, attr))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler for cell-based fleets: one ordered plan across "
                    "Terraform, Kubernetes and database migrations.")
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("validate", help="validate a desired-state repository",
                       description="Validate a desired-state repository as a whole. Exit 0 "
                                   "when valid, 1 with every error as path:line:col: message.")
    v.add_argument("repo", metavar="REPO", help="repository directory")
    v.add_argument("-o", "--output", choices=("text", "json"), default="text")
    v.add_argument("--policy", metavar="FILE",
                   help="the operator's policy (YAML, see docs/security.md): every "
                        "violation is an error, as the daemon would reject the revision")
    _add_common(v)
    v.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="preview the fleet-wide plan",
                       description="Compute the ordered plan from the desired state and a live "
                                   "snapshot. Exit 0 when planned, 1 for an invalid desired "
                                   "state, 2 for usage errors, 3 when a change is refused.")
    p.add_argument("repo", metavar="REPO", help="repository directory")
    p.add_argument("--live", metavar="FILE",
                   help="live snapshot JSON (schemas/live.schema.json); default: nothing "
                        "deployed")
    p.add_argument("--now", metavar="TIME", help="plan as of this RFC 3339 time (default: now)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_common(p)
    p.set_defaults(func=cmd_plan)
    s = sub.add_parser("snapshot", help="read the live state of every cell",
                       description="Read what runs in every cell's Kubernetes target (by "
                                   "label selector) and the Terraform workspaces' records "
                                   "as a live snapshot (schemas/live.schema.json).")
    s.add_argument("repo", metavar="REPO", help="repository directory")
    s.add_argument("--state-dir", default=".reconciler",
                   help="the daemon's state directory (Terraform workspaces); "
                        "default .reconciler")
    s.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_common(s)
    s.set_defaults(func=cmd_snapshot)
    st = sub.add_parser("status", help="the fleet at a glance",
                        description="Per service, wave and cell: version, health, bake "
                                    "remaining, alarms, drift, holds. Reads live state from "
                                    "the cells' Kubernetes targets and rollout progress from "
                                    "the state directory (or a --live snapshot file).")
    st.add_argument("repo", metavar="REPO", help="repository directory")
    st.add_argument("--live", metavar="FILE", help="use this live snapshot instead of reading")
    st.add_argument("--state-dir", default=".reconciler",
                    help="the daemon's state directory (rollout progress); default .reconciler")
    st.add_argument("--prometheus", metavar="URL", help="evaluate alarm rules against it")
    st.add_argument("--databases", action="store_true",
                    help="also read migration ledgers from the cells' databases")
    st.add_argument("--watch", action="store_true", help="refresh until interrupted")
    st.add_argument("--interval", type=float, default=2.0, help="refresh seconds (--watch)")
    st.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_common(st)
    st.set_defaults(func=cmd_status)
    for register in _plugins():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
