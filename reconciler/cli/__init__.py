"""The ``reconciler`` command line.

Owns: argument parsing, exit codes and output formats. Exit codes: 0 success, 1
invalid desired state (or a failed operation), 2 usage error, 3 a change refused as
unsafe; ``diff`` follows ``terraform plan -detailed-exitcode`` instead (0 no changes,
1 error, 2 changes). No traceback is shown unless ``--debug``. A reader that stops
early (``reconciler plan -o json | head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from reconciler import __version__
from reconciler.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    FORMATS,
    UsageError,
)

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "UsageError",
           "build_parser", "main"]


def default_state_dir() -> str:
    """The daemon's state directory when its configuration names none (``run`` uses the
    same default, so ``status`` reads what ``run`` wrote)."""
    from reconciler.daemon.config import DaemonConfig

    return DaemonConfig().state_dir


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_output(p: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    p.add_argument("-o", "--output", choices=formats, default="text",
                   help=f"output format: {', '.join(formats)} (default text)")


def _add_color(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text output: auto (only on a terminal, and not when "
                        "NO_COLOR is set), always, never")


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


def _validate_parser(sub: Any) -> None:
    from reconciler.cli.commands import cmd_validate

    v = sub.add_parser("validate", help="validate a desired-state repository",
                       description="Validate a desired-state repository as a whole: schemas, "
                                   "cross-file checks, every template rendered for every "
                                   "cell and checked against the Kubernetes API schema, "
                                   "migration SQL. Exit 0 when valid, 1 with every error as "
                                   "path:line:col: message (paths as seen from the current "
                                   "directory), 2 for usage errors. With -o json|yaml the "
                                   "errors are in the document.")
    v.add_argument("repo", metavar="REPO", help="repository directory")
    _add_output(v)
    v.add_argument("--policy", metavar="FILE",
                   help="the operator's policy (YAML, see docs/security.md): every "
                        "violation is an error, as the daemon would reject the revision")
    _add_common(v)
    v.set_defaults(func=cmd_validate)


def _plan_parser(sub: Any) -> None:
    from reconciler.cli.commands import cmd_plan

    p = sub.add_parser("plan", help="preview the fleet-wide plan",
                       description="Compute the ordered plan from the desired state and a live "
                                   "snapshot. Exit 0 when planned, 1 for an invalid desired "
                                   "state, 2 for usage errors, 3 when a change is refused. "
                                   "Symbols: + install, ~ upgrade, - roll back, = at its "
                                   "version, ‖ held, ! refused, ◷ a wave's or the fleet's "
                                   "step.")
    p.add_argument("repo", metavar="REPO", help="repository directory")
    p.add_argument("--live", metavar="FILE",
                   help="live snapshot JSON (schemas/live.schema.json), '-' for standard "
                        "input; default: nothing deployed. examples/live-settled.json is "
                        "the example fleet settled on its releases")
    p.add_argument("--now", metavar="TIME", help="plan as of this RFC 3339 time (default: now)")
    _add_output(p)
    _add_color(p)
    _add_common(p)
    p.set_defaults(func=cmd_plan)


def _snapshot_parser(sub: Any, state_dir: str) -> None:
    from reconciler.cli.commands import cmd_snapshot

    s = sub.add_parser("snapshot", help="read the live state of every cell",
                       description="Read what runs in every cell's Kubernetes target (by "
                                   "label selector) and the Terraform workspaces' records "
                                   "as a live snapshot (schemas/live.schema.json). Exit 0, "
                                   "or 1 when a backend cannot be read (the message names "
                                   "the kubeconfig and context used).")
    s.add_argument("repo", metavar="REPO", help="repository directory")
    s.add_argument("--state-dir", default=state_dir,
                   help=f"the daemon's state directory (Terraform workspaces); default "
                        f"{state_dir}, as for 'reconciler run'")
    s.add_argument("--settled", action="store_true",
                   help="read nothing: the snapshot of the fleet settled on REPO (every "
                        "cell on its release, healthy, migrations done, waves baked) — save "
                        "it before an edit and preview the edit with 'plan --live FILE'")
    s.add_argument("--now", metavar="TIME",
                   help="with --settled: bakes and soaks are over by this RFC 3339 time "
                        "(default: now)")
    _add_output(s)
    _add_common(s)
    s.set_defaults(func=cmd_snapshot)


def _status_parser(sub: Any, state_dir: str) -> None:
    from reconciler.cli.commands import cmd_status

    st = sub.add_parser("status", help="the fleet at a glance",
                        description="Per service, wave and cell: version, health, bake "
                                    "remaining, alarms, drift, holds. Reads live state from "
                                    "the cells' Kubernetes targets and rollout progress from "
                                    "the state directory (or a --live snapshot file). Exit "
                                    "0 when shown, 1 when the live state cannot be read (no "
                                    "cluster: the message names the kubeconfig and context "
                                    "used; KUBECONFIG is honoured).")
    st.add_argument("repo", metavar="REPO", help="repository directory")
    st.add_argument("--live", metavar="FILE",
                    help="use this live snapshot ('-': standard input) instead of reading")
    st.add_argument("--state-dir", default=state_dir,
                    help=f"the daemon's state directory (rollout progress); default "
                         f"{state_dir}, as for 'reconciler run'")
    st.add_argument("--prometheus", metavar="URL", help="evaluate alarm rules against it")
    st.add_argument("--databases", action="store_true",
                    help="also read migration ledgers from the cells' databases")
    st.add_argument("--watch", action="store_true",
                    help="refresh until interrupted (the screen is cleared on a terminal "
                         "only)")
    st.add_argument("--interval", type=float, default=2.0, help="refresh seconds (--watch)")
    _add_output(st)
    _add_common(st)
    st.set_defaults(func=cmd_status)


def _completion_parser(sub: Any, root: argparse.ArgumentParser) -> None:
    from reconciler.cli.completion import cmd_completion

    c = sub.add_parser("completion", help="print a shell completion script",
                       description="Print the completion script for bash, zsh or fish. "
                                   "bash: source <(reconciler completion bash); zsh: "
                                   "source <(reconciler completion zsh); fish: reconciler "
                                   "completion fish | source.")
    c.add_argument("shell", choices=("bash", "zsh", "fish"))
    _add_common(c)
    c.set_defaults(func=cmd_completion, root=root)


def _diff_parser(sub: Any, state_dir: str) -> None:
    from reconciler.cli.diff import register

    register(sub, state_dir, _add_common, _add_color)


def _flag_parser(sub: Any) -> None:
    from reconciler.cli.flag import register

    register(sub, _add_common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler for cell-based fleets: one ordered plan across "
                    "Terraform, Kubernetes and database migrations.")
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    state_dir = default_state_dir()
    _validate_parser(sub)
    _plan_parser(sub)
    _diff_parser(sub, state_dir)
    _snapshot_parser(sub, state_dir)
    _status_parser(sub, state_dir)
    _flag_parser(sub)
    for register in _plugins():
        register(sub)
    _completion_parser(sub, parser)
    return parser


def _usage_code(argv: Sequence[str]) -> int:
    """The exit code of a usage error: 1 for ``diff`` (its 2 means "changes")."""
    words = [a for a in argv if not a.startswith("-")]
    return EXIT_INVALID if words[:1] == ["diff"] else EXIT_USAGE


def _quiet_stdout() -> None:
    """After a reader closed the pipe: send what is still buffered nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else _usage_code(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `reconciler plan -o json | head -1`: the reader had enough
        _quiet_stdout()
        return EXIT_OK
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return _usage_code(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_INVALID
