"""The ``reconciler`` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from reconciler.core.schema import validate_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example-repo"
LIVE = ROOT / "examples" / "live-mid-rollout.json"


def env(**extra: str) -> dict[str, str]:
    """The environment of a command: ours, the package importable from any directory."""
    out = {**os.environ, "PYTHONPATH": str(ROOT)}
    out.pop("NO_COLOR", None)
    out.update(extra)
    return out


def run(*args: str, cwd: Path | None = None, stdin: str | None = None,
        **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd, input=stdin,
                          env=env(**extra))


def test_validate_example_repo() -> None:
    r = run("validate", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert "14 cells, 4 waves, 2 services, 1 migrations" in r.stdout


def test_validate_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    (repo / "cells" / "use1-a-01.yaml").write_text(
        (repo / "cells" / "use1-a-01.yaml").read_text().replace("weight: 8", "weight: heavy"))
    rel = repo / "releases" / "api.yaml"
    rel.write_text(rel.read_text().replace("version: 1.5.0", "version: one"))
    r = run("validate", "repo", cwd=tmp_path)
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if x and not x.endswith("rejected")]
    assert lines[0].startswith("repo/cells/use1-a-01.yaml:9:11: spec.weight:")
    assert lines[1].startswith("repo/releases/api.yaml:11:16: spec.versions.0.version:")
    assert "Traceback" not in r.stderr


def test_plan_json_validates_and_is_byte_identical() -> None:
    args = ("plan", str(EXAMPLE), "--live", str(LIVE), "--now", "2026-11-22T10:00:00Z",
            "-o", "json")
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert validate_json(doc, "plan") == []
    states = {(w["service"], w["wave"]): w["state"] for w in doc["waves"]}
    assert states[("api", "canary")] == "done"
    assert states[("api", "one-zone")] == "in-progress"


def test_plan_text_preview() -> None:
    r = run("plan", str(EXAMPLE), "--live", str(LIVE), "--now", "2026-11-22T10:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "wave 2/4 one-zone  [in-progress]" in r.stdout
    assert "maxUnavailable 1 of wave 'one-zone' reached" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("Plan: ")


def test_plan_refusal_exits_3(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    rel = repo / "releases" / "api.yaml"
    rel.write_text(rel.read_text().replace("version: 1.5.0", "version: 1.4.2"))
    live = json.loads(LIVE.read_text())
    for body in live["cells"].values():
        body["services"]["api"].update(version="1.5.0", previousVersion="1.4.2", health="Healthy")
        body["databases"] = {"main": {"migrations": {"0007-order-currency": {
            "phase": "contracted"}}}}
    live_file = tmp_path / "live.json"
    live_file.write_text(json.dumps(live))
    r = run("plan", str(repo), "--live", str(live_file), "-o", "json")
    assert r.returncode == 3, r.stderr
    refusals = json.loads(r.stdout)["refusals"]
    assert len(refusals) == 14
    assert "0007-order-currency was contracted" in refusals[0]["reason"]


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    assert run("plan").returncode == 2
    assert run("plan", str(EXAMPLE), "-o", "xml").returncode == 2
    bad = tmp_path / "live.json"
    bad.write_text('{"kind": "Nope"}')
    r = run("plan", str(EXAMPLE), "--live", str(bad))
    assert r.returncode == 2
    assert "not a valid live snapshot" in r.stderr and "Traceback" not in r.stderr
    assert run("validate", str(tmp_path / "missing")).returncode == 2


def test_help_on_every_command() -> None:
    for args in (("--help",), ("validate", "--help"), ("plan", "--help")):
        r = run(*args)
        assert r.returncode == 0 and "usage: reconciler" in r.stdout


def test_status_from_a_live_snapshot() -> None:
    r = run("status", str(EXAMPLE), "--live", str(LIVE), "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    waves = {w["wave"]: w for w in doc["services"]["api"]["waves"]}
    assert waves["canary"]["state"] == "done"
    one_zone = {c["cell"]: c for c in waves["one-zone"]["cells"]}
    assert one_zone["euw1-a-01"]["health"] == "Progressing"
    assert one_zone["euw1-a-02"]["target"] == "1.5.0"
    text = run("status", str(EXAMPLE), "--live", str(LIVE)).stdout
    assert "euw1-a-02                1.4.2 → 1.5.0" in text


def test_status_watch_refreshes_until_interrupted() -> None:
    """On a pipe each refresh is a new frame after a ``---`` line: nothing is cleared
    (a terminal gets the clear-screen: tests/cli/test_conventions.py)."""
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "status", str(EXAMPLE),
                             "--live", str(LIVE), "--watch", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120  # a loaded CI machine starts Python slowly
    while time.monotonic() < deadline:  # two frames seen, however long startup took
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if sum(ln.startswith("--- ") for ln in lines) >= 2:
            break
    proc.send_signal(2)
    rest, _ = proc.communicate(timeout=30)
    out = "".join(lines) + rest
    assert out.count("\n--- ") + out.startswith("--- ") >= 2
    assert "\x1b" not in out
    assert proc.returncode == 0
