"""Thin I/O adapters: git, kubernetes, terraform, databases, prometheus, filesystem.

Owns: talking to the outside world and translating library errors into
``reconciler.adapters.errors`` (temporary with a retry delay, or permanent).
Must never: make a decision the planner should make, or import ``reconciler.daemon``.
"""
