"""The one composition root: the only code that builds adapters into a reconciler.

Owns: turning the operator's configuration into a working assembly — the source of
desired revisions (a Git remote's bare cache or a watched directory), the snapshot
readers and step backends, leadership, the drift watcher — for ``reconciler run``,
``reconciler demo``, the CLI's read-only commands, the e2e tests and the benchmarks.
There is exactly one way a tick is assembled. Must never: decide anything (the planner
does) or run a loop (the daemon does).
"""
