"""The engine: one reconcile tick — snapshot, plan, execute — through backend protocols.

Owns: the order of a tick (load → snapshot → plan → execute), what survives an invalid
revision, the executor that runs the due steps (cells in parallel, wave-level steps
first) and one handler per step kind. Imports only ``reconciler.core`` and the adapters'
error types: every real backend and reader is plugged in by ``reconciler.compose``.
Must never: decide what to run (the planner does), instantiate an adapter, or keep
progress only in memory (bake starts and failures go to the ``ProgressStore``).
"""
