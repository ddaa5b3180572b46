"""Drift rules on recorded objects (pure; no cluster needed).

The live objects below carry managedFields as the API server writes them.
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.adapters.kubernetes.drift import field_paths, object_drift, owners
from reconciler.adapters.kubernetes.objects import Ref

REF = Ref("apps/v1", "Deployment", "shop", "web")
INTENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                 "annotations": {}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "app", "image": "web:1.0.0", "env": [{"name": "A", "value": "1"}]}]}}},
}
OURS = {"f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {},
                                 "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {},
                                                               "f:value": {}}}}}}}}}


def live(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(INTENT)
    obj["metadata"]["managedFields"] = [
        {"manager": "reconciler", "operation": "Apply", "fieldsV1": copy.deepcopy(OURS)},
        {"manager": "kube-controller-manager", "operation": "Update",
         "subresource": "status", "fieldsV1": {"f:status": {"f:replicas": {}}}}]
    obj["status"] = {"replicas": 2}
    for value in changes.values():
        value(obj)
    return obj


def test_field_paths_name_keyed_items() -> None:
    paths = set(field_paths(OURS))
    assert "spec.template.spec.containers[name=app].image" in paths
    assert "spec.template.spec.containers[name=app].env[name=A].value" in paths
    assert "metadata.labels.app" in paths


def test_no_drift_when_live_matches() -> None:
    assert object_drift(REF, INTENT, live()) == []


def test_scale_by_another_manager_is_reported_with_the_manager() -> None:
    def scale(obj: dict[str, Any]) -> None:
        obj["spec"]["replicas"] = 5
        del obj["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"]
        obj["metadata"]["managedFields"].append(
            {"manager": "kubectl", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}})

    (d,) = object_drift(REF, INTENT, live(x=scale))
    assert (d.kind, d.name, d.field, d.manager) == ("Deployment", "web", "spec.replicas",
                                                    "kubectl")
    assert "applied 2, live 5" in d.message


def test_image_changed_by_kubectl_edit() -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "web:evil"
        c = obj["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]
        del c["f:spec"]["f:containers"]['k:{"name":"app"}']["f:image"]
        obj["metadata"]["managedFields"].append({"manager": "kubectl-edit", "fieldsV1": {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                'k:{"name":"app"}': {"f:image": {}}}}}}}})

    (d,) = object_drift(REF, INTENT, live(x=edit))
    assert d.field == "spec.template.spec.containers[name=app].image"
    assert d.manager == "kubectl-edit"


def test_removed_label_and_deleted_object() -> None:
    def unlabel(obj: dict[str, Any]) -> None:
        del obj["metadata"]["labels"]["app"]

    (d,) = object_drift(REF, INTENT, live(x=unlabel))
    assert d.field == "metadata.labels.app" and d.message.startswith("removed")
    (gone,) = object_drift(REF, INTENT, None)
    assert gone.message == "object deleted"


def test_difference_still_owned_by_us_is_normalisation() -> None:
    def normalise(obj: dict[str, Any]) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "1.0"

    assert object_drift(REF, INTENT, live(x=normalise)) == []
    assert "spec.replicas" in owners(live())
