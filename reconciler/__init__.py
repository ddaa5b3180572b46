"""reconciler: a GitOps reconciler daemon for cell-based fleets.

Layers (imports only point down, enforced by import-linter, see pyproject.toml):

- ``reconciler.cli``      command line front end.
- ``reconciler.daemon``   the loop, executor, HTTP endpoints, leader election.
- ``reconciler.adapters`` thin I/O wrappers (git, kubernetes, terraform, databases, prometheus).
- ``reconciler.core``     pure model, validation, diff, planner; no I/O, no clients.
"""

__version__ = "0.1.0"
