"""Snapshot tests: what the operator sees, from a fixed inventory and a fixed clock.

Synchronous on purpose (snap_compare runs its own event loop). On failure, the
conftest prints the two screens' text as a diff; `--snapshot-update` rewrites them.
"""
from __future__ import annotations

from conftest import make_app

SIZE = (120, 36)


def test_cluster_list(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine), terminal_size=SIZE)


def test_cluster_summary(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE)


def test_hosts_tab(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE, press=["2"])


def test_vms_tab(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE, press=["3"])


def test_vms_tab_filtered(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["3", "slash", *"kvm-03"])


def test_history_tab(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE, press=["4"])


def test_host_detail_unreachable(snap_compare, mixed_engine):
    # kvm-03: unreachable, with its problem, data age and last-known (stale) VMs.
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["2", "G", "enter"])


def test_vm_detail(snap_compare, mixed_engine):
    # db-01: live, three disks (RBD and a CD-ROM), two NICs.
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["3", "j", "j", "j", "enter"])


def test_task_detail_failed(snap_compare, mixed_engine):
    # Start batch-01: refused by libvirt, with its reason, steps and log.
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["4", "j", "enter"])


def test_help(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["3", "question_mark"])


def test_confirm_force_off(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE,
                        press=["3", "G", "F"])


def test_failed_action_notification(snap_compare, mixed_engine):
    # Start batch-01 whose host is unreachable: "started", then the engine's reason.
    async def act(pilot):
        await pilot.pause()
        await pilot.press("3", "s")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SIZE, run_before=act)


def test_read_only_mode(snap_compare, readonly_engine):
    # READ-ONLY badge; no VM action keys in the footer.
    assert snap_compare(make_app(readonly_engine, "prod"), terminal_size=SIZE, press=["3"])


def test_offline_stale_cluster(snap_compare, offline_engine):
    # Offline: every host stale, every VM its last known state marked stale.
    assert snap_compare(make_app(offline_engine, "lab"), terminal_size=SIZE, press=["3"])


def test_offline_summary_is_last_known(snap_compare, offline_engine):
    # Offline: the capacity gauges say their figures are last known (stale).
    assert snap_compare(make_app(offline_engine, "prod"), terminal_size=SIZE)


def test_running_vm_keys_at_80_columns(snap_compare, mixed_engine):
    # web-01 is running: d F b p in the footer (not s), and "? Help" still fits.
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=(80, 24),
                        press=["3", "slash", *"web-01", "enter"])


def test_quit_asks_when_it_takes_the_lab_down(snap_compare, mixed_engine):
    from mvmtui.app import MvmApp

    app = MvmApp(mixed_engine, lab_demo="lab")
    app.animation_level = "none"
    assert snap_compare(app, terminal_size=(80, 24), press=["q"])


def _settings_app(engine):
    from mvmtui.app import MvmApp, Preferences
    from mvmtui.engine.settings import Settings

    engine.set_policy("prod", ["vcpu-ratio=3", "shared-datastores=ceph,nfs"])
    app = MvmApp(engine, start_cluster="prod", preferences=Preferences(
        keys=(("app.help", "f1"),), path="/home/operator/.config/mvmtui/settings.toml",
        others=Settings(reconcile=600).describe()))
    app.animation_level = "none"
    return app


def test_settings_screen(snap_compare, mixed_engine):
    # prod's policy (two values off their defaults), then the preferences in effect:
    # help moved to f1, a longer reconciliation, and the file they come from.
    assert snap_compare(_settings_app(mixed_engine), terminal_size=SIZE, press=["S"])


def test_settings_refuses_a_value_out_of_range(snap_compare, mixed_engine):
    # memory-ratio 9: the engine's reason in the dialog; nothing changed.
    assert snap_compare(_settings_app(mixed_engine), terminal_size=SIZE,
                        press=["S", "j", "enter", "ctrl+u", "9", "enter"])
