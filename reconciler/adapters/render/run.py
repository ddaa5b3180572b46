"""Running `helm template` or `kubectl kustomize` for one render, contained.

Owns: the render's work directory (the chart's or base's files, the values files, the
generated per-cell layer — nothing else of the repository), the command line (Helm: no
repository configuration, no plugins, no post-renderer, never a fetch; Kustomize: the
root-only load restrictor, no Helm inflation, no exec plugins), the environment (scrubbed:
an empty HOME and XDG/Helm directories of its own, no proxies, no PATH to a ``git`` a
remote base would need, ``KUBECONFIG=/dev/null``), bubblewrap when it can run here (no
network at all, only the work directory and the binary visible), a deadline (the whole
process group is killed) and an output limit (the render is killed once it writes more),
and turning the tool's errors into ``Problem``s: ``file:line:col`` in the repository
where the tool names a position, else the chart's or Kustomize directory's marker file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.toolrender import BASE_DIR, OVERLAY_DIR, ToolRequest
from reconciler.core.yamldoc import Problem

#: Default limits of one render.
TIMEOUT_SECONDS = 30.0
MAX_OUTPUT_BYTES = 8 << 20
_STDERR_BYTES = 64 << 10
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
# helm: "template: web/templates/x.yaml:3:12: executing ..." or "(web/templates/x.yaml:3)"
_HELM_AT = re.compile(r"(?P<chart>[A-Za-z0-9_.-]+)/(?P<file>(?:charts/[^\s:()]+/)?"
                      r"templates/[^\s:()\"]+):(?P<line>\d+)(?::(?P<col>\d+))?")
_YAML_LINE = re.compile(r"\bline (\d+)")


@dataclass(frozen=True)
class Limits:
    """What bounds one render."""

    timeout: float = TIMEOUT_SECONDS
    max_output: int = MAX_OUTPUT_BYTES


@dataclass(frozen=True)
class Binaries:
    """The tools' binaries (None: that tool is not available here) and bubblewrap."""

    helm: Path | None
    kubectl: Path | None
    bwrap: str | None = None
    helm_batch: Path | None = None  # hack/helm-batch: many cells per process
    kustomize_batch: Path | None = None  # hack/kustomize-batch: the same for Kustomize


