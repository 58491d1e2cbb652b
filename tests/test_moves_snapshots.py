"""Snapshots of Manage Placement, migration progress and maintenance: what the
operator sees at 80x24, from the fixed inventory and clock over scripted hosts
(tests/moves_world.py). Synchronous, as tests/test_snapshots.py explains."""
from __future__ import annotations

import pytest

from mvmtui.engine.model import ENTERING

from conftest import live_engine, make_app
from moves_world import journal_entering, journal_migration, moves_engine

SIZE = (80, 24)


@pytest.fixture
def local_storage(inventory_path):
    """prod as the console test suite sees it: every disk on storage only its host sees."""
    eng = live_engine(inventory_path)
    yield eng
    eng.stop()


@pytest.fixture
def shared(inventory_path):
    eng = moves_engine(inventory_path)
    yield eng
    eng.stop()


@pytest.fixture
def pinned(inventory_path):
    eng = moves_engine(inventory_path, pinned=True)
    yield eng
    eng.stop()


@pytest.fixture
def entering(inventory_path):
    eng = moves_engine(inventory_path, maintenance={"kvm-01": ENTERING})
    journal_entering(eng)
    yield eng
    eng.stop()


def test_manage_placement_says_why_each_host_does_not_fit(snap_compare, local_storage):
    # web-01: kvm-02 only with its disk copied, kvm-03 unreachable; the copy option.
    assert snap_compare(make_app(local_storage, "prod"), terminal_size=SIZE,
                        press=["3", "slash", *"web-01", "enter", "P"])


def test_manage_placement_plans_a_live_migration(snap_compare, shared):
    # Shared storage: kvm-02 fits as the planner's choice; the plan says what happens.
    assert snap_compare(make_app(shared, "prod"), terminal_size=SIZE,
                        press=["3", "slash", *"web-01", "enter", "P", "down"])


def test_migration_progress(snap_compare, shared):
    # A live migration halfway: memory copied, speed, expected downtime, time left.
    journal_migration(shared)
    assert snap_compare(make_app(shared, "prod"), terminal_size=SIZE, press=["4", "enter"])


def test_maintenance_preview_clear(snap_compare, shared):
    assert snap_compare(make_app(shared, "prod"), terminal_size=SIZE, press=["2", "m"])


def test_maintenance_preview_blocked_by_a_pinned_vm(snap_compare, pinned):
    # web-01 is pinned and running: BLOCKED with its ways out; entering is refused.
    assert snap_compare(make_app(pinned, "prod"), terminal_size=SIZE, press=["2", "m"])


def test_maintenance_asks_for_the_host_name(snap_compare, shared):
    assert snap_compare(make_app(shared, "prod"), terminal_size=SIZE,
                        press=["2", "m", "m", *"kvm-0", "enter"])


def test_host_entering_maintenance(snap_compare, entering):
    # kvm-01: "up · entering 1/3" (one move done of three); db-01 migrating.
    assert snap_compare(make_app(entering, "prod"), terminal_size=SIZE, press=["2"])


def test_host_entering_maintenance_task(snap_compare, entering):
    # m on the entering host opens its task: steps and a row per move.
    assert snap_compare(make_app(entering, "prod"), terminal_size=SIZE, press=["2", "m"])
