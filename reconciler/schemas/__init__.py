"""JSON Schemas (2020-12) of every desired-state file kind, the live snapshot and the plan.

Static data shipped with the package; ``schemas/`` at the repository root links here.
"""