class Refused(Exception):
    """The render was refused or failed; ``problems`` say why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)


def _write(base: Path, rel: str, text: str) -> None:
    target = (base / rel).resolve()
    if not target.is_relative_to(base.resolve()):  # the loader already refuses such paths
        raise Refused([Problem(rel, 1, 1, "path escapes the render directory")])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _marker(request: ToolRequest) -> str:
    names = {rel for rel, _ in request.source.files}
    if request.source.tool == "helm":
        return f"{request.source.root}/Chart.yaml"
    for m in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if m in names:
            return f"{request.source.root}/{m}"
    return request.source.root


def prepare(request: ToolRequest, work: Path) -> list[str]:
    """Write the render's inputs under ``work``; the tool's arguments (after the binary)."""
    src = request.source
    if src.tool == "helm":
        chart = work / "chart"
        for rel, text in src.files:
            _write(chart, rel, text)
        args = ["template", src.release, str(chart), "--namespace", request.namespace,
                "--skip-tests"]
        for i, (_, text) in enumerate(src.values):
            _write(work / "values", f"{i}.yaml", text)
            args += ["--values", str(work / "values" / f"{i}.yaml")]
        _write(work, "cell-values.yaml", request.layer)
        return [*args, "--values", str(work / "cell-values.yaml")]
    for rel, text in src.files:
        _write(work / BASE_DIR, rel, text)
    _write(work / OVERLAY_DIR, "kustomization.yaml", request.layer)
    return ["kustomize", str(work / OVERLAY_DIR),
            "--load-restrictor", "LoadRestrictionsRootOnly"]


def _env(work: Path) -> dict[str, str]:
    home = work / "home"
    env = {"HOME": str(home), "PATH": "/nonexistent", "LANG": "C", "TMPDIR": str(work / "tmp"),
           "KUBECONFIG": "/dev/null", "NO_COLOR": "1",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "NO_PROXY": "", "no_proxy": ""}
    for var, rel in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_DATA_HOME", "data"), ("HELM_CONFIG_HOME", "helm/config"),
                     ("HELM_CACHE_HOME", "helm/cache"), ("HELM_DATA_HOME", "helm/data"),
                     ("HELM_PLUGINS", "helm/plugins")):
        (home / rel).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / rel)
    env["HELM_REPOSITORY_CONFIG"] = str(home / "helm/config/repositories.yaml")
    env["HELM_REGISTRY_CONFIG"] = str(home / "helm/config/registry.json")
    (work / "tmp").mkdir(exist_ok=True)
    return env


def _wrap(argv: list[str], work: Path, bwrap: str | None) -> list[str]:
    """``argv`` inside bubblewrap: no network, nothing but the system directories
    (read-only), the binary and the work directory."""
    if bwrap is None:
        return argv
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--cap-drop", "ALL",
           "--die-with-parent", "--new-session"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    binary = Path(argv[0]).resolve()
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", str(binary), str(binary), "--bind", str(work), str(work),
            "--chdir", str(work), "--", str(binary), *argv[1:]]
    return cmd


def _read_capped(stream: object, cap: int, out: list[bytes], over: threading.Event,
                 proc: subprocess.Popen[bytes]) -> None:
    total = 0
    read = stream.read  # type: ignore[attr-defined]
    while chunk := read(65536):
        total += len(chunk)
        if total > cap:
            over.set()
            _kill(proc)
            return
        out.append(chunk)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def execute(argv: list[str], work: Path, limits: Limits,
            bwrap: str | None) -> tuple[int, str, str, str | None]:
    """Run; (exit code, stdout, stderr, why it was stopped or None)."""
    proc = subprocess.Popen(_wrap(argv, work, bwrap), cwd=work, env=_env(work),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True, start_new_session=True)
    out: list[bytes] = []
    err: list[bytes] = []
    over, err_over = threading.Event(), threading.Event()
    readers = [threading.Thread(target=_read_capped, args=(proc.stdout, limits.max_output,
                                                           out, over, proc), daemon=True),
               threading.Thread(target=_read_capped, args=(proc.stderr, _STDERR_BYTES,
                                                           err, err_over, proc), daemon=True)]
    for t in readers:
        t.start()
    stopped = None
    try:
        proc.wait(timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        stopped = f"no result after {limits.timeout:g} s; killed"
    for t in readers:
        t.join(5)
    if over.is_set():
        stopped = f"output over the limit of {limits.max_output} bytes; killed"
    text = b"".join(out).decode(errors="replace")
    return proc.returncode, text, b"".join(err).decode(errors="replace"), stopped


def tool_problems(request: ToolRequest, stderr: str, work: Path) -> list[Problem]:
    """The tool's error as Problems in repository terms (the work directory's paths
    replaced by the repository's)."""
    src = request.source
    text = stderr.replace(str(work / "chart"), src.root).replace(
        str(work / BASE_DIR), src.root).replace(str(work / OVERLAY_DIR),
                                                "<generated overlay>")
    text = text.replace(str(work), "<render>")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    message = " ".join(ln.removeprefix("Error: ").removeprefix("error: ") for ln in lines)
    message = message.replace(" Use --debug flag to render out invalid YAML", "")
    message = message or "failed without a message"
    if src.tool == "helm":
        m = _HELM_AT.search(message)
        if m:
            line = int(m.group("line"))
            col = int(m.group("col") or 1)
            return [Problem(f"{src.root}/{m.group('file')}", line, col,
                            f"helm template: {message}")]
    return [Problem(_marker(request), 1, 1, f"{src.tool}: {message}")]


def render_once(request: ToolRequest, binaries: Binaries, limits: Limits) -> str:
    """The rendered YAML of ``request``; Refused with Problems otherwise."""
    binary = binaries.helm if request.source.tool == "helm" else binaries.kubectl
    if binary is None:
        what = "helm" if request.source.tool == "helm" else "kubectl (for kustomize)"
        raise Refused([Problem(_marker(request), 1, 1,
                               f"{what} is not available to this reconciler")])
    work = Path(tempfile.mkdtemp(prefix="reconciler-render-"))
    try:
        args = prepare(request, work)
        code, out, err, stopped = execute([str(binary), *args], work, limits,
                                          binaries.bwrap)
        if stopped:
            raise Refused([Problem(_marker(request), 1, 1,
                                   f"{request.source.tool} render: {stopped}")])
        if code != 0:
            raise Refused(tool_problems(request, err, work))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
