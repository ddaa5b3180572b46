"""The executor: runs the due steps of a plan against the backends, cells in parallel.

Owns: dispatching each step kind to its handler (one module per group of kinds), running
the due steps of different cells concurrently (the planner already limits how many cells
of a wave change at once), and turning every adapter error into an ``Outcome`` instead
of an exception. Must never: decide what to run (the planner does) or keep progress only
in memory (bake starts and failures go to the ``ProgressStore``).
"""

from reconciler.daemon.execution.backends import Backends, ProgressStore
from reconciler.daemon.execution.run import Outcome, execute

__all__ = ["Backends", "Outcome", "ProgressStore", "execute"]
