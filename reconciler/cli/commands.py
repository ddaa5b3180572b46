"""The read-only commands: ``validate``, ``plan``, ``snapshot``, ``status``.

Owns: what each prints and its exit code. Readers are built only through
``reconciler.compose``; everything else is the pure core.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REFUSED,
    UsageError,
    color_wanted,
    colour_lines,
    dump,
    is_terminal,
    problem_json,
    shown_problem,
)
from reconciler.cli.livefile import read_live


def load(repo: str, stacks: bool = False) -> Any:
    """The desired state in directory ``repo`` (a LoadResult); warnings on stderr. With
    ``stacks``, the variables each Terraform stack declares are read (as the daemon
    does) for a plan compared with recorded Terraform inputs."""
    from reconciler.adapters.errors import PermanentError
    from reconciler.compose.oneshot import load_directory

    try:
        read = None
        if stacks:
            from reconciler.compose.reconciler import BackendSettings, stack_reader
            read = stack_reader(BackendSettings(Path(".")))
        result = load_directory(repo, read)
    except PermanentError as e:
        raise UsageError(str(e)) from None
    return result


def print_warnings(repo: str, result: Any) -> None:
    for w in result.warnings:
        print(f"{shown_problem(repo, w)} (warning)", file=sys.stderr)


def print_errors(repo: str, result: Any) -> None:
    for problem in result.errors:
        print(shown_problem(repo, problem), file=sys.stderr)
    n = len(result.errors)
    print(f"{n} error{'s' if n != 1 else ''}: desired state rejected", file=sys.stderr)


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        t = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r}: expected an RFC 3339 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cmd_validate(args: argparse.Namespace) -> int:
    from reconciler.compose.oneshot import checked, read_policy
    from reconciler.core.policy import PolicyError

    try:
        policy = read_policy(args.policy) if args.policy else None
    except PolicyError as e:
        raise UsageError(f"--policy {e}") from None
    result = checked(load(args.repo), policy)
    d = result.desired
    if args.output != "text":
        doc: dict[str, Any] = {
            "valid": d is not None,
            "errors": [problem_json(args.repo, p) for p in result.errors],
            "warnings": [problem_json(args.repo, w) for w in result.warnings]}
        if d is not None:
            doc.update(cells=len(d.cells), services=len(d.services),
                       waves=len(d.fleet.waves), migrations=len(d.migrations))
        sys.stdout.write(dump(doc, args.output))
        return EXIT_OK if d is not None else EXIT_INVALID
    print_warnings(args.repo, result)
    if d is None:
        print_errors(args.repo, result)
        return EXIT_INVALID
    print(f"valid: {len(d.cells)} cells, {len(d.fleet.waves)} waves, "
          f"{len(d.services)} services, {len(d.migrations)} migrations")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from reconciler.core.planner import plan
    from reconciler.core.plantext import render

    live = read_live(args.live)
    now = parse_now(args.now)
    result = load(args.repo, stacks=True)
    print_warnings(args.repo, result)
    if not result.ok:
        print_errors(args.repo, result)
        return EXIT_INVALID
    p = plan(result.desired, live, now)
    if args.output != "text":
        sys.stdout.write(dump(p.to_json(), args.output))
    else:
        text = render(p, result.desired)
        sys.stdout.write(colour_lines(text) if color_wanted(args.color) else text)
    return EXIT_REFUSED if p.refusals else EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from reconciler.adapters.errors import AdapterError
    from reconciler.compose.reconciler import BackendSettings, snapshot_readers
    from reconciler.core.live import snapshot_to_json
    from reconciler.core.settled import settled_snapshot
    from reconciler.engine.tick import take_snapshot

    now = parse_now(args.now)
    result = load(args.repo)
    print_warnings(args.repo, result)
    if not result.ok:
        print_errors(args.repo, result)
        return EXIT_INVALID
    if args.settled:
        snap = settled_snapshot(result.desired, now)
    else:
        try:
            readers = snapshot_readers(BackendSettings(Path(args.state_dir), databases=False))
            snap = take_snapshot(result.desired, replace(readers, alarms=None))
        except AdapterError as e:
            print(f"error: cannot read the live state: {e}", file=sys.stderr)
            return EXIT_INVALID
    doc = snapshot_to_json(snap)
    if args.output != "text":
        sys.stdout.write(dump(doc, args.output))
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
        return read_live(args.live)
    settings = BackendSettings(Path(args.state_dir), prometheus_url=args.prometheus,
                               databases=bool(args.databases))
    return take_snapshot(desired, status_readers(settings))


def _status_once(args: argparse.Namespace) -> tuple[int, str]:
    from reconciler.adapters.errors import AdapterError
    from reconciler.core.planner import plan
    from reconciler.core.statusview import render_status, status_json

    result = load(args.repo, stacks=True)
    if not result.ok:
        print_errors(args.repo, result)
        return EXIT_INVALID, ""
    try:
        live = _status_snapshot(args, result.desired)
    except AdapterError as e:
        print(f"error: cannot read the live state: {e}", file=sys.stderr)
        return EXIT_INVALID, ""
    p = plan(result.desired, live, parse_now(None))
    if args.output != "text":
        return EXIT_OK, dump(status_json(p, live, result.desired), args.output)
    return EXIT_OK, render_status(p, live, result.desired)


#: Clear the screen and go home (``status --watch`` on a terminal only).
CLEAR = "\x1b[2J\x1b[H"


def cmd_status(args: argparse.Namespace) -> int:
    if not args.watch:
        code, text = _status_once(args)
        sys.stdout.write(text)
        return code
    clear = is_terminal()
    try:
        first = True
        while True:
            _, text = _status_once(args)
            if clear:
                sys.stdout.write(CLEAR + text)
            else:  # a pipe or a file: one frame after the other, nothing to clear
                stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
                sys.stdout.write(("" if first else "\n") + f"--- {stamp}\n" + text)
            first = False
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
