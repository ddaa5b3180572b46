"""The Kubernetes adapter: apply, read, watch and prune a service's objects per cell.

Owns: the REST conversation with each cell's cluster (server-side apply under one field
manager, label-selected reads, watches), the recorded inventory of what was applied
(one ConfigMap per cell and service), drift detection against that record, self-heal
by re-applying it, pruning from it, and translating API failures into
``reconciler.adapters.errors``. Rendering and health rules are pure and live in
``reconciler.core.render`` / ``reconciler.core.health``.
Must never: list-and-delete, touch an object it did not create, or decide what version
a cell should run (the planner does).
"""
