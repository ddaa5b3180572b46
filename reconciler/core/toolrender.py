"""Services written as a Helm chart or a Kustomize directory: what the tool is asked.

Owns: the request a tool renders for one service in one cell at one version — the chart's
or base's files, the service's values files and the generated per-cell layer (Helm: a
values file on top of the service's; Kustomize: an overlay setting the namespace, common
labels, the image tags and a ConfigMap of the cell's values) — its digest (the
incremental render cache key; the renderer adds its tool's version), the static refusals
found before any tool runs (a Helm template calling ``lookup``; a kustomization naming
anything but a file or directory inside its own directory, i.e. a remote base or
resource), and the ``ToolRenderer`` protocol the composition root plugs the real tools
in with (``reconciler.adapters.render``). Pure: nothing runs here.

The per-cell inputs are the ones templates see (``render.RenderContext``): ``version``,
``service.name``, ``cell.name|group|region|zone|namespace``, ``terraform.<output>``,
``vars.<name>``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from reconciler.core.model import ChartArchive, DesiredState, Service
from reconciler.core.yamldoc import Problem, YamlProblem, parse, position

#: The generated overlay's directory and the copied base's, inside a render's work dir.
OVERLAY_DIR = "overlay"
BASE_DIR = "base"
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: The keys of a kustomization that name other files or directories.
_REFERENCES = ("resources", "bases", "components", "crds")
_IMAGE = re.compile(r"""^\s*(?:-\s*)?image:\s*["']?([^\s"'#]+)""", re.M)
_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_LOOKUP = re.compile(r"(?<![\w.$])lookup\b")


@dataclass(frozen=True)
class ToolSource:
    """What one service's renders share: the tool, the chart or Kustomize directory's
    files and (Helm) the values files, with their digest."""

    tool: str  # "helm" | "kustomize"
    service: str
    root: str  # repository path of the chart / Kustomize directory
    files: tuple[tuple[str, str], ...]  # (path relative to root, text)
    values: tuple[tuple[str, str], ...]  # Helm values files: (repository path, text)
    release: str  # Helm release name
    digest: str
    #: A chart archive of the operator's chart cache (``files`` then empty until the
    #: renderer unpacks it; ``root`` is its file name).
    archive: ChartArchive | None = None


@dataclass(frozen=True)
class ToolRequest:
    """One render: the service's source with one cell's generated layer."""

    source: ToolSource
    cell: str
    namespace: str
    layer: str  # generated values.yaml (Helm) or overlay kustomization.yaml (Kustomize)

    @cached_property
    def digest(self) -> str:
        """The hash of every input but the tool's version (the renderer adds it)."""
        h = hashlib.sha256(self.source.digest.encode())
        h.update(b"\0" + self.namespace.encode() + b"\0" + self.layer.encode())
        return h.hexdigest()


class ToolRenderer(Protocol):
    """Runs the real tools (adapters/render). ``render_many`` answers, in order, each
    request's rendered multi-document YAML or the ``Problem``s saying why it failed.
    ``passed`` says which requests' outputs are remembered as having passed the checks
    named ``checker`` (``mark_passed`` remembers one), so a new process need not render
    or check them again."""

    def render_many(self, requests: Sequence[ToolRequest]) -> list[str | tuple[Problem, ...]]:
        ...

    def passed(self, requests: Sequence[ToolRequest], checker: str) -> list[bool]:
        ...

    def mark_passed(self, requests: Sequence[ToolRequest], checker: str) -> None:
        ...


def tool_source(desired: DesiredState, service: Service) -> ToolSource:
    """The chart's or Kustomize directory's files (as the loader read them) and values;
    for a chart archive no files (the renderer unpacks it) and its pinned identity."""
    archive = service.helm.archive if service.helm else None
    root = archive.file_name if archive else service.tool_root or ""
    files = () if archive else tuple(desired.files_under(root).items())
    values = tuple((p, desired.files.get(p, "")) for p in
                   (service.helm.values if service.helm else ()))
    tool = service.tool or ""
    release = service.helm.release_name if service.helm else service.name
    pinned = [archive.name, archive.version, archive.digest] if archive else None
    h = hashlib.sha256(json.dumps([tool, service.name, root, files, values, release, pinned],
                                  separators=(",", ":")).encode())
    return ToolSource(tool, service.name, root, files, values, release, h.hexdigest(),
                      archive)


def cell_inputs(version: str, cell_values: Mapping[str, Any]) -> dict[str, Any]:
    """The per-cell inputs nested as a Helm values tree (``cell_values``: the flat
    ``RenderContext.values()``)."""
    out: dict[str, Any] = {"version": version}
    for key, value in sorted(cell_values.items()):
        if key == "version":
            continue
        head, _, rest = key.partition(".")
        out.setdefault(head, {})[rest] = value
    return out


def helm_layer(version: str, cell_values: Mapping[str, Any]) -> str:
    """The generated values file: ``reconciler.*`` (every per-cell input) and
    ``image.tag`` (the version), applied over the service's values files."""
    doc = {"reconciler": cell_inputs(version, cell_values), "image": {"tag": version}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def _literal(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def image_names(source: ToolSource) -> list[str]:
    """Every image named by an ``image:`` line of the base, without tag or digest."""
    names: set[str] = set()
    for rel, text in source.files:
        if not rel.endswith((".yaml", ".yml")):
            continue
        for ref in _IMAGE.findall(text):
            ref = ref.split("@", 1)[0]
            slash = ref.rfind("/")
            colon = ref.rfind(":")
            names.add(ref[:colon] if colon > slash else ref)
    return sorted(n for n in names if n and "{" not in n)


def kustomize_overlay(source: ToolSource, version: str, cell_values: Mapping[str, Any],
                      images: Sequence[str]) -> str:
    """The generated overlay's kustomization.yaml (JSON, which is YAML)."""
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"../{BASE_DIR}"],
        "namespace": str(cell_values["cell.namespace"]),
        "labels": [{"pairs": {"reconciler.dev/cell": str(cell_values["cell.name"]),
                              "reconciler.dev/service": source.service},
                    "includeSelectors": False}],
        "images": [{"name": n, "newTag": version} for n in images],
        "configMapGenerator": [{
            "name": f"{source.service}-cell",
            "literals": [f"{k}={_literal(v)}" for k, v in sorted(cell_values.items())],
            "options": {"disableNameSuffixHash": True}}],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def tool_request(source: ToolSource, version: str, cell_values: Mapping[str, Any],
                 images: Sequence[str] | None = None) -> ToolRequest:
    """The render of ``source`` for one cell (``cell_values``: ``RenderContext.values()``)."""
    if source.tool == "helm":
        layer = helm_layer(version, cell_values)
    else:
        layer = kustomize_overlay(source, version, cell_values,
                                  image_names(source) if images is None else images)
    return ToolRequest(source, str(cell_values["cell.name"]),
                       str(cell_values["cell.namespace"]), layer)


#: Kinds that live outside any namespace (as adapters/kubernetes/objects.CLUSTER_KINDS).
CLUSTER_KINDS = frozenset({
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"})


def in_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Namespaced objects without a namespace put in the cell's (as `helm install -n`
    does); any other namespace is left for the apply-time ownership check to refuse."""
    for obj in objects:
        meta = obj.get("metadata")
        if isinstance(meta, dict) and not meta.get("namespace") \
                and obj.get("kind") not in CLUSTER_KINDS:
            meta["namespace"] = namespace
    return objects


# -- static refusals ------------------------------------------------------------------

def _offset_position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def helm_problems(source: ToolSource) -> list[Problem]:
    """A template (or a string in a values file, which ``tpl`` could render) calling
    ``lookup`` (it would read the cluster at render time; without one it silently renders
    nothing): refused, at the call."""
    out: list[Problem] = []
    texts = [(f"{source.root}/{rel}", text) for rel, text in source.files]
    for path, text in [*texts, *source.values]:  # a values string may reach `tpl`
        if "lookup" not in text:
            continue
        for action in _ACTION.finditer(text):
            body = action.group(1)
            if body.lstrip().startswith("/*"):
                continue
            for m in _LOOKUP.finditer(body):
                line, col = _offset_position(text, action.start(1) + m.start())
                out.append(Problem(path, line, col,
                                   "lookup is not allowed: a chart is rendered without "
                                   "cluster access (pass the value in values instead)"))
    return out


def _local(rel_dir: str, ref: str, names: set[str]) -> bool:
    if "://" in ref or ref.startswith(("git@", "/")) or "?" in ref:
        return False
    target = posixpath.normpath(posixpath.join(rel_dir, ref))
    if target == ".":
        return False
    return target in names or any(n.startswith(target + "/") for n in names)


def kustomize_problems(source: ToolSource) -> list[Problem]:
    """Every entry of a kustomization's resources/bases/components/crds that is not a
    file or directory inside the Kustomize directory: refused (remote bases and
    resources are never fetched; everything a base needs lives in the repository)."""
    names = {rel for rel, _ in source.files}
    out: list[Problem] = []
    for rel, text in source.files:
        if posixpath.basename(rel) not in KUSTOMIZATIONS:
            continue
        path = f"{source.root}/{rel}"
        try:
            doc = parse(path, text.encode())
        except YamlProblem as e:
            out.append(e.problem)
            continue
        if not isinstance(doc, dict):
            out.append(Problem(path, 1, 1, "a kustomization must be a mapping"))
            continue
        out += _reference_problems(path, doc, posixpath.dirname(rel), names)
    return out


def _reference_problems(path: str, doc: dict[str, Any], rel_dir: str,
                        names: set[str]) -> list[Problem]:
    out: list[Problem] = []
    for key in _REFERENCES:
        entries = doc.get(key)
        if not isinstance(entries, list):
            continue
        for i, ref in enumerate(entries):
            if isinstance(ref, str) and _local(rel_dir, ref, names):
                continue
            out.append(Problem(path, *position(doc, [key, i]),
                               f"{key}[{i}] {ref!r} is not a file or directory inside "
                               "the Kustomize directory (remote bases and resources are "
                               "refused; vendor them into the repository)"))
    if "helmCharts" in doc or "helmGlobals" in doc:
        out.append(Problem(path, *position(doc, ["helmCharts" if "helmCharts" in doc
                                                 else "helmGlobals"]),
                           "helmCharts in a kustomization is not supported (write the "
                           "service as kubernetes.helm instead)"))
    return out


def static_problems(source: ToolSource) -> list[Problem]:
    """What is refused before the tool runs."""
    return helm_problems(source) if source.tool == "helm" else kustomize_problems(source)
