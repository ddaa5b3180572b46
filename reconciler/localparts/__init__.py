"""Local parts on loopback for the demo (and the tests): a Kubernetes control plane
with KWOK nodes, PostgreSQL with one database per cell, Prometheus scraping a test
exporter.

Owns: finding or building the binaries (cached under ``~/.cache/reconciler``), starting
and stopping them in temporary directories. A product module (``reconciler demo`` runs
it), so it never imports pytest or ``reconciler.testing``; its runtime dependencies
(``cryptography`` for the control plane's certificates) are the package's.
"""
