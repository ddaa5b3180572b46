"""The model's desired-state repository: a real bare Git repository in a temporary
directory, and the person who commits to it with pygit2 (as a merged pull request lands).

The fleet: one service ``app`` (Kubernetes manifests and a Terraform stack, database
``main``) in seven cells over three waves —

    canary [canary]           c1 c2      bake 10m   maxUnavailable 1
    zone   [zone-a, zone-b]   a1 | b1    bake 20m   maxUnavailable 50% (one cell)
    rest   [rest]             r1 r2 r3   bake 20m   maxUnavailable 2

— all on 1.0.0 and baked when the machine starts (seeded in the first commit's rollout
status). A fleet alarm ``error-rate`` fires when a cell's error rate is over 5%. Bakes and
soaks are short (minutes, not hours) so that a whole rollout fits in a few events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pygit2
import yaml

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.core.live import format_time

SERVICE = "app"
BRANCH = "refs/heads/main"
PERSON = ("Dana Developer", "dana@model.test")
BOT = ("reconciler", "reconciler@model.test")

#: Waves in order: (name, groups, bake seconds, maxUnavailable as written).
WAVES: tuple[tuple[str, tuple[str, ...], int, str], ...] = (
    ("canary", ("canary",), 600, "1"),
    ("zone", ("zone-a", "zone-b"), 1200, "50%"),
    ("rest", ("rest",), 1200, "2"),
)
GROUPS: tuple[str, ...] = tuple(g for _, groups, _, _ in WAVES for g in groups)
#: cell -> (group, weight)
CELLS: dict[str, tuple[str, int]] = {
    "c1": ("canary", 1), "c2": ("canary", 1), "a1": ("zone-a", 5), "b1": ("zone-b", 5),
    "r1": ("rest", 20), "r2": ("rest", 20), "r3": ("rest", 20),
}
START_VERSION = "1.0.0"
#: What a person may release: 1.1.0 ... 1.6.0, and 1.0.0 back (first the simplest for
#: Hypothesis: a real bump).
VERSIONS: tuple[str, ...] = (*(f"1.{n}.0" for n in range(1, 7)), START_VERSION)
#: The cell file a broken revision replaces, and what it is replaced with.
BROKEN_PATH = "cells/r3.yaml"
BROKEN_TEXT = "apiVersion: reconciler.dev/v1\nkind: Cell\nmetadata: {name: r3}\nspec: {}\n"


@dataclass(frozen=True)
class FleetOptions:
    """The Fleet's rollout policy, drawn once per run."""

    rollback: str = "wave"  # or rollback-all
    parallel_rollback: bool = True
    self_heal: bool = True
    #: Weekday working hours only (wave starts wait outside them).
    windows: bool = False


def fleet_yaml(o: FleetOptions) -> str:
    waves = "\n".join(f"    - {{name: {n}, groups: [{', '.join(g)}], bake: {b}, "
                      f"maxUnavailable: {m!r}}}" if "%" in m else
                      f"    - {{name: {n}, groups: [{', '.join(g)}], bake: {b}, "
                      f"maxUnavailable: {m}}}" for n, g, b, m in WAVES)
    windows = ("\n    timeWindows:\n      - {days: [Mon, Tue, Wed, Thu, Fri], "
               "start: '08:00', end: '18:00'}") if o.windows else ""
    return (f"apiVersion: reconciler.dev/v1\nkind: Fleet\nmetadata: {{name: model}}\nspec:\n"
            f"  waves:\n{waves}\n"
            f"  rollout:\n    rollback: {o.rollback}\n"
            f"    parallelRollback: {str(o.parallel_rollback).lower()}{windows}\n"
            f"  selfHeal: {str(o.self_heal).lower()}\n"
            f"  alarms:\n    - name: error-rate\n"
            f"      query: 'error_rate{{cell=\"{{{{ cell.name }}}}\"}}'\n"
            f"      threshold: 0.05\n")


