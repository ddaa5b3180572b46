"""The world the model-based test runs the daemon in: a real bare Git repository and the
person committing to it, the simulated fleet (fakes, ``fleet.py``), a simulated clock,
and the daemon itself — built by ``reconciler.compose.daemon.build_daemon`` exactly as
``reconciler run`` builds it, with the fleet and the clock given through
``compose.Environment``, and stepped by hand (``Daemon.step``).

Every event goes through ``World.do(name, *args)`` and is recorded, so the same run can
be replayed on a fresh world (invariant 7). Nothing of the daemon survives a crash but
what a real restart keeps: the fleet (the backends) and Git — the remote, and the bare
cache under the state directory with any commits still queued there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pygit2
import yaml
from ruamel.yaml import YAML

from reconciler.adapters.errors import AdapterError
from reconciler.adapters.git import progress as git_progress
from reconciler.adapters.git import status as git_status
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.compose.daemon import build_daemon
from reconciler.compose.reconciler import Environment
from reconciler.core import statusyaml
from reconciler.core.loader import load_repository
from reconciler.core.model import Cell
from reconciler.core.plan import GateKind, StepKind
from reconciler.core.versions import Version, VersionRange
from reconciler.daemon.config import DaemonConfig, LeaderConfig, RepoConfig
from reconciler.daemon.driftwatch import DriftSeen, Watcher
from reconciler.daemon.service import Daemon
from reconciler.engine.executor import OutcomeStatus
from reconciler.engine.tick import TickReport
from tests.model.fleet import FakeFleet
from tests.model.invariants import CONVERGES, DETERMINISTIC, Checker, KnownMigration
from tests.model.repo import (
    BOT,
    BRANCH,
    BROKEN_PATH,
    BROKEN_TEXT,
    CELLS,
    GROUPS,
    SERVICE,
    START_VERSION,
    VERSIONS,
    WAVES,
    FleetOptions,
    Remote,
    cell_yaml,
    initial_files,
    migration_files,
    release_yaml,
    trailer_of,
)

#: A Monday, 09:00 UTC (inside the optional working-hours window).
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
#: When every wave baked 1.0.0 (the seeded status).
BAKED_AT = START - timedelta(days=1)
#: Time passes in steps of at most this much, the daemon ticking after each.
TIME_STEP = timedelta(minutes=30)
#: How many rollouts may follow each other (settle, tick) within one step of time.
ROLLOUTS_PER_STEP = 8
#: A tick loop (``Daemon.step``) longer than this is a livelock.
MAX_TICKS_PER_STEP = 60
#: Rounds of (an hour passes, the daemon steps) allowed to converge once events stop.
CONVERGE_ROUNDS = 12
TRAILER = "Reconciler-Rollback-Of"
#: Gates that only time opens: converging waits for them too (a rollout runs to its end).
WAITING_FOR_TIME = frozenset({GateKind.BAKE_TIME, GateKind.SOAK})


class Clock:
    """The simulated time: the planner's clock and the daemon's monotonic one."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()


class _NoWatcher:
    def stop(self) -> None:
        return None


def _no_watcher(cells: Sequence[Cell], services: tuple[str, ...],
                on_drift: Callable[[DriftSeen], None]) -> Watcher:
    """The fake fleet has no watch API: drift is seen by the next tick's snapshot."""
    return _NoWatcher()


_HEX = re.compile(r"\b[0-9a-f]{7,40}\b")


class _MemoRender:
    """``core.statusyaml.render`` memoized while a world exists. The daemon re-renders
    every status document on every tick (a ruamel.yaml round trip, ~13 ms each), which
    would make this test ten times slower; ``render`` is a pure function of the old text
    and the document, so the same inputs give the same bytes and the commits the daemon
    makes are unchanged."""

    MODULES: tuple[Any, ...] = (git_status, git_progress)  # each one's ``render``
    PROGRESS: Any = git_progress  # and its ``YAML``

    def __init__(self) -> None:
        self.users = 0
        self.cache: dict[tuple[bytes | None, str], bytes] = {}

    def __call__(self, existing: bytes | None, doc: Mapping[str, Any]) -> bytes:
        key = (existing, json.dumps(doc, default=str))
        out = self.cache.get(key)
        if out is None:
            if len(self.cache) > 20_000:
                self.cache.clear()
            out = self.cache[key] = statusyaml.render(existing, doc)
        return out

    def install(self) -> None:
        self.users += 1
        for m in self.MODULES:
            m.render = self
        self.PROGRESS.YAML = _MemoSafeYaml

    def remove(self) -> None:
        self.users -= 1
        if self.users == 0:
            for m in self.MODULES:
                m.render = statusyaml.render
            self.PROGRESS.YAML = YAML


