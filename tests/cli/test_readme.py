"""The README's sample plan is the command's real output (an excerpt: ``...`` skips
lines; every other line appears, in order)."""

from __future__ import annotations

from tests.cli.test_cli import EXAMPLE, LIVE, ROOT, run


def _sample() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("```\n", text.index("## What a plan looks like")) + 4
    return text[start:text.index("```\n", start)].splitlines()


def test_readme_sample_plan_matches_the_output() -> None:
    r = run("plan", str(EXAMPLE), "--live", str(LIVE), "--now", "2026-11-22T10:00:00Z")
    assert r.returncode == 0, r.stderr
    out = [line.rstrip() for line in r.stdout.splitlines()]
    at = 0
    for line in _sample():
        if line.strip() == "...":
            continue
        assert line.rstrip() in out[at:], f"README line not in the output (in order): {line!r}"
        at = out.index(line.rstrip(), at) + 1
