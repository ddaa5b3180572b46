"""Chart archives pinned by name, version and digest (``kubernetes.helm.chart: {name,
version, digest}``), taken from the operator's chart cache: an archive made by the real
`helm package` renders as the same chart vendored does; a missing archive, a digest
mismatch and no chart cache at all are each one ``service.yaml:line:col`` error; a
`lookup` inside an archive is refused at its template; archives crafted to escape or
exhaust (path traversal, absolute paths, links, too many files, a gzip bomb, members
outside the top directory) are refused before anything is written."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.render import make_renderers
from reconciler.adapters.render.charts import MAX_BYTES, MAX_FILES, ArchiveProblem, unpack
from reconciler.adapters.render.renderer import ToolRenderers
from reconciler.core.loader import ParseCache, load_repository
from reconciler.core.model import ChartArchive
from reconciler.core.render import default_context, render_service
from reconciler.localparts.helm import find_helm, find_helm_batch, find_kubectl

ROOT = Path(__file__).parents[3]
SERVICE = """\
apiVersion: reconciler.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  kubernetes:
    helm:
      chart: {chart}
      values: [values-shop.yaml]
"""
RELEASE = """\
apiVersion: reconciler.dev/v1
kind: Release
metadata: {{name: {name}}}
spec:
  service: {name}
  versions: [{{groups: [canary, euw1-a, euw1-b, euw1-c, use1-a, use1-b, use1-c], version: 1.0.0}}]
