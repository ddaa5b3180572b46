"""The pure core: desired-state model, validation, live snapshot, planner, status documents.

Owns: every rule of the product (what is valid, what runs in which order, what is
refused or held). Must never: open a socket, run a process, read a file outside the
package's own static schemas, read the clock (``now`` is always passed in), or import a
client library. Plan = f(desired, live, now).
"""
