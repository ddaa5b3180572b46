"""When the daemon commits status, on the model's world (the real daemon and Git remote,
the simulated fleet): a tick that a watch event asked to follow at once leaves the commit
to the tick that follows (the next wave is not held up by a commit and a push); the last
tick of a run always publishes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.daemon import service
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


def _wave_reports(world: World) -> tuple[service.Daemon, TickReport, TickReport,
                                         list[tuple[TickReport, float]]]:
    """The daemon after a settled tick, that tick's report, the same with its first wave
    in progress, and the list of (report, when) the daemon publishes from then on."""
    daemon = world.daemon
    assert daemon is not None and daemon.source is not None
    world.do("tick", False)
    quiet = world.reports[-1]
    assert quiet.plan is not None and quiet.plan.waves
    first = replace(quiet.plan.waves[0], state="in-progress")
    moving = replace(quiet, plan=replace(quiet.plan, waves=(first, *quiet.plan.waves[1:])))
    source, seen = daemon.source, list[tuple[TickReport, float]]()
    publish = source.publish

    def publishing(report: TickReport) -> None:
        when = time.monotonic()
        publish(report)  # seen once done: the test ends after the timer's commit, not in it
        seen.append((report, when))

    source.publish = publishing  # type: ignore[method-assign]
    return daemon, quiet, moving, seen


def _stop_timer(daemon: service.Daemon) -> None:
    """Back to the foreground, with no timer thread left to outlive the test."""
    daemon.background = False
    timer = daemon._publish_timer
    if timer is not None:
        timer.cancel()
        timer.join(10)
        assert not timer.is_alive(), "the status timer did not finish"


def test_a_wave_in_progress_defers_the_commit_to_the_timer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "STATUS_COALESCE_SECONDS", 1.0)
    world = World(tmp_path)
    try:
        daemon, quiet, moving, seen = _wave_reports(world)
        daemon.background = True  # as ``reconciler run``: health events bring the next tick
        try:
            daemon._publish_or_defer(quiet, again=False, adopted=False)
            assert [r for r, _ in seen] == [quiet], "nothing in progress, nothing follows"
            started = time.monotonic()
            daemon._publish_or_defer(moving, again=False, adopted=False)
            assert [r for r, _ in seen] == [quiet], "a wave in progress: left to its ticks"
            while len(seen) < 2 and time.monotonic() - started < 10:
                time.sleep(0.05)
            assert [r for r, _ in seen] == [quiet, moving], "committed by the timer"
            assert time.monotonic() - started >= 0.9
        finally:
            _stop_timer(daemon)
    finally:
        world.close()


def test_the_timer_counts_from_the_first_tick_left_uncommitted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout pushed soon after a commit is not committed in its first seconds: the
    limit is how long status has waited, not how long ago the last commit was."""
    monkeypatch.setattr(service, "STATUS_COALESCE_SECONDS", 1.0)
    world = World(tmp_path)
    try:
        daemon, quiet, moving, seen = _wave_reports(world)
        daemon.background = True
        try:
            daemon._publish_or_defer(quiet, again=False, adopted=False)
            world.clock.now += timedelta(seconds=0.7)  # the commit was 0.7 s ago
            started = time.monotonic()
            daemon._publish_or_defer(moving, again=False, adopted=False)
            world.clock.now += timedelta(seconds=0.5)
            daemon._publish_or_defer(moving, again=True, adopted=False)
            assert [r for r, _ in seen] == [quiet], "1.2 s after the commit, 0.5 s waited"
            while len(seen) < 2 and time.monotonic() - started < 10:
                time.sleep(0.05)
            assert [r for r, _ in seen] == [quiet, moving], "committed by the timer"
            assert seen[1][1] - started >= 0.9, "a full second after the first deferral"
        finally:
            _stop_timer(daemon)
    finally:
        world.close()