class _MemoSafeYaml:
    """ruamel's safe loader for the rollout documents (``adapters.git.progress`` reads
    them twice a tick, ~11 ms each), memoized by text; each load returns a fresh copy
    (the store edits what it loaded)."""

    cache: ClassVar[dict[str, Any]] = {}

    def __init__(self, typ: str = "safe") -> None:
        assert typ == "safe"

    def load(self, text: str) -> Any:
        if text not in self.cache:
            if len(self.cache) > 5_000:
                self.cache.clear()
            self.cache[text] = YAML(typ="safe").load(text)
        return copy.deepcopy(self.cache[text])


_RENDER = _MemoRender()


def normalized(text: str) -> str:
    """``text`` with commit ids blanked (they depend on commit times)."""
    return _HEX.sub("<id>", text)


@dataclass
class World:
    """One run's world; ``root`` is its own temporary directory."""

    root: Path
    options: FleetOptions = field(default_factory=FleetOptions)

    def __post_init__(self) -> None:
        _RENDER.install()
        try:
            self._create()
        except BaseException:
            _RENDER.remove()
            raise

    def _create(self) -> None:
        self.clock = Clock(START)
        self.checker = Checker()
        self.fleet = FakeFleet(self.clock, self.checker)
        self.remote = Remote.create(self.root / "fleet.git",
                                    initial_files(self.options, BAKED_AT), BAKED_AT)
        first = load_repository(GitTreeSource(self.remote.repo(), str(self.remote.head().id)))
        assert first.desired is not None, [str(e) for e in first.errors]
        self.fleet.seed(first.desired, BAKED_AT)
        self.checker.bakes = {name: (START_VERSION, BAKED_AT) for name, _, _, _ in WAVES}
        self.parts = self.fleet.parts()
        self.state = self.root / "state"
        self.daemon: Daemon | None = None
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.trace: list[str] = []
        self.reports: list[TickReport] = []
        self.revert_messages: dict[str, str] = {}
        self._ticks = 0
        self._done = 0  # steps done (any kind) so far
        self._reverts = 0  # revert-commit steps done so far
        self._migrations = 0
        self._start()

    # -- events ------------------------------------------------------------------------
    def do(self, name: str, *args: Any) -> None:
        """Carry out one event (recorded for a replay), then note what the fleet shows."""
        self.events.append((name, args))
        self.trace.append(f"event {name}{args!r}")
        getattr(self, f"e_{name}")(*args)
        self.checker.observe_evidence(self.fleet)
        self.checker.check_history(self.revert_trailers())

    # the person
    def _committed(self, sha: str | None) -> None:
        if sha is not None:
            self.checker.on_person_commit(self.remote.commits[-1])
            self.trace.append(f"person commit {self.remote.commits[-1].subject}")

    def e_bump(self, groups: tuple[str, ...], version: str) -> None:
        versions = self.remote.versions() | dict.fromkeys(groups, version)
        self._committed(self.remote.commit(
            {f"releases/{SERVICE}.yaml": release_yaml(versions)},
            f"bump {SERVICE} to {version} in {', '.join(groups)}", self.clock()))

    def e_bump_with_migration(self) -> None:
        """Add the next migration with a bump of every group to the lowest version above
        every desired version and every migration's floor (nothing when there is none)."""
        floors = [f for f in (VersionRange.parse(r).floor() for r in self._required_by())
                  if f is not None]
        top = max([*map(Version.parse, self.remote.versions().values()), *floors])
        above = sorted((v for v in VERSIONS if Version.parse(v) > top), key=Version.parse)
        if not above:
            return
        version = above[0]
        self._migrations += 1
        mid = f"m{self._migrations:02d}"
        self.checker.migrations[mid] = KnownMigration(
            mid, "main", VersionRange.parse(f">={version}"), VersionRange.parse(f"<{version}"))
        changes: dict[str, str | None] = dict(migration_files(mid, version))
        changes[f"releases/{SERVICE}.yaml"] = release_yaml(dict.fromkeys(GROUPS, version))
        self._committed(self.remote.commit(changes, f"{mid}: expand/contract with "
                                                    f"{SERVICE} {version}", self.clock()))

    def _required_by(self) -> list[str]:
        """The requiredBy of every migration at the remote's head."""
        repo, head = self.remote.repo(), self.remote.head()
        try:
            tree = repo[head.tree[f"migrations/{SERVICE}"].id]
        except KeyError:
            return []
        assert isinstance(tree, pygit2.Tree)
        out = []
        for e in tree:
            if e.name and e.name.endswith(".yaml"):
                doc = yaml.safe_load(self.remote.text(f"migrations/{SERVICE}/{e.name}") or "")
                out.append(str(doc["spec"]["requiredBy"]))
        return out

    def e_revert(self, pick: int) -> None:
        """``git revert`` of one of the person's last four commits."""
        mine = self.remote.commits[1:]
        if not mine:
            return
        target = mine[-(1 + pick % min(4, len(mine)))]
        self._committed(self.remote.revert(target.sha, self.clock()))

    def e_break(self) -> None:
        self._committed(self.remote.commit({BROKEN_PATH: BROKEN_TEXT},
                                           "r3: move to the new region (broken)", self.clock()))

    def e_fix(self) -> None:
        if self.remote.broken():
            self._committed(self.remote.commit({BROKEN_PATH: cell_yaml("r3")}, "r3: fix",
                                               self.clock()))

    # the fleet (a cell None: the cell whose version changed last)
    def e_degrade(self, cell: str | None) -> None:
        self.fleet.degrade(cell or self.fleet.recent())

    def e_alarm(self, cell: str | None, firing: bool) -> None:
        with self.fleet.lock:
            self.fleet.error_rate[cell or self.fleet.recent()] = 0.4 if firing else 0.0

    def e_drift(self, cell: str | None, terraform: bool) -> None:
        self.fleet.drift(cell or self.fleet.recent(), terraform)

    def e_fail(self, backend: str, cell: str | None, permanent: bool) -> None:
        self.fleet.fail(backend, cell or self.fleet.recent(), permanent)

    def e_api(self, down: bool) -> None:
        with self.fleet.lock:
            self.fleet.api_down = down

    def e_git(self, down: bool) -> None:
        if down:
            self.remote.go_down()
        else:
            self.remote.come_up()

    def then(self, minutes: int) -> None:
        """Time passing after an event (an event of its own in the record)."""
        if minutes:
            self.do("time", minutes)

    # the daemon
    def e_tick(self, once: bool) -> None:
        self._step(once)

    def e_crash(self, graceful: bool) -> None:
        """The daemon stops (SIGTERM: status flushed; kill -9: nothing more); it starts
        again at its next tick (as systemd restarts it), once the remote answers."""
        d, self.daemon = self.daemon, None
        if d is None:
            return
        self.trace.append(f"daemon stops (graceful={graceful})")
        if graceful:
            d.shutdown()
        else:
            d.http.stop()  # the process is gone: only its sockets are closed

    def e_time(self, minutes: int) -> None:
        """``minutes`` pass. The daemon (when running) sees the world at once, then time
        goes on half an hour at a time: in each, the rollouts in progress end and the
        daemon ticks on — one cell's rollout after another — until it has nothing more to
        do in that half hour."""
        left = timedelta(minutes=minutes)
        if self.daemon is not None and left > timedelta(0):
            self._step(False)
        while left > timedelta(0):
            step = min(left, TIME_STEP)
            left -= step
            self.clock.now += step
            for _ in range(ROLLOUTS_PER_STEP):
                self.fleet.settle()
                if self.daemon is None:
                    break
                done = self._done
                self._step(False)
                if self._done == done:
                    break

    # -- the daemon ----------------------------------------------------------------------
    def _config(self) -> DaemonConfig:
        return DaemonConfig(repo=RepoConfig(url=str(self.remote.path)),
                            listen="127.0.0.1:0", state_dir=str(self.state), drift_interval=0,
                            git_author=BOT, leader=LeaderConfig(kind="none"),
                            webhook_secret_env=None)

    def _start(self) -> None:
        if self.daemon is not None or self.remote.down:
            return  # opening would wait for the remote: the daemon stays down meanwhile
        env = Environment(fleet=self.parts, clock=self.clock, monotonic=self.clock.monotonic,
                          start_watcher=_no_watcher)
        d = build_daemon(self._config(), env=env)
        d.background = False  # stepped by hand: no job or thread of its own
        d.tick_listeners.append(self._on_report)
        try:
            opened = d.open()
        except AdapterError as e:
            d.http.stop()
            self.trace.append("daemon cannot start: " +
                              normalized(str(e).replace(str(self.root), "<root>")))
            return
        assert opened
        self.daemon = d
        self.trace.append("daemon starts")

    def _step(self, once: bool) -> None:
        """The daemon fetches and ticks until it settles (``once``: one tick — and the
        one its loop runs at once after adopting its own revert)."""
        self._start()
        if self.daemon is None:
            return
        self._ticks = 0
        reverts = self._reverts
        self.daemon.step(once)
        if once and self._reverts != reverts:
            self.daemon.step(once)

    def _on_report(self, report: TickReport) -> None:
        self.checker.tick_ended()
        self._ticks += 1
        self.reports.append(report)
        self.reports = self.reports[-4:]
        line = f"tick at {self.clock():%a %H:%M}: " + ("not planned" if report.plan is None
                                                        else f"{len(report.outcomes)} run")
        self.trace.append(line)
        self._done += sum(1 for o in report.outcomes if o.status == OutcomeStatus.DONE)
        for o in report.outcomes:
            s = o.step
            self.trace.append(f"  {s.kind} {s.cell or '-'} {s.migration or '-'} "
                              f"{s.from_version}->{s.to_version} {o.status}")
            if s.kind == StepKind.REVERT_COMMIT and o.status == OutcomeStatus.DONE:
                self._reverts += 1
                self._reverted(s.from_version or "", s.wave or "", s.groups, o.detail)
        if self._ticks > MAX_TICKS_PER_STEP:
            self.checker.violate(CONVERGES, (
                f"the daemon made progress in {self._ticks} ticks in a row without settling "
                f"(a livelock); last outcomes: "
                + "; ".join(f"{o.step.id} {o.status}" for o in report.outcomes)))
            self.checker.raise_for(CONVERGES)

    def _reverted(self, version: str, wave: str, groups: tuple[str, ...],
                  detail: str) -> None:
        m = re.search(r"revert committed as ([0-9a-f]+)", detail)
        if m is None:
            return
        repo = pygit2.Repository(str(self.state / "git"))
        commit = repo.revparse_single(m.group(1))
        assert isinstance(commit, pygit2.Commit)
        bump = trailer_of(commit.message, TRAILER)
        if bump is not None:
            self.revert_messages.setdefault(str(commit.id), commit.message)
        self.checker.on_revert(version, wave, groups, str(commit.id), bump, self.clock())

    # -- Git ---------------------------------------------------------------------------
    def _cache(self) -> pygit2.Repository | None:
        path = self.state / "git"
        return pygit2.Repository(str(path)) if (path / "HEAD").exists() else None

    def revert_trailers(self) -> list[str]:
        """The bump named by each revert commit on the remote's branch or still queued."""
        seen: dict[str, str] = {}
        for repo in (self.remote.repo(), self._cache()):
            if repo is None:
                continue
            try:
                head = repo.references[BRANCH].resolve().target
            except KeyError:
                continue
            for c in repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL):
                t = trailer_of(c.message, TRAILER)
                if t:
                    seen[str(c.id)] = t
        return list(seen.values())

    # -- the end of a run: invariants 6 and 7 ---------------------------------------------
    def converge(self) -> None:
        """Events stop: people fix what was broken (the API, the remote, failing applies,
        alarms, the broken revision); time passes an hour at a time while the daemon
        ticks. Within CONVERGE_ROUNDS hours the plan must have no due step, the status in
        Git must match the cluster, and no commit may be lost or duplicated."""
        self.trace.append("events stop")
        self.fleet.heal_faults()
        with self.fleet.lock:
            self.fleet.api_down = False
            self.fleet.error_rate.clear()
        self.remote.come_up()
        self.e_fix()
        quiet = ""
        for hour in range(CONVERGE_ROUNDS):
            if hour:
                self.e_time(60)
            self._step(False)
            quiet = self._unsettled()
            if not quiet:
                break
        else:
            self.checker.violate(CONVERGES, f"not settled after {CONVERGE_ROUNDS} hours: "
                                            f"{quiet}")
            return
        self._status_matches()
        self._nothing_lost()

    def _unsettled(self) -> str:
        """Why the fleet has not settled yet ("" when it has)."""
        if self.daemon is None:
            return "the daemon is not running"
        report = self.reports[-1] if self.reports else None
        if report is None or report.plan is None:
            return "the last tick made no plan"
        due = [s.id for s in report.plan.due_steps()]
        if due:
            return f"due steps remain: {', '.join(due[:4])}"
        timed = [s.id for s in report.plan.steps if s.gate.kind in WAITING_FOR_TIME]
        if timed:
            return f"steps wait for time: {', '.join(timed[:4])}"
        if report.outcomes:
            return "the last tick still ran steps"
        if self.daemon.source is not None and self.daemon.source.pending():
            return f"{self.daemon.source.pending()} commits not pushed"
        moving = [c for c in sorted(CELLS) if self.fleet.live(c).health == "Progressing"]
        if moving:
            return f"rollouts in progress: {', '.join(moving)}"
        return ""

    def _status_matches(self) -> None:
        for cell in sorted(CELLS):
            doc = yaml.safe_load(self.remote.text(f"status/cells/{cell}.yaml") or "{}") or {}
            got = ((doc.get("services") or {}).get(SERVICE) or {})
            live = self.fleet.live(cell)
            want = {"version": str(live.version), "health": live.health}
            if {k: got.get(k) for k in want} != want:
                self.checker.violate(CONVERGES, (
                    f"status/cells/{cell}.yaml in Git says {SERVICE} "
                    f"{got.get('version')} {got.get('health')}; the cluster runs "
                    f"{want['version']} {want['health']}"))
        desired = yaml.safe_load(self.remote.text("status/desired.yaml") or "{}") or {}
        head = self._desired_head()
        if desired.get("revision") != head or desired.get("valid") is not True:
            self.checker.violate(CONVERGES, (
                f"status/desired.yaml says revision {str(desired.get('revision'))[:12]} "
                f"valid={desired.get('valid')}; the branch desires {head[:12]}"))

    def _desired_head(self) -> str:
        """The newest commit on the remote that is not only the daemon's status."""
        c = self.remote.head()
        while len(c.parents) == 1 and c.author.email == BOT[1] and \
                "Reconciler-Status: true" in c.message and all(
                    d.new_file.path.startswith("status/")
                    for d in c.parents[0].tree.diff_to_tree(c.tree).deltas):
            c = c.parents[0]
        return str(c.id)

    def _nothing_lost(self) -> None:
        repo = self.remote.repo()
        head = self.remote.head().id
        for pc in self.remote.commits:
            if str(head) != pc.sha and not repo.descendant_of(head, pygit2.Oid(hex=pc.sha)):
                self.checker.violate(CONVERGES, f"the person's commit {pc.subject!r} is no "
                                                "longer on the branch")
        messages = {c.message for c in repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)}
        cache = self._cache()
        if cache is not None:
            for ref in cache.references:
                if ref.startswith("refs/reconciler/set-aside/"):
                    target = cache.references[ref].resolve().target
                    messages |= {c.message for c in cache.walk(
                        target, pygit2.enums.SortMode.TOPOLOGICAL)}
        for sha, message in sorted(self.revert_messages.items()):
            if message not in messages:
                self.checker.violate(CONVERGES, (
                    f"the daemon's revert {sha[:12]} ({message.splitlines()[0]!r}) is neither "
                    f"on the branch nor set aside: lost"))

    def git_trace(self) -> list[str]:
        """The remote branch, oldest first: author, message and changed files, commit ids
        blanked."""
        repo = self.remote.repo()
        out = []
        walk = repo.walk(self.remote.head().id, pygit2.enums.SortMode.TOPOLOGICAL |
                         pygit2.enums.SortMode.REVERSE)
        for c in walk:
            parent = c.parents[0].tree if c.parents else None
            diff = parent.diff_to_tree(c.tree) if parent is not None else c.tree.diff_to_tree(
                swap=True)
            files = []
            for d in diff.deltas:
                blob = repo.get(d.new_file.id) if d.new_file.id != pygit2.Oid(
                    hex="0" * 40) else None
                text = blob.data.decode() if isinstance(blob, pygit2.Blob) else "<gone>"
                files.append(f"{d.new_file.path}:{normalized(text)}")
            out.append(f"{c.author.email} {normalized(c.message)} {sorted(files)}")
        return out

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.http.stop()
            self.daemon = None
        _RENDER.remove()


def replay(root: Path, options: FleetOptions, events: list[tuple[str, tuple[Any, ...]]],
           ) -> World:
    """A fresh world with ``events`` replayed and converged (invariant 7 compares it)."""
    w = World(root, options)
    for name, args in events:
        w.do(name, *args)
    w.converge()
    return w


def compare(first: World, second: World) -> None:
    """Invariant 7: the same events give the same steps and the same commits."""
    a, b = first.trace, second.trace
    if a != b:
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
        first.checker.violate(DETERMINISTIC, (
            f"a replay of the same events ran differently at line {n} of the trace: "
            f"{a[n] if n < len(a) else '<end>'!r} vs {b[n] if n < len(b) else '<end>'!r}"))
        return
    ga, gb = first.git_trace(), second.git_trace()
    if ga != gb:
        n = next((i for i, (x, y) in enumerate(zip(ga, gb, strict=False)) if x != y),
                 min(len(ga), len(gb)))
        first.checker.violate(DETERMINISTIC, (
            f"a replay of the same events committed differently at commit {n}: "
            f"{ga[n][:300] if n < len(ga) else '<end>'!r} vs "
            f"{gb[n][:300] if n < len(gb) else '<end>'!r}"))

