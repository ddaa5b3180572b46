"""Test code: pytest helpers over the local parts and Git remote servers (HTTP, SSH).

Used by the test suite and the benchmarks only; no product module imports it (an
import-linter contract says so).
"""
