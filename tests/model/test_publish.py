"""When the daemon commits status, on the model's world (the real daemon and Git remote,
the simulated fleet): a tick that a watch event asked to follow at once leaves the commit
to the tick that follows (the next wave is not held up by a commit and a push); the last
tick of a run always publishes.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.tick import TickReport
from tests.model.world import World


def test_a_tick_followed_at_once_leaves_the_commit_to_the_next(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        daemon = world.daemon
        assert daemon is not None and daemon.source is not None
        world.do("tick", False)  # settled, status published
        source, rec = daemon.source, daemon.source.reconciler
        seen: list[str] = []
        publish, tick = source.publish, rec.tick

        def publishing(report: TickReport) -> None:
            seen.append(f"publish after tick {ticks}")
            publish(report)

        ticks = 0

        def ticking() -> TickReport:
            nonlocal ticks
            ticks += 1
            report = tick()
            if ticks == 1:  # a watch event (a rollout's health, a drift) came meanwhile
                daemon._reconcile.wanted.set()
            return report

        source.publish = publishing  # type: ignore[method-assign]
        rec.tick = ticking  # type: ignore[method-assign]
        daemon.step()
        assert ticks == 2, "the event's tick followed at once"
        assert seen == ["publish after tick 2"], seen
        seen.clear()
        ticks = 5  # no event this time: the tick that nothing follows publishes
        daemon.step()
        assert seen == ["publish after tick 6"], seen
    finally:
        world.close()
