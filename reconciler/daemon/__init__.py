"""The daemon: scheduler loop, executor, leader election, HTTP endpoints, signals.

Owns: when things run and in which process. Must never: hold progress only in memory
(everything needed to resume lives in Git status and live state).
"""
