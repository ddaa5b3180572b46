"""The state machine: the events the world can produce, and the invariants after each.

Rules are the events of issue #22 — a person commits (bump one group, bump all, a
``git revert`` of one of their commits, an invalid revision and its fix, a migration
added with a bump); the fleet (a cell Degraded or broken by a hand edit, an alarm firing
or clearing, drift in Kubernetes or Terraform, an apply failing for a while or for good,
the Kubernetes API or the Git remote unreachable until a later event); the daemon (a tick
or a tick loop, a crash or a graceful stop — it starts again at its next tick — and time
passing, with the daemon ticking through it). A person's or the fleet's event may be
followed by minutes passing (``then``). After every rule each invariant is checked by
name; at the end of a run the world converges (invariant 6) and the run is replayed on a
fresh world (invariant 7).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from tests.model import invariants as inv
from tests.model.fleet import KUBERNETES, MIGRATIONS, TERRAFORM
from tests.model.repo import CELLS, GROUPS, VERSIONS, FleetOptions
from tests.model.world import World, compare, replay

#: A cell, or None: the cell whose version changed last (where trouble usually shows).
CELL = st.one_of(st.none(), st.sampled_from(sorted(CELLS)))
#: Minutes that pass after an event (the daemon ticking through them) before the next.
THEN = st.sampled_from([5, 0, 30, 120])
VERSION = st.sampled_from(VERSIONS)
OPTIONS = st.builds(FleetOptions, rollback=st.sampled_from(["wave", "rollback-all"]),
                    parallel_rollback=st.booleans(), self_heal=st.booleans(),
                    windows=st.booleans())


class LoopMachine(RuleBasedStateMachine):
    """The whole loop — person, fleet, daemon — under every interleaving of events."""

    #: Replay each run on a fresh world and compare (invariant 7); the broken-guard tests
    #: of the other invariants turn it off to save time.
    replay = True
    #: Converge at the end of a run (invariant 6); the broken-guard tests of invariants
    #: judged during the run turn it off to save time.
    converge = True

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="reconciler-model-"))
        self.world: World | None = None

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @initialize(options=OPTIONS)
    def start(self, options: FleetOptions) -> None:
        self.world = World(self.tmp / "run", options)

    # -- a person commits (``then``: minutes that pass before the next event) --------------
    @rule(group=st.sampled_from(GROUPS), version=VERSION, then=THEN)
    def bump_one_group(self, group: str, version: str, then: int) -> None:
        self.w.do("bump", (group,), version)
        self.w.then(then)

    @rule(version=VERSION, then=THEN)
    def bump_all(self, version: str, then: int) -> None:
        self.w.do("bump", GROUPS, version)
        self.w.then(then)

    @rule(pick=st.integers(0, 3), then=THEN)
    def human_revert(self, pick: int, then: int) -> None:
        self.w.do("revert", pick)
        self.w.then(then)

    @rule(then=THEN)
    def invalid_revision(self, then: int) -> None:
        self.w.do("break")
        self.w.then(then)

    @rule(then=THEN)
    def fix_revision(self, then: int) -> None:
        self.w.do("fix")
        self.w.then(then)

    @rule(then=THEN)
    def bump_with_migration(self, then: int) -> None:
        self.w.do("bump_with_migration")
        self.w.then(then)

    # -- the fleet ---------------------------------------------------------------------------
    @rule(cell=CELL, then=THEN)
    def cell_degraded(self, cell: str | None, then: int) -> None:
        self.w.do("degrade", cell)
        self.w.then(then)

    @rule(cell=CELL, then=THEN)
    def broken_by_hand(self, cell: str | None, then: int) -> None:
        """Someone edits the cell by hand and it starts failing (drift, then Degraded)."""
        self.w.do("drift", cell, False)
        self.w.do("degrade", cell)
        self.w.then(then)

    @rule(cell=CELL, firing=st.booleans(), then=THEN)
    def alarm(self, cell: str | None, firing: bool, then: int) -> None:
        self.w.do("alarm", cell, firing)
        self.w.then(then)

    @rule(cell=CELL, terraform=st.booleans(), then=THEN)
    def drift(self, cell: str | None, terraform: bool, then: int) -> None:
        self.w.do("drift", cell, terraform)
        self.w.then(then)

    @rule(backend=st.sampled_from([KUBERNETES, TERRAFORM, MIGRATIONS]), cell=CELL,
          permanent=st.booleans(), then=THEN)
    def apply_fails(self, backend: str, cell: str | None, permanent: bool, then: int) -> None:
        self.w.do("fail", backend, cell, permanent)
        self.w.then(then)

    @rule(down=st.booleans(), then=THEN)
    def kubernetes_api(self, down: bool, then: int) -> None:
        self.w.do("api", down)
        self.w.then(then)

    @rule(down=st.booleans(), then=THEN)
    def git_remote(self, down: bool, then: int) -> None:
        self.w.do("git", down)
        self.w.then(then)

    # -- the daemon --------------------------------------------------------------------------
    @rule(once=st.booleans())
    def tick(self, once: bool) -> None:
        self.w.do("tick", once)

    @rule(graceful=st.booleans())
    def crash(self, graceful: bool) -> None:
        self.w.do("crash", graceful)

    @rule(minutes=st.sampled_from([5, 30, 90, 240]))
    def time_passes(self, minutes: int) -> None:
        self.w.do("time", minutes)

    # -- invariants ----------------------------------------------------------------------------
    def _check(self, name: str) -> None:
        if self.world is not None:
            self.world.checker.raise_for(name)

    @invariant()
    def waves_in_order(self) -> None:
        """1: no cell of wave k+1 moves to V before wave k runs V, Healthy, baked."""
        self._check(inv.WAVES_IN_ORDER)

    @invariant()
    def max_unavailable(self) -> None:
        """2: upgraded-but-not-Healthy cells of a wave never exceed maxUnavailable."""
        self._check(inv.MAX_UNAVAILABLE)

    @invariant()
    def failed_version_stays_reverted(self) -> None:
        """3: a failed version is not applied again until a person desires it again after
        the revert; one revert commit per failure, and only for a failure."""
        self._check(inv.FAILED_STAYS_REVERTED)

    @invariant()
    def migrations_expand_before_contract_after(self) -> None:
        """4: expand before requiredBy; contract only without old-shape users; never a
        rollback below a contracted migration."""
        self._check(inv.MIGRATIONS_SAFE)

    @invariant()
    def no_heal_toward_rollback(self) -> None:
        """5: drift is never healed toward a version being rolled back."""
        self._check(inv.NO_HEAL_TOWARD_ROLLBACK)

    @invariant()
    def no_livelock(self) -> None:
        """6 (during the run): a tick loop always settles."""
        self._check(inv.CONVERGES)

    def teardown(self) -> None:
        """6: once events stop the world converges; 7: a replay gives the same run."""
        try:
            if self.world is None:
                return
            if self.converge:
                self.world.converge()
            for name in inv.NAMES:
                self.world.checker.raise_for(name)
            if self.replay and self.converge:
                again = replay(self.tmp / "replay", self.world.options, self.world.events)
                try:
                    compare(self.world, again)
                finally:
                    again.close()
                self.world.checker.raise_for(inv.DETERMINISTIC)
        finally:
            if self.world is not None:
                self.world.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
