"""Test harnesses for real components on loopback: Kubernetes control plane, PostgreSQL,
Prometheus, Git remotes. Used by the test suite and the demo; never by the daemon itself.
"""
