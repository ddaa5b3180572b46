"""docs/repository.md "How do I…": every recipe's edit applied to a copy of the example
repository, planned against the fleet settled before it, gives the plan the page shows.

A recipe is a ``###`` section: code blocks whose first line names a file (``# path`` or
``-- path``) are written into the copy; the ``text`` block is an excerpt of the plan
(``...`` skips lines); ``<!-- live: settled after "Recipe" -->`` plans against the fleet
settled on another recipe's result instead of ``examples/live-settled.json``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.test_cli import EXAMPLE, ROOT, run

SETTLED = ROOT / "examples" / "live-settled.json"
NOW = "2026-11-22T10:00:00Z"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


@dataclass
class Recipe:
    title: str
    files: dict[str, str] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    live_after: str | None = None


def recipes() -> list[Recipe]:
    text = (ROOT / "docs" / "repository.md").read_text()
    part = text[text.index("## How do I…"):]
    part = part[:part.index("\n## ", 4)]
    out = []
    for section in part.split("\n### ")[1:]:
        r = Recipe(section.splitlines()[0].strip())
        after = re.search(r'<!-- live: settled after "([^"]+)" -->', section)
        r.live_after = after.group(1) if after else None
        for lang, body in _BLOCK.findall(section):
            first = body.splitlines()[0]
            if lang == "text":
                r.plan = body.splitlines()
            elif first.startswith(("# ", "-- ")):
                r.files[first.split()[1]] = body
        out.append(r)
    return out


RECIPES = recipes()


def _apply(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    repo = tmp_path / name
    if not repo.exists():
        shutil.copytree(EXAMPLE, repo)
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    return repo


def _live(tmp_path: Path, recipe: Recipe) -> Path:
    if recipe.live_after is None:
        return SETTLED
    base = next(r for r in RECIPES if r.title == recipe.live_after)
    before = _apply(tmp_path, "before", base.files)
    r = run("snapshot", str(before), "--settled", "--now", NOW, "-o", "json")
    assert r.returncode == 0, r.stderr
    live = tmp_path / "before.json"
    live.write_text(r.stdout)
    return live


def test_the_page_has_every_recipe() -> None:
    assert [r.title for r in RECIPES] == ["Bump one group", "Bump everything", "Pin a group",
                                          "Roll back", "Add a cell", "Add a migration"]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.title for r in RECIPES])
def test_recipe_gives_the_plan_shown(tmp_path: Path, recipe: Recipe) -> None:
    assert recipe.files and recipe.plan
    repo = _apply(tmp_path, "repo", recipe.files)
    r = run("plan", str(repo), "--live", str(_live(tmp_path, recipe)), "--now", NOW)
    assert r.returncode == 0, r.stderr
    out = [line.rstrip() for line in r.stdout.splitlines()]
    at = 0
    for line in recipe.plan:
        if line.strip() == "...":
            continue
        assert line.rstrip() in out[at:], f"{recipe.title}: {line!r} not in\n{r.stdout}"
        at = out.index(line.rstrip(), at) + 1


def test_rolling_back_below_a_contracted_migration_is_refused(tmp_path: Path) -> None:
    """The page's note under "Roll back"."""
    release = (EXAMPLE / "releases" / "api.yaml").read_text().replace("1.5.0", "1.4.2")
    repo = _apply(tmp_path, "repo", {"releases/api.yaml": release})
    r = run("plan", str(repo), "--live", str(SETTLED), "--now", NOW)
    assert r.returncode == 3
    assert "refused: migration 0007-order-currency was contracted" in r.stdout
