"""Start-up: collection is off while the command starts and back on once it has."""
from __future__ import annotations

import gc

from mvmtui import launch

from conftest import make_app, run_app


def test_started_freezes_start_up_objects_and_collects_again():
    launch.begin()
    try:
        assert not gc.isenabled()
        launch.started()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        launch.started()                     # idempotent
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_without_begin_started_changes_nothing():
    assert gc.isenabled()
    launch.started()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_console_collects_again_once_created(mixed_engine):
    launch.begin()
    try:
        app = make_app(mixed_engine)
        assert gc.isenabled()

        async def check(pilot):
            await pilot.pause()
            assert gc.isenabled()

        run_app(app, check)
    finally:
        gc.unfreeze()
        gc.enable()