def cell_yaml(name: str) -> str:
    group, weight = CELLS[name]
    return (f"apiVersion: reconciler.dev/v1\nkind: Cell\nmetadata: {{name: {name}}}\n"
            f"spec:\n  group: {group}\n  region: r1\n  zone: r1a\n  weight: {weight}\n"
            f"  kubernetes: {{namespace: {name}}}\n"
            f"  terraform: {{vars: {{size: small}}}}\n"
            f"  databases: [{{name: main, dbname: db_{name}}}]\n")


SERVICE_YAML = """apiVersion: reconciler.dev/v1
kind: Service
metadata: {name: app}
spec:
  kubernetes:
    manifests: [kubernetes/deployment.yaml]
  terraform:
    stack: terraform
  databases: [main]
"""

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: "{{ cell.namespace }}"
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers: [{name: app, image: "example/app:{{ version }}"}]
"""

MAIN_TF = 'resource "terraform_data" "queue" { input = var.cell }\n'


def release_yaml(versions: dict[str, str]) -> str:
    """releases/app.yaml giving each group its version (entries grouped by version)."""
    by_version: dict[str, list[str]] = {}
    for g in GROUPS:
        if g in versions:
            by_version.setdefault(versions[g], []).append(g)
    entries = "".join(f"    - {{groups: [{', '.join(gs)}], version: {v}}}\n"
                      for v, gs in by_version.items())
    return (f"apiVersion: reconciler.dev/v1\nkind: Release\nmetadata: {{name: {SERVICE}}}\n"
            f"spec:\n  service: {SERVICE}\n  versions:\n{entries}")


def migration_files(mid: str, version: str) -> dict[str, str]:
    """A migration needed from ``version`` on (old shape used below it)."""
    base = f"migrations/{SERVICE}"
    return {
        f"{base}/{mid}.yaml": (
            f"apiVersion: reconciler.dev/v1\nkind: Migration\nmetadata: {{name: {mid}}}\n"
            f"spec:\n  service: {SERVICE}\n  database: main\n"
            f"  requiredBy: \">={version}\"\n  oldShapeUsedBy: \"<{version}\"\n"
            f"  soak: 5m\n  expand: {{sql: [{mid}-expand.sql]}}\n"
            f"  contract: {{sql: [{mid}-contract.sql]}}\n"
            f"  rollback: {{sql: [{mid}-rollback.sql]}}\n"),
        f"{base}/{mid}-expand.sql": f"ALTER TABLE t ADD COLUMN {mid}_new int;\n",
        f"{base}/{mid}-contract.sql": f"ALTER TABLE t DROP COLUMN {mid}_old;\n",
        f"{base}/{mid}-rollback.sql": f"ALTER TABLE t DROP COLUMN {mid}_new;\n",
    }


def initial_files(o: FleetOptions, baked_at: datetime) -> dict[str, str]:
    """The first commit: the fleet on 1.0.0 everywhere, every wave baked at ``baked_at``."""
    rollout = {"service": SERVICE, "waves": {
        name: {"version": START_VERSION, "bakeStartedAt": format_time(baked_at)}
        for name, _, _, _ in WAVES}}
    files = {"reconciler.yaml": fleet_yaml(o),
             f"services/{SERVICE}/service.yaml": SERVICE_YAML,
             f"services/{SERVICE}/kubernetes/deployment.yaml": DEPLOYMENT,
             f"services/{SERVICE}/terraform/main.tf": MAIN_TF,
             f"releases/{SERVICE}.yaml": release_yaml(dict.fromkeys(GROUPS, START_VERSION)),
             f"status/rollouts/{SERVICE}.yaml": yaml.safe_dump(rollout, sort_keys=False)}
    files |= {f"cells/{c}.yaml": cell_yaml(c) for c in CELLS}
    return files


def trailer_of(message: str, name: str) -> str | None:
    """The value of trailer ``name`` in a commit message."""
    for line in message.splitlines():
        if line.startswith(f"{name}: "):
            return line.split(": ", 1)[1].strip()
    return None


@dataclass
class PersonCommit:
    """A commit the person made: its id, what it desires, what it was about."""

    sha: str
    subject: str
    versions: dict[str, str]
    #: Trailers of the daemon's revert commits the person had seen (in the history the
    #: commit was made on).
    reverts_seen: frozenset[str] = frozenset()


@dataclass
class Remote:
    """The bare repository the daemon follows, at ``path`` while reachable (an outage
    moves it away: the daemon's fetches and pushes fail as for a host that is down, and
    the person keeps committing to it)."""

    path: Path
    down: bool = False
    commits: list[PersonCommit] = field(default_factory=list)

    @property
    def where(self) -> Path:
        return self.path.with_name(self.path.name + ".down") if self.down else self.path

    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.where))

    def go_down(self) -> None:
        if not self.down:
            self.path.rename(self.where.with_name(self.path.name + ".down"))
            self.down = True

    def come_up(self) -> None:
        if self.down:
            self.where.rename(self.path)
            self.down = False

    @staticmethod
    def create(path: Path, files: dict[str, str], at: datetime) -> Remote:
        repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        commit_files(repo, BRANCH, {p: t.encode() for p, t in files.items()}, "seed the fleet\n",
                     _signature(PERSON, at))
        remote = Remote(path)
        head = head_commit(repo, BRANCH)
        assert head is not None
        remote.commits.append(PersonCommit(str(head.id), "seed the fleet",
                                           dict.fromkeys(GROUPS, START_VERSION)))
        return remote

    # -- reading -------------------------------------------------------------------------
    def head(self) -> pygit2.Commit:
        commit = head_commit(self.repo(), BRANCH)
        assert commit is not None
        return commit

    def text(self, path: str, commit: pygit2.Commit | None = None) -> str | None:
        data = read_file(self.repo(), commit or self.head(), path)
        return data.decode() if data is not None else None

    def versions(self, commit: pygit2.Commit | None = None) -> dict[str, str]:
        """What ``commit`` (default: the head) desires per group."""
        text = self.text(f"releases/{SERVICE}.yaml", commit)
        doc = yaml.safe_load(text or "") or {}
        out: dict[str, str] = {}
        for entry in (doc.get("spec") or {}).get("versions") or []:
            for g in entry.get("groups") or []:
                out.setdefault(str(g), str(entry.get("version")))
        return out

    def reverts_in_history(self) -> frozenset[str]:
        """The ``Reconciler-Rollback-Of`` trailers of every commit in the head's history."""
        repo, out = self.repo(), set()
        for c in repo.walk(self.head().id, pygit2.enums.SortMode.TOPOLOGICAL):
            t = trailer_of(c.message, "Reconciler-Rollback-Of")
            if t:
                out.add(t)
        return frozenset(out)

    def broken(self) -> bool:
        return self.text(BROKEN_PATH) == BROKEN_TEXT

    # -- the person ----------------------------------------------------------------------
    def commit(self, changes: dict[str, str | None], subject: str, at: datetime) -> str | None:
        """Commit ``changes`` on the branch as the person; the id (None when nothing
        changed)."""
        seen = self.reverts_in_history()
        sha = commit_files(self.repo(), BRANCH,
                           {p: t.encode() if t is not None else None for p, t in changes.items()},
                           subject + "\n", _signature(PERSON, at))
        if sha is not None:
            self.commits.append(PersonCommit(sha, subject, self.versions(), seen))
        return sha

    def revert(self, sha: str, at: datetime) -> str | None:
        """``git revert`` of ``sha`` onto the head as the person; None on a conflict (the
        person gives up) or when it changes nothing."""
        repo = self.repo()
        commit, head = repo[sha], self.head()
        assert isinstance(commit, pygit2.Commit)
        if not commit.parents:
            return None
        seen = self.reverts_in_history()
        index = repo.revert_commit(commit, head)
        if index.conflicts:
            return None
        tree = index.write_tree(repo)
        if tree == head.tree.id:
            return None
        subject = f'Revert "{commit.message.splitlines()[0]}"'
        sig = _signature(PERSON, at)
        oid = repo.create_commit(BRANCH, sig, sig, f"{subject}\n\nThis reverts commit {sha}.\n",
                                 tree, [head.id])
        self.commits.append(PersonCommit(str(oid), subject, self.versions(), seen))
        return str(oid)


def _signature(who: tuple[str, str], at: datetime) -> pygit2.Signature:
    return pygit2.Signature(who[0], who[1], int(at.timestamp()), 0)
