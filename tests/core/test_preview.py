"""``reconciler diff``'s preview, table-driven (fixtures/preview/cases.yaml): each case's
head against the base, planned against the fleet settled on the base; the Markdown and
text forms of ``bump-canary`` are golden files (REGENERATE=1 rewrites them)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.live import parse_time
from reconciler.core.loader import ParseCache, load_repository
from reconciler.core.preview import Preview, build_preview, object_diff, server_diffs
from reconciler.core.previewtext import render_markdown, render_text
from reconciler.core.settled import settled_snapshot
from tests.core.support import FIXTURES, DictSource, base_files

HERE = FIXTURES / "preview"
TABLE: dict[str, Any] = YAML(typ="safe").load((HERE / "cases.yaml").read_text())
NOW = parse_time(TABLE["now"])


def _files(changes: dict[str, str | None]) -> dict[str, bytes]:
    files = base_files()
    for path, text in {**TABLE["common"], **changes}.items():
        if text is None:
            files.pop(path, None)
        else:
            files[path] = text.encode()
    return files


def preview(case: dict[str, Any], cells: tuple[str, ...] = ()) -> Preview:
    cache = ParseCache()
    base = load_repository(DictSource(_files({}), "base-rev"), cache)
    head = load_repository(DictSource(_files(case.get("head") or {}), "head-rev"), cache)
    assert base.desired is not None, [str(e) for e in base.errors]
    assert head.desired is not None, [str(e) for e in head.errors]
    assert isinstance(NOW, datetime)
    live = settled_snapshot(base.desired, NOW)
    p = build_preview(base.desired, head.desired, live, NOW, "the fleet settled on base",
                      cells)
    return replace(p, base="base", head="head")


def _golden(name: str, text: str) -> None:
    path = HERE / name
    if os.environ.get("REGENERATE"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (REGENERATE=1 to rewrite it)"


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_preview_case(case: dict[str, Any]) -> None:
    p = preview(case)
    assert p.changed is case["changed"], case["why"]
    text = render_text(p)
    lines = [line.rstrip() for line in text.splitlines()]
    for line in case.get("text") or []:
        assert line in lines, f"{case['why']}: {line!r} not in\n{text}"
    markdown = render_markdown(p)
    doc = json.dumps(p.to_json())
    for secret in case.get("absent") or []:
        for out in (text, markdown, doc):
            assert secret not in out, f"{case['why']}: {secret!r} shown"
    if case.get("golden"):
        _golden(f"{case['golden']}.md", markdown)
        _golden(f"{case['golden']}.txt", text)


def test_changes_are_in_wave_order_and_carry_manifests_terraform_and_sql() -> None:
    p = preview(TABLE["cases"][0])
    assert [c.wave for c in p.changes] == ["canary"]
    change = p.changes[0]
    assert change.steps == ("terraform-apply", "migration-expand m2", "kubernetes-apply",
                            "wait-healthy", "migration-contract m2")
    assert [o.ref for o in change.objects] == ["Deployment/c1/app"]
    assert change.terraform is not None
    assert change.terraform.variables == (("service_version", '"1.1.0"', '"1.2.0"'),)
    assert [(s.migration, s.action, s.cells) for s in p.sql] == [
        ("m2", "expand", ("c1",)), ("m2", "contract", ("c1",))]
    assert p.sql[0].files == (("migrations/app/m2-expand.sql", (
        "ALTER TABLE t ADD COLUMN d int;", "UPDATE t SET d = c WHERE d IS NULL;")),)


def test_a_cell_filter_limits_the_preview() -> None:
    case = {"head": {"releases/app.yaml": TABLE["cases"][0]["head"]["releases/app.yaml"]
                     .replace("groups: [canary]", "groups: [canary, zone]")
                     .replace("groups: [zone, rest]", "groups: [rest]")}}
    every = preview(case)
    assert {c.cell for c in every.changes} == {"c1", "z1", "z2", "z3", "z4"}
    only = preview(case, ("z2",))
    assert [c.cell for c in only.changes] == ["z2"]


def test_the_json_form_is_plain_and_stable() -> None:
    p = preview(TABLE["cases"][0])
    doc = p.to_json()
    assert doc["kind"] == "Preview" and doc["changed"] is True
    assert doc["summary"]["terraformStacks"] == 1 and doc["summary"]["migrationSteps"] == 2
    assert json.loads(json.dumps(doc)) == doc


def test_markdown_fits_a_comment() -> None:
    p = preview(TABLE["cases"][1])  # 7 cells
    small = render_markdown(p, max_chars=1500)
    assert len(small) <= 1500
    assert "left out to fit a comment" in small


def test_server_side_view_masks_what_the_server_owns() -> None:
    live = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "c1", "uid": "u-1", "resourceVersion": "7",
                         "managedFields": [{"manager": "reconciler"}],
                         "annotations": {"reconciler.dev/applied-hash": "old"}},
            "data": {"k": "v1"}}
    result = json.loads(json.dumps(live))
    result["metadata"].update(resourceVersion="8", annotations={
        "reconciler.dev/applied-hash": "new"})
    result["data"]["k"] = "v2"
    diffs = server_diffs([("ConfigMap/c1/a", live, result, "", ""),
                          ("Deployment/c1/b", None, None, "HTTP 422: invalid", ""),
                          ("Service/c1/c", None, None, "", "namespace c1 does not exist")])
    assert [d.change for d in diffs] == ["changed", "refused", "skipped"]
    assert "-  k: v1\n+  k: v2" in diffs[0].diff
    for hidden in ("resourceVersion", "uid", "managedFields", "applied-hash"):
        assert hidden not in diffs[0].diff
    same = object_diff("x", live, {**live, "status": {"ready": True}})
    assert same.change == "unchanged"


def test_the_masked_annotation_is_the_one_the_applier_writes() -> None:
    from reconciler.adapters.kubernetes.objects import ANN_HASH
    from reconciler.core.preview import MASKED_ANNOTATIONS

    assert ANN_HASH in MASKED_ANNOTATIONS

