"""The invariants of the loop, judged on the simulated fleet and the real Git history.

Each invariant has a name (``docs/planner.md`` lists them beside the rules they protect).
Those about one call into the fleet (1, 3, 4, 5) are judged by the ``Checker`` the fake
backends show every call to *before* it acts, on the state it found; 2 after each apply;
the rest of 3 after each rule on the Git history; 6 and 7 at the end of a run
(``world.py``). A violation is recorded with a message naming the cell, versions and
times; the machine's ``@invariant`` methods raise it, so Hypothesis shrinks the run to the
shortest sequence of events that breaks it.

The checker keeps its own model of what must hold, independent of the planner's:
- baked: every cell of the wave Healthy on its version for the wave's bake time (the
  simulation knows since when each cell is Healthy);
- failures: a version whose wave failed (a revert-commit step done) stays *armed* —
  no cell may be moved to it — until a person commits a release desiring it on a history
  that already holds the daemon's revert;
- migrations: every migration the person ever added (even one a later revert removed
  from the desired state) with its ranges, and each database's ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.core.model import DesiredState, Wave
from reconciler.core.versions import Version, VersionRange
from tests.model.fleet import KUBERNETES, MIGRATIONS, Call, FakeFleet
from tests.model.repo import CELLS, SERVICE, WAVES, PersonCommit

WAVES_IN_ORDER = "1-waves-in-order"
MAX_UNAVAILABLE = "2-max-unavailable"
FAILED_STAYS_REVERTED = "3-failed-version-stays-reverted"
MIGRATIONS_SAFE = "4-expand-before-contract-after"
NO_HEAL_TOWARD_ROLLBACK = "5-no-heal-toward-rollback"
CONVERGES = "6-git-and-cluster-converge"
DETERMINISTIC = "7-deterministic"
NAMES = (WAVES_IN_ORDER, MAX_UNAVAILABLE, FAILED_STAYS_REVERTED, MIGRATIONS_SAFE,
         NO_HEAL_TOWARD_ROLLBACK, CONVERGES, DETERMINISTIC)

#: The fleet alarm's threshold (repo.py): an error rate over it on an upgraded cell fails.
ALARM_THRESHOLD = 0.05


class InvariantViolated(AssertionError):
    """An invariant of the loop does not hold; the message names it."""


@dataclass(frozen=True)
class Armed:
    """A version that failed: no cell may be moved to it until a person desires it again
    after the revert."""

    version: str
    wave: str
    groups: tuple[str, ...]
    revert: str  # the revert commit's id
    bump: str  # the bump commit its trailer names
    at: datetime


@dataclass(frozen=True)
class KnownMigration:
    mid: str
    database: str
    required_by: VersionRange
    old_shape_used_by: VersionRange


@dataclass
class Checker:
    """Judges every call of the engine into the fleet; keeps the violations found."""

    violations: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in NAMES})
    armed: dict[str, Armed] = field(default_factory=dict)
    #: Every revert commit of the daemon seen done: id -> (version, bump it names)
    reverts: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Cells seen failing (Degraded, or alarmed after an upgrade) per version, since a
    #: person last desired that version anew.
    evidence: dict[str, set[str]] = field(default_factory=dict)
    migrations: dict[str, KnownMigration] = field(default_factory=dict)
    #: wave -> (the version it settled on, since when): its bake (``track_bakes``)
    bakes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    #: Cells the engine rolled back automatically in the current tick: cell -> the
    #: version it left (the failure is recorded in Git before any cell step runs).
    rolled_back: dict[str, str] = field(default_factory=dict)
    #: The desired state of the engine's last call (what "settled" is judged against).
    desired: DesiredState | None = None
    _reported: set[str] = field(default_factory=set)

    def violate(self, name: str, message: str) -> None:
        self.violations[name].append(message)

    def raise_for(self, name: str) -> None:
        found = self.violations[name]
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise InvariantViolated(f"invariant {name} violated: {found[0]}{more}")

    # -- fleet-wide facts -----------------------------------------------------------------
    @staticmethod
    def _wave_of(desired: DesiredState, cell: str) -> tuple[int, Wave] | None:
        group = desired.cells[cell].group
        for i, w in enumerate(desired.fleet.waves):
            if group in w.groups:
                return i, w
        return None

    @staticmethod
    def _managed(desired: DesiredState, wave: Wave) -> list[str]:
        return [c.name for c in desired.cells_of_wave(wave)
                if desired.desired_version(SERVICE, c) is not None]

    def track_bakes(self, fleet: FakeFleet) -> None:
        """Note when each wave settles on a version (every cell Healthy at the version the
        engine last desired for it; the lowest version counts): its bake of that version
        runs from the first time it settled there until it settles on another. A cell
        leaving the version and coming back does not restart it — the planner's rule: a
        bake is evidence about the version in that wave."""
        now, d = fleet.clock(), self.desired
        with fleet.lock:
            for name, groups, _, _ in WAVES:
                cells = [c for c, (g, _) in CELLS.items() if g in groups]
                if any(fleet.live(c).health != "Healthy" or (
                        d is not None and d.desired_version(SERVICE, d.cells[c]) !=
                        fleet.version(c)) for c in cells):
                    continue
                low = str(min(fleet.version(c) for c in cells))
                if self.bakes.get(name, ("", now))[0] != low:
                    self.bakes[name] = (low, now)

    def _baked(self, fleet: FakeFleet, desired: DesiredState, wave: Wave,
               now: datetime) -> tuple[bool, str]:
        """Settled on a version whose bake in the wave has run its time; else why not."""
        cells = self._managed(desired, wave)
        for c in cells:
            if fleet.live(c).health != "Healthy":
                return False, f"{c} is {fleet.live(c).health} on {fleet.version(c)}"
        low = str(min(fleet.version(c) for c in cells))
        version, since = self.bakes.get(wave.name, ("", now))
        if version != low:
            return False, f"it has not settled on {low} before"
        left = since + timedelta(seconds=wave.bake_seconds) - now
        if left > timedelta(0):
            return False, (f"it settled on {low} at {since:%H:%M} "
                           f"({int(left.total_seconds())}s of bake left)")
        return True, ""

    def observe_evidence(self, fleet: FakeFleet) -> None:
        """Remember the cells failing now (what the planner may see on its next tick)."""
        with fleet.lock:
            for c in fleet.cells:
                live = fleet.live(c)
                alarmed = fleet.error_rate.get(c, 0.0) > ALARM_THRESHOLD and \
                    live.previous_version is not None and live.version is not None and \
                    live.previous_version < live.version
                if live.health == "Degraded" or alarmed:
                    self.evidence.setdefault(str(live.version), set()).add(c)

    # -- the engine's calls ---------------------------------------------------------------
    def before(self, call: Call, fleet: FakeFleet) -> None:
        self.desired = call.desired
        self.observe_evidence(fleet)
        now = fleet.clock()
        if call.backend == MIGRATIONS:
            self._migration(call, fleet, now)
            return
        assert call.version is not None
        to = Version.parse(call.version)
        running = fleet.live(call.cell).version
        if running is None or to > running:
            self._waves_in_order(call, fleet, to, now)
        if self.rolled_back.get(call.cell) == str(to):
            self.violate(NO_HEAL_TOWARD_ROLLBACK, (
                f"{call.backend} applied {to} to {call.cell} again in the very tick that "
                f"rolled it back from {to} (a heal of its drift planned toward the failing "
                f"version)"))
        elif running != to:
            self._not_armed(call, to, running)
        if running != to:
            self._expanded(call, fleet, to)
        if call.backend == KUBERNETES and running is not None and to < running:
            self._above_floor(call, fleet, running, to)
            cell = call.desired.cells[call.cell]
            if call.desired.desired_version(SERVICE, cell) == running:
                self.rolled_back[call.cell] = str(running)  # not a person's revert
        if running == to:
            self._heal(call, fleet, to)

    def changed(self, fleet: FakeFleet) -> None:
        """The fleet changed by itself (rollouts ended, a cell failed)."""
        self.track_bakes(fleet)
        self.observe_evidence(fleet)

    def after(self, call: Call, fleet: FakeFleet) -> None:
        self.track_bakes(fleet)
        if call.backend != KUBERNETES:
            return
        found = self._wave_of(call.desired, call.cell)
        if found is None:
            return
        _, wave = found
        cells = self._managed(call.desired, wave)
        limit = wave.max_unavailable.for_cells(len(cells))
        changing = [c for c in cells if fleet.cells[c].in_flight and
                    fleet.live(c).health != "Healthy"]
        if len(changing) > limit:
            self.violate(MAX_UNAVAILABLE, (
                f"at {fleet.clock():%a %H:%M} {len(changing)} cells of wave {wave.name!r} "
                f"are upgraded but not Healthy ({', '.join(sorted(changing))}), over "
                f"maxUnavailable {wave.max_unavailable} ({limit})"))

    def _waves_in_order(self, call: Call, fleet: FakeFleet, to: Version, now: datetime) -> None:
        found = self._wave_of(call.desired, call.cell)
        if found is None:
            return
        index, wave = found
        for earlier in call.desired.fleet.waves[:index]:
            behind = [c for c in self._managed(call.desired, earlier)
                      if fleet.version(c) < to]
            if behind:
                self.violate(WAVES_IN_ORDER, (
                    f"{call.backend} moved {call.cell} (wave {wave.name!r}) to {to} at "
                    f"{now:%a %H:%M} while earlier wave {earlier.name!r} does not run it: "
                    + ", ".join(f"{c} runs {fleet.version(c)}" for c in behind)))
                return
            baked, why = self._baked(fleet, call.desired, earlier, now)
            if not baked:
                self.violate(WAVES_IN_ORDER, (
                    f"{call.backend} moved {call.cell} (wave {wave.name!r}) to {to} at "
                    f"{now:%a %H:%M} before earlier wave {earlier.name!r} baked it: {why}"))
                return

    def _not_armed(self, call: Call, to: Version, running: Version | None) -> None:
        a = self.armed.get(str(to))
        if a is not None:
            self.violate(FAILED_STAYS_REVERTED, (
                f"{call.backend} moved {call.cell} from {running} to {to}, which failed in "
                f"wave {a.wave!r} at {a.at:%a %H:%M} (revert {a.revert[:12]}); no person "
                f"has desired {to} again since the revert"))

    def _expanded(self, call: Call, fleet: FakeFleet, to: Version) -> None:
        if call.backend != KUBERNETES:
            return
        cell = call.desired.cells[call.cell]
        for m in call.desired.migrations_of(SERVICE):
            if not m.required_by.contains(to) or cell.database(m.database) is None:
                continue
            phase = fleet.migrations.phase(call.cell, m.database, m.id)
            if phase not in ("expanded", "contracted"):
                self.violate(MIGRATIONS_SAFE, (
                    f"{call.cell} moved to {to} (in {m.id}'s requiredBy {m.required_by}) "
                    f"while {m.id} is {phase or 'not run'} on its database {m.database!r}"))

    def _known(self, desired: DesiredState) -> list[KnownMigration]:
        out = dict(self.migrations)
        for m in desired.migrations_of(SERVICE):
            out[m.id] = KnownMigration(m.id, m.database, m.required_by, m.old_shape_used_by)
        return [out[k] for k in sorted(out)]

    def _above_floor(self, call: Call, fleet: FakeFleet, running: Version, to: Version) -> None:
        for m in self._known(call.desired):
            if fleet.migrations.phase(call.cell, m.database, m.mid) != "contracted":
                continue
            if m.required_by.contains(running) and not m.required_by.contains(to):
                self.violate(MIGRATIONS_SAFE, (
                    f"{call.cell} rolled back from {running} to {to}, below {m.mid} "
                    f"(requiredBy {m.required_by}) which is contracted on its database"))

    def _migration(self, call: Call, fleet: FakeFleet, now: datetime) -> None:
        assert call.migration is not None
        m = next((k for k in self._known(call.desired) if k.mid == call.migration), None)
        if m is None:
            return
        phase = fleet.migrations.phase(call.cell, m.database, m.mid)
        if call.action == "rollback" and phase == "contracted":
            self.violate(MIGRATIONS_SAFE, f"{m.mid}'s rollback ran on {call.cell} after its "
                                          "contract")
        if call.action != "contract":
            return
        d = call.desired
        for cell in sorted(d.cells):
            found = self._wave_of(d, cell)
            wave_baked = found is not None and self._baked(fleet, d, found[1], now)[0]
            live = fleet.live(cell)
            uses = {"runs": live.version, "desires": d.desired_version(SERVICE, d.cells[cell]),
                    "may roll back to": None if wave_baked else live.previous_version}
            for what, v in uses.items():
                if v is not None and m.old_shape_used_by.contains(v):
                    self.violate(MIGRATIONS_SAFE, (
                        f"contract of {m.mid} ran on {call.cell} at {now:%a %H:%M} while "
                        f"{cell} {what} {v}, in its oldShapeUsedBy {m.old_shape_used_by}"))
                    return

    def _heal(self, call: Call, fleet: FakeFleet, to: Version) -> None:
        cell = call.desired.cells[call.cell]
        desired = call.desired.desired_version(SERVICE, cell)
        a = self.armed.get(str(to))
        if a is not None and cell.group in a.groups:
            self.violate(NO_HEAL_TOWARD_ROLLBACK, (
                f"{call.backend} re-applied {to} to {call.cell} (healing drift) while {to} is "
                f"being rolled back in group {cell.group!r} (failed in wave {a.wave!r})"))
        elif desired is not None and desired < to:
            self.violate(NO_HEAL_TOWARD_ROLLBACK, (
                f"{call.backend} re-applied {to} to {call.cell} (healing drift) while its "
                f"desired version is {desired} (a rollback)"))

    # -- what the daemon and the person did -------------------------------------------------
    def tick_ended(self) -> None:
        self.rolled_back.clear()

    def on_revert(self, version: str, wave: str, groups: tuple[str, ...], revert: str,
                  bump: str | None, at: datetime) -> None:
        """A revert-commit step was done; ``bump`` is the trailer of the commit it returned
        (None when the answer was a person's own revert)."""
        if revert in self.reverts:
            return  # the same revert answered again while the failure is remembered
        if bump is not None:
            self.reverts[revert] = (version, bump)
            if not self.evidence.get(version):
                self.violate(FAILED_STAYS_REVERTED, (
                    f"revert {revert[:12]} of {version} (wave {wave!r}) committed at "
                    f"{at:%a %H:%M} though no cell failed on {version} since a person last "
                    f"desired it"))
        self.armed[version] = Armed(version, wave, groups, revert, bump or "", at)

    def on_person_commit(self, pc: PersonCommit) -> None:
        """A person's commit: a version it desires on a history holding the version's
        revert is desired again."""
        desired = set(pc.versions.values())
        for v, a in list(self.armed.items()):
            if v in desired and (not a.bump or a.bump in pc.reverts_seen):
                del self.armed[v]
                self.evidence.pop(v, None)

    def check_history(self, trailers: list[str]) -> None:
        """At most one revert commit of the daemon per bump commit."""
        for bump, n in Counter(trailers).items():
            if n > 1 and bump not in self._reported:
                self._reported.add(bump)
                self.violate(FAILED_STAYS_REVERTED, (
                    f"{n} revert commits name bump {bump[:12]} (Reconciler-Rollback-Of)"))

