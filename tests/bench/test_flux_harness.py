"""The pure parts of the Flux side-by-side harness (bench/peers/flux.py): the rendered
per-cell objects, the Flux objects per cell, the ratio table. The harness itself runs only
as a benchmark (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

PEER = Path(__file__).resolve().parents[2] / "bench" / "peers" / "flux.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peer_flux", PEER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


flux = _load()


def test_a_cell_renders_its_namespace_config_and_deployment() -> None:
    docs = list(yaml.safe_load_all(flux.render_cell("b007", "2.0.0")))
    assert [d["kind"] for d in docs] == ["Namespace", "ConfigMap", "Deployment"]
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {
        "flux-b007"}
    assert docs[1]["data"] == {"QUEUE": "orders-b007", "VERSION": "2.0.0"}
    image = docs[2]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.local/shop:2.0.0"


def test_one_source_and_one_kustomization_per_cell() -> None:
    objs = flux.flux_objects(["b000", "b001"], "http://127.0.0.1:1/flux.git", flux.DEFAULT)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("GitRepository", "cell-b000"), ("Kustomization", "cell-b000"),
        ("GitRepository", "cell-b001"), ("Kustomization", "cell-b001")]
    assert objs[0]["spec"]["interval"] == "1m" and objs[1]["spec"]["interval"] == "10m"
    assert objs[3]["spec"]["path"] == "./cells/b001"
    assert objs[3]["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "cell-b001"}


def test_the_table_gives_the_ratio_of_medians() -> None:
    result = {"reconciler": {"drift_to_healed": flux.stats([0.5, 0.7, 0.6])},
              "flux_default": {"drift_to_healed": flux.stats([300.0])},
              "flux_best": {"drift_to_healed": flux.stats([3.0, 6.0])}}
    rows = {r["measure"]: r for r in flux.table(result)}
    assert rows["drift_to_healed"] == {
        "measure": "drift_to_healed", "reconciler_s": 0.6, "flux_default_s": 300.0,
        "flux_best_s": 4.5, "x_vs_default": 500.0, "x_vs_best": 7.5}
    assert rows["commit_to_first_cell_applied"]["x_vs_best"] is None


def test_a_shared_source_is_one_git_repository_read_by_every_kustomization() -> None:
    objs = flux.flux_objects(["b000", "b001"], "http://127.0.0.1:1/flux.git", flux.DEFAULT,
                             shared=True)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("GitRepository", "fleet"), ("Kustomization", "cell-b000"),
        ("Kustomization", "cell-b001")]
    assert {o["spec"]["sourceRef"]["name"] for o in objs[1:]} == {"fleet"}


def test_polling_thins_out_with_the_fleet() -> None:
    assert (flux.poll_first(100), flux.poll_all(100)) == (0.05, 0.2)
    assert (flux.poll_first(1000), flux.poll_all(1000)) == (0.5, 1.0)
