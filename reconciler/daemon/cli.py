"""Subcommands the daemon package contributes to the ``reconciler`` CLI (``demo``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"


def cmd_demo(args: argparse.Namespace) -> int:
    from reconciler.daemon.demo import DemoUnavailable, run_demo

    try:
        return run_demo(Path(args.example))
    except DemoUnavailable as e:
        print(f"error: the demo needs a part this machine lacks: {e}", file=sys.stderr)
        return 1


def register(sub: Any) -> None:
    """Add the daemon's subcommands to the CLI's subparsers."""
    d = sub.add_parser("demo", help="run the whole workflow locally in a few minutes",
                       description="Start a local Kubernetes control plane (KWOK nodes), "
                                   "PostgreSQL and Prometheus, seed a Git repository from "
                                   "example-repo, promote a version through the waves, then "
                                   "push a bad version and watch the canary roll back with "
                                   "a revert commit. Cleans up after itself.")
    d.add_argument("--example", default=str(EXAMPLE), help="the example repository to seed")
    d.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    d.set_defaults(func=cmd_demo)
