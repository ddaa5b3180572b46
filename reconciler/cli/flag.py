"""``reconciler flag off NAME``: the kill switch.

Owns: the command's arguments, output (text; -o json|yaml) and exit codes: 0 turned off
(or already off), 1 not turned off (no such flag, the revision would be invalid, git
failed — nothing is pushed), 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from reconciler.cli.common import EXIT_INVALID, EXIT_OK, FORMATS, dump


def _groups(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [g.strip() for g in text.split(",") if g.strip()]


def cmd_flag_off(args: argparse.Namespace) -> int:
    from reconciler.compose.killswitch import KillSwitchError, flag_off

    try:
        done = flag_off(args.repo, args.name, _groups(args.groups), args.remote,
                        push=not args.no_push)
    except KillSwitchError as e:
        print(f"error: {e}", file=sys.stderr)
        for p in e.problems:
            print(p, file=sys.stderr)
        return EXIT_INVALID
    if args.output != "text":
        sys.stdout.write(dump(done.to_json(), args.output))
        return EXIT_OK
    if not done.groups:
        print(f"flag {done.flag} already serves {done.variant!r} in every group named")
        return EXIT_OK
    where = f"pushed to {args.remote}" if done.pushed else "not pushed (--no-push)"
    print(f"flag {done.flag}: {done.variant} in {', '.join(done.groups)} — committed "
          f"{(done.commit or '')[:12]}, {where}")
    return EXIT_OK


def register(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    f = sub.add_parser("flag", help="feature flags: the kill switch",
                       description="Feature flags (flags/<name>.yaml, docs/flags.md).")
    fsub = f.add_subparsers(dest="flag_command", metavar="ACTION", required=True)
    off = fsub.add_parser(
        "off", help="turn a flag off now (commit and push)",
        description="The kill switch: set the flag's groups (all, or --groups) to its "
                    "defaultVariant in flags/NAME.yaml, check the whole revision is valid, "
                    "commit that file alone and push it (rebasing over what others pushed). "
                    "The reconciler applies a change to the default variant to every cell "
                    "at once, without bakes; the commit records who and when. Run it in a "
                    "clone of the desired-state repository. Exit 0 when off (or already "
                    "off), 1 when nothing was turned off (the reason on stderr), 2 for "
                    "usage errors.")
    off.add_argument("name", metavar="NAME", help="the flag (flags/NAME.yaml)")
    off.add_argument("--groups", metavar="G1,G2",
                     help="only these cell groups (comma-separated; default: every group)")
    off.add_argument("--repo", default=".", metavar="DIR",
                     help="the clone of the desired-state repository (default: .)")
    off.add_argument("--remote", default="origin", help="the remote to push to "
                                                        "(default: origin)")
    off.add_argument("--no-push", action="store_true",
                     help="commit only (push it yourself)")
    off.add_argument("-o", "--output", choices=FORMATS, default="text",
                     help=f"output format: {', '.join(FORMATS)} (default text)")
    add_common(off)
    off.set_defaults(func=cmd_flag_off)
