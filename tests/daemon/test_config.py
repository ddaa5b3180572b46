"""Table test: the daemon's configuration file — defaults, durations, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.config import ConfigError, ShardConfig, load_config
from reconciler.engine.limits import Limits

CASES = [
    ("defaults", "{}", {"poll_interval": 30, "reconcile_interval": 10, "drift_interval": 300}),
    ("durations", "poll_interval: 1m30s\nreconcile_interval: 5s\ndrift_interval: 1h\n",
     {"poll_interval": 90, "reconcile_interval": 5, "drift_interval": 3600}),
    ("drift checks off", "drift_interval: 0\n", {"drift_interval": 0}),
    ("quoted seconds", 'drift_interval: "0"\npoll_interval: "45"\n',
     {"drift_interval": 0, "poll_interval": 45}),
    ("integer seconds", "poll_interval: 45\n", {"poll_interval": 45}),
    ("terraform config", "terraform_cli_config: /etc/reconciler/terraformrc\n",
     {"terraform_cli_config": "/etc/reconciler/terraformrc"}),
    ("concurrency and client rate defaults", "{}",
     {"concurrency": Limits(), "kube_qps": 0.0, "kube_burst": 200}),
    ("concurrency", "concurrency: {cells: 200, terraform: 2}\nkubernetes: {qps: 0, burst: 5}\n",
     {"concurrency": Limits(cells=200, terraform=2), "kube_qps": 0.0, "kube_burst": 5}),
    ("one replica by default", "{}", {"shards": None, "terraform_state_dir": None}),
    ("shards", "shards: {count: 6, leaseDuration: 30s, namespace: ops, name: rec, "
     "replicaId: pod-a.1}\nterraform: {state_dir: /shared/tf}\n",
     {"shards": ShardConfig(count=6, lease_seconds=30, namespace="ops", name="rec",
                            replica_id="pod-a.1"), "terraform_state_dir": "/shared/tf"}),
    ("render defaults", "{}",
     {"render_timeout": 30.0, "render_max_output": 8 << 20, "chart_cache": None}),
    ("render", "render: {timeout: 2m, max_output: 65536, chart_cache: /var/lib/charts}\n",
     {"render_timeout": 120.0, "render_max_output": 65536, "chart_cache": "/var/lib/charts"}),
]
ERRORS = [
    ("unknown key", "drift_intervall: 5m\n", "unknown key(s) drift_intervall"),
    ("bad duration", "drift_interval: soon\n", "drift_interval: not a duration: 'soon'"),
    ("not a mapping", "- a\n", "must be a mapping"),
    ("not YAML", "a: [\n", "not YAML"),
    ("verify without a signing key",
     "repo:\n  url: x\n  verify:\n    kind: ssh\n    allowed_signers: /etc/signers\n",
     "repo.verify.signing_key is required when repo.verify.kind is set"),
    ("gpg verify without a signing key", "repo:\n  verify:\n    kind: gpg\n",
     "repo.verify.signing_key is required"),
    ("concurrency zero", "concurrency: {terraform: 0}\n",
     "concurrency.terraform: an integer from 1 to 1024, not 0"),
    ("shards count zero", "shards: {count: 0}\n", "shards.count: an integer from 1 to 1024"),
    ("shards lease too short", "shards: {leaseDuration: 1s}\n",
     "shards.leaseDuration: from 3s to 1h, not 1s"),
    ("shards bad replica", "shards: {replicaId: 'a b'}\n", "shards.replicaId: letters"),
    ("shards bad name", "shards: {name: Rec_1}\n", "shards.name: a DNS label"),
    ("shards unknown key", "shards: {replicas: 3}\n", "shards: unknown key(s) replicas"),
    ("concurrency unknown", "concurrency: {helm: 3}\n", "concurrency: unknown key(s) helm"),
    ("concurrency not a number", "concurrency: {cells: many}\n", "concurrency.cells"),
    ("qps negative", "kubernetes: {qps: -1}\n", "kubernetes.qps: a number from 0"),
    ("burst zero", "kubernetes: {burst: 0}\n", "kubernetes.burst: an integer from 1"),
    ("render timeout zero", "render: {timeout: 0}\n", "render.timeout: from 1s to 1h, not 0"),
    ("render timeout bad", "render: {timeout: soon}\n", "render.timeout: not a duration"),
    ("render output small", "render: {max_output: 10}\n",
     "render.max_output: bytes, an integer from 1024"),
    ("render unknown", "render: {helm: x}\n", "render: unknown key(s) helm"),
    ("chart cache empty", "render: {chart_cache: ''}\n", "render.chart_cache: a directory"),
]


@pytest.mark.parametrize(("name", "text", "want"), CASES, ids=[c[0] for c in CASES])
def test_config_values(name: str, text: str, want: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    cfg = load_config(str(path))
    assert {k: getattr(cfg, k) for k in want} == want


@pytest.mark.parametrize(("name", "text", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_config_errors_name_the_file(name: str, text: str, message: str,
                                     tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value).startswith(str(path)) and message in str(e.value)


def test_signing_key_is_read_and_optional_without_verify(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("repo:\n  url: x\n  verify:\n    kind: ssh\n"
                    "    allowed_signers: /etc/signers\n    signing_key: /etc/key\n")
    repo = load_config(str(path)).repo
    assert (repo.verify_kind, repo.signing_key) == ("ssh", "/etc/key")
    path.write_text("repo:\n  url: x\n")  # verification off: no key needed
    assert load_config(str(path)).repo.signing_key is None
