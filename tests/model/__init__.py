"""The model-based test of the whole loop (issue #22): a Hypothesis state machine whose
rules are the events a person, the fleet and the daemon's host can produce, with the
rollout-safety invariants checked after each (see docs/planner.md)."""
