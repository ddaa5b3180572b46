"""The dashboard's browser tests run the e2e fleet on the same real parts as tests/e2e:
a local control plane, PostgreSQL, Prometheus scraping the test exporter."""

from tests.e2e.conftest import e2e_cluster, e2e_pg, e2e_prom, fleet

__all__ = ["e2e_cluster", "e2e_pg", "e2e_prom", "fleet"]