"""
ARCHIVE = ChartArchive("web", "0.3.0", "sha256:" + "0" * 64, "services/web/service.yaml")


def _need_helm() -> Path:
    helm = find_helm()
    if helm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("not available: helm (hack/helm.sh)")
        pytest.skip("not available: helm (hack/helm.sh)")
    return helm


@pytest.fixture
def charts(tmp_path: Path) -> tuple[Path, str]:
    """The chart cache with the example web chart packaged by `helm package`."""
    helm = _need_helm()
    cache = tmp_path / "charts"
    cache.mkdir()
    subprocess.run([str(helm), "package", str(ROOT / "examples/services/web/chart"),
                    "--destination", str(cache)], check=True, capture_output=True,
                   env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    archive = cache / "web-0.3.0.tgz"
    return cache, "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


def _fleet(tmp_path: Path, digest: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "example-repo", repo)
    for name, chart in (("web", f"{{name: web, version: 0.3.0, digest: '{digest}'}}"),
                        ("vendored", "chart")):
        svc = repo / "services" / name
        svc.mkdir()
        shutil.copy(ROOT / "examples/services/web/values-shop.yaml", svc)
        (svc / "service.yaml").write_text(SERVICE.format(name=name, chart=chart))
        (repo / "releases" / f"{name}.yaml").write_text(RELEASE.format(name=name))
    shutil.copytree(ROOT / "examples/services/web/chart", repo / "services/vendored/chart")
    return repo


def _tools(tmp_path: Path, cache: Path | None) -> ToolRenderers:
    r = make_renderers(find_helm(), find_kubectl(), None, helm_batch=find_helm_batch())
    r.charts = cache
    return r


def test_a_pinned_archive_renders_as_the_vendored_chart(
        tmp_path: Path, charts: tuple[Path, str]) -> None:
    cache, digest = charts
    repo = _fleet(tmp_path, digest)
    result = load_repository(DirectorySource(repo), ParseCache(), tools=_tools(tmp_path, cache))
    assert result.ok, result.errors
    d = result.desired
    assert d is not None
    cell = d.cells["euw1-b-01"]
    assert render_service(d, default_context(cell, "web", "1.0.0")) == \
        render_service(d, default_context(cell, "vendored", "1.0.0"))


def test_missing_mismatched_or_unconfigured_archive_is_a_positioned_error(
        tmp_path: Path, charts: tuple[Path, str]) -> None:
    cache, digest = charts
    repo = _fleet(tmp_path, digest)
    at = "services/web/service.yaml:8:14: kubernetes.helm.chart: chart archive web-0.3.0.tgz"
    for where, expected in (
            (None, f"{at} named, but this reconciler has no chart cache"),
            (tmp_path, f"{at} is not in the chart cache {tmp_path}"),
    ):
        result = load_repository(DirectorySource(repo), ParseCache(),
                                 tools=_tools(tmp_path, where))
        assert next(str(e) for e in result.errors if "web/" in e.path).startswith(expected)
    (cache / "web-0.3.0.tgz").write_bytes((cache / "web-0.3.0.tgz").read_bytes() + b"\0")
    r = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", str(repo)],
                       capture_output=True, text=True, timeout=300, check=False,
                       env={**os.environ, "RECONCILER_CHART_CACHE": str(cache),
                            "RECONCILER_RENDER_CACHE": "off"})
    assert r.returncode == 1
    assert f"{repo}/{at} in the chart cache has digest sha256:" in r.stdout + r.stderr
    assert f"not the pinned {digest} (rendering for cell" in r.stdout + r.stderr


def test_diff_takes_the_chart_cache_from_the_daemons_configuration(
        tmp_path: Path, charts: tuple[Path, str]) -> None:
    cache, digest = charts
    repo = _fleet(tmp_path, digest)
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "RECONCILER_RENDER_CACHE": "off"}
    env.pop("RECONCILER_CHART_CACHE", None)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "x")):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)
    config = tmp_path / "config.yaml"
    config.write_text(f"render: {{chart_cache: {cache}, timeout: 20s}}\n")
    diff = [sys.executable, "-m", "reconciler.cli", "diff", str(repo), "-o", "json"]
    without = subprocess.run(diff, capture_output=True, text=True, timeout=300, check=False,
                             env=env)
    assert without.returncode == 1 and "has no chart cache" in without.stderr
    with_config = subprocess.run([*diff, "--config", str(config)], capture_output=True,
                                 text=True, timeout=300, check=False, env=env)
    assert with_config.returncode == 0, with_config.stderr


def test_lookup_inside_an_archive_is_refused(tmp_path: Path) -> None:
    _need_helm()
    data = _tgz({"web/Chart.yaml": b"apiVersion: v2\nname: web\nversion: 0.3.0\n",
                 "web/templates/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                          b"  name: x\ndata:\n  a: {{ lookup \"v1\" "
                                          b"\"Secret\" \"ns\" \"s\" }}\n"})
    cache = tmp_path / "charts"
    cache.mkdir()
    (cache / "web-0.3.0.tgz").write_bytes(data)
    repo = _fleet(tmp_path, "sha256:" + hashlib.sha256(data).hexdigest())
    result = load_repository(DirectorySource(repo), ParseCache(), tools=_tools(tmp_path, cache))
    assert [str(e).split(" (rendering")[0] for e in result.errors if "web-" in e.path] == [
        "web-0.3.0.tgz/templates/cm.yaml:6:9: lookup is not allowed: a chart is rendered "
        "without cluster access (pass the value in values instead)"]


def _tgz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return gzip.compress(raw.getvalue())


CHART_YAML = b"apiVersion: v2\nname: web\nversion: 0.3.0\n"


@pytest.mark.parametrize(("members", "links", "message"), [
    ({"web/Chart.yaml": CHART_YAML, "web/../../evil": b"x"}, None,
     "member 'web/../../evil' is not a relative path inside the archive"),
    ({"web/Chart.yaml": CHART_YAML, "/etc/cron.d/x": b"x"}, None,
     "member '/etc/cron.d/x' is not a relative path inside the archive"),
    ({"web/Chart.yaml": CHART_YAML}, {"web/templates/x.yaml": "/etc/shadow"},
     "member 'web/templates/x.yaml' is not a regular file (links and devices are refused)"),
    ({"web/Chart.yaml": CHART_YAML, "other/x": b"x"}, None,
     "member 'other/x' is not under its top directory 'web'"),
    ({"Chart.yaml": CHART_YAML}, None, "member 'Chart.yaml' is not under a top directory"),
    ({"web/values.yaml": b"a: 1\n"}, None, "has no Chart.yaml at its top directory"),
    ({"web/Chart.yaml": CHART_YAML, "web/icon.png": b"\x89PNG\xff"}, None,
     "member 'web/icon.png' is not UTF-8 text"),
    ({"web/Chart.yaml": CHART_YAML, **{f"web/f{i}": b"" for i in range(MAX_FILES)}}, None,
     f"is over the limit of {MAX_FILES} files"),
    ({"web/Chart.yaml": CHART_YAML, "web/big": b"\0" * (MAX_BYTES * 2)}, None,
     "unpacks to more than"),
])
def test_crafted_archives_are_refused(members: dict[str, bytes], links: dict[str, str] | None,
                                      message: str) -> None:
    with pytest.raises(ArchiveProblem) as e:
        unpack(ARCHIVE, _tgz(members, links))
    assert str(e.value).startswith("services/web/service.yaml:1:1: kubernetes.helm.chart: "
                                   "chart archive web-0.3.0.tgz")
    assert message in str(e.value)
