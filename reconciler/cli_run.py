"""The `run` and `demo` subcommands of the CLI, built through ``reconciler.compose``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "example-repo"


def cmd_demo(args: argparse.Namespace) -> int:
    from reconciler.demo import DemoUnavailable, run_demo

    try:
        return run_demo(Path(args.example))
    except DemoUnavailable as e:
        print(f"error: the demo needs a part this machine lacks: {e}", file=sys.stderr)
        return 1


def _run_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from reconciler.daemon.config import load_config

    cfg = load_config(args.config)
    repo = replace(cfg.repo, url=args.repo or cfg.repo.url,
                   branch=args.branch or cfg.repo.branch)
    cfg = replace(cfg, repo=repo, listen=args.listen or cfg.listen,
                  state_dir=args.state_dir or cfg.state_dir,
                  prometheus_url=args.prometheus or cfg.prometheus_url,
                  log_format=args.log_format or cfg.log_format)
    if args.poll_interval is not None:
        cfg = replace(cfg, poll_interval=args.poll_interval)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from reconciler.adapters.errors import AdapterError
    from reconciler.compose.daemon import build_daemon
    from reconciler.daemon import logs
    from reconciler.daemon.config import ConfigError

    try:
        cfg = _run_config(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cfg.repo.url:
        print("error: no repository: pass --repo URL_OR_DIR or set repo.url in --config",
              file=sys.stderr)
        return 2
    logs.setup(cfg.log_level, json_lines=cfg.log_format == "json")
    try:
        return build_daemon(cfg).run_forever()
    except (AdapterError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def register(sub: Any) -> None:
    """Add the daemon's subcommands to the CLI's subparsers."""
    from reconciler.daemon.config import DaemonConfig

    r = sub.add_parser(
        "run", help="run the reconciler daemon",
        description="Fetch the desired-state repository (a Git URL: file://, https://, "
                    "ssh://, or a local path) on a jittered poll and on signed webhooks, "
                    "plan and apply wave by wave, heal drift, roll back failing waves, and "
                    "commit status and reverts back to the branch. A plain directory (no "
                    ".git) is watched and re-planned on every save (local development). "
                    "SIGTERM finishes the running step, pushes status and exits.")
    r.add_argument("--repo", help="repository URL or directory (overrides repo.url)")
    r.add_argument("--branch", help="branch to follow (default main)")
    r.add_argument("--config", help="configuration file (YAML; see systemd/config.example.yaml)")
    r.add_argument("--listen", help="HTTP address for /healthz /readyz /metrics /webhook "
                                    "(default 127.0.0.1:8080)")
    r.add_argument("--state-dir", help=f"where caches, Terraform state and locks live "
                                       f"(default: state_dir in --config, else "
                                       f"{DaemonConfig().state_dir}; 'status' and "
                                       f"'snapshot' use the same default)")
    r.add_argument("--prometheus", help="Prometheus URL for alarm rules")
    r.add_argument("--poll-interval", type=int, help="seconds between fetches (default 30)")
    r.add_argument("--log-format", choices=["json", "text"], help="log lines (default json)")
    r.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("demo", help="run the whole workflow locally in a few minutes",
                       description="Start a local Kubernetes control plane (KWOK nodes), "
                                   "PostgreSQL and Prometheus, seed a Git repository from "
                                   "example-repo, promote a version through the waves, then "
                                   "push a bad version and watch the canary roll back with "
                                   "a revert commit. Cleans up after itself.")
    d.add_argument("--example", default=str(EXAMPLE), help="the example repository to seed")
    d.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    d.set_defaults(func=cmd_demo)
