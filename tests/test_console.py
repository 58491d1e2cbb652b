"""The console driven by keys (Textual pilot) over an offline engine and a fixed inventory."""
from __future__ import annotations

import functools
import re
import threading
from dataclasses import replace

from mvmtui.engine.errors import ReadOnly
from mvmtui.engine.model import (HostKeyQuestion, HostStatus, TaskChanged,
                                 TaskStatus, VmChanged, VmRemoved, VmState)
from mvmtui.engine.tasks import Busy
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.clusters import ClustersScreen
from mvmtui.screens.confirm import ConfirmScreen
from mvmtui.screens.help import HelpScreen
from mvmtui.screens.host import HostScreen
from mvmtui.screens.host_key import HostKeyScreen
from mvmtui.screens.task import TaskScreen
from mvmtui.screens.vm import VmScreen
from mvmtui.widgets.listing import Listing
from mvmtui.widgets.title_bar import TitleBar

from conftest import FIXED, make_app, run_app, uuid_of


def vms_table(app):
    return app.screen.query_one("#vms", Listing).table


def cell_text(table, key, column):
    index = [c.key for c in table.columns].index(column)
    row = next(r for r in table._view if r.key == key)
    cell = row.cells[index]
    return getattr(cell, "plain", str(cell))


def visible_keys(table):
    return [table._view[i].key for i in range(table.row_count)]


class Recorder:
    """Stands in for Engine.vm_action: records calls, answers with a finished task."""

    def __init__(self, engine, outcome=TaskStatus.SUCCEEDED, error="", raises=None):
        self.engine, self.calls = engine, []
        self.outcome, self.error, self.raises = outcome, error, raises

    async def __call__(self, uuid, action):
        self.calls.append((uuid, action))
        if self.raises:
            raise self.raises
        task = self.engine.tasks(limit=1)[0]
        return replace(task, id=99, status=self.outcome, error=self.error)


def test_filter_narrows_the_vms_table_and_escape_clears_it(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "slash", *"web")
        table = vms_table(app)
        assert visible_keys(table) == [uuid_of(1), uuid_of(2)]
        caption = str(app.screen.query_one("#vms .caption").render())
        assert "2 of 8 VMs match “web”" in caption
        await pilot.press("enter")                 # keep the filter, back to the table
        assert app.focused is table and table.filter_text == "web"
        await pilot.press("escape")                # first escape clears the filter …
        assert table.row_count == 8 and isinstance(app.screen, ClusterScreen)
        await pilot.press("slash", *"kvm-03", "escape")   # … or escape in the bar
        assert table.row_count == 8 and app.focused is table

    run_app(app, check)


def test_sort_by_column_is_numeric_for_sizes(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3")
        table = vms_table(app)
        assert cell_text(table, table._view[0].key, "name") == "batch-01"   # by name first
        table.sort_by("memory")
        await pilot.pause()
        sizes = [cell_text(table, k, "memory") for k in visible_keys(table)]
        assert sizes == ["2.0 GiB", "4.0 GiB", "4.0 GiB", "8.0 GiB", "16.0 GiB",
                         "32.0 GiB", "32.0 GiB", "64.0 GiB"]
        await pilot.press("O")                      # reverse
        assert cell_text(table, visible_keys(table)[0], "memory") == "64.0 GiB"
        await pilot.press("o")                      # next column: CPU %
        assert table.sort_key == "cpu"
        cpus = [cell_text(table, k, "cpu") for k in visible_keys(table)]
        assert cpus[:3] == ["8.0%", "12%", "55%"]   # numbers in order, unknowns after

    run_app(app, check)


def test_enter_opens_details_and_escape_goes_back(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("2", "enter")
        assert isinstance(app.screen, HostScreen) and app.screen.host_name == "kvm-01"
        await pilot.press("escape")
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("3", "enter")
        assert isinstance(app.screen, VmScreen) and app.screen.uuid == uuid_of(6)
        await pilot.press("q")                      # q is back too, below the root
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("4", "enter")
        assert isinstance(app.screen, TaskScreen) and app.screen.task_id == 6
        await pilot.press("t")                      # the task's target
        assert isinstance(app.screen, VmScreen) and app.screen.uuid == uuid_of(2)
        await pilot.press("escape", "escape", "escape")
        assert isinstance(app.screen, ClustersScreen)
        await pilot.press("escape")                 # escape never leaves the root
        assert isinstance(app.screen, ClustersScreen) and app.is_running

    run_app(app, check)


class Spy:
    """Wraps the engine's real vm_action: records each call, then lets it run."""

    def __init__(self, real):
        self.real, self.calls = real, []

    async def __call__(self, uuid, action):
        self.calls.append((uuid, action))
        return await self.real(uuid, action)


def test_readonly_hides_and_refuses_vm_actions(readonly_engine, monkeypatch):
    spy = Spy(readonly_engine.vm_action)
    monkeypatch.setattr(readonly_engine, "vm_action", spy)
    app = make_app(readonly_engine, "prod")
    tasks_before = readonly_engine.tasks()

    async def check(pilot):
        await pilot.press("3")
        actions = {a.binding.action for a in app.screen.active_bindings.values()}
        assert not any(a.startswith("vm_action") for a in actions)
        assert app.screen.check_action("vm_action", ("destroy",)) is False
        await pilot.press("s", "F", "d", "b", "p", "r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        # Neither the console nor the engine saw an action: no call, no "started", no task.
        assert spy.calls == [] and list(app._notifications) == []
        assert readonly_engine.tasks() == tasks_before
        assert "READ-ONLY" in str(app.screen.query_one(TitleBar).render())
        # The spy is in the path an action takes: had a key run one, the checks above
        # would have seen it (and the engine refuses on its own).
        app.run_vm_action(uuid_of(1), "start", "web-01")
        await app.workers.wait_for_complete()
        assert spy.calls == [(uuid_of(1), "start")]
        assert "Read-only mode" in list(app._notifications)[-1].message

    run_app(app, check)


def test_readonly_engine_refuses_on_its_own(readonly_engine):
    import asyncio

    async def go():
        try:
            await readonly_engine.vm_action(uuid_of(1), "destroy")
        except ReadOnly as exc:
            return str(exc)
    assert "Read-only mode" in asyncio.run(go())


def test_destructive_action_asks_first_and_defaults_to_no(mixed_engine, monkeypatch):
    fake = Recorder(mixed_engine)
    monkeypatch.setattr(mixed_engine, "vm_action", fake)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "G")                  # web-02, the last row
        await pilot.press("F")
        assert isinstance(app.screen, ConfirmScreen)
        body = app.screen.body
        assert body.startswith("Force off web-02 on kvm-02: cuts the power, like pulling "
                               "the plug. Unsaved data in the guest is lost.")
        await pilot.press("enter")                   # enter on the default button: No
        assert not isinstance(app.screen, ConfirmScreen) and fake.calls == []
        await pilot.press("F", "n")
        assert fake.calls == []
        await pilot.press("F", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert fake.calls == [(uuid_of(2), "destroy")]
        messages = [n.message for n in app._notifications]
        assert messages == ["Force off web-02: started", "Force off web-02: succeeded"]
        await pilot.press("s")                       # not destructive: no question
        await app.workers.wait_for_complete()
        assert fake.calls[-1] == (uuid_of(2), "start")

    run_app(app, check)


def test_failures_and_refusals_are_notified_as_errors(mixed_engine, monkeypatch):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        # The real engine: kvm-03 is unreachable, so the task fails and says why.
        await pilot.press("3", "s")                  # batch-01 on kvm-03
        await app.workers.wait_for_complete()
        await pilot.pause()
        last = list(app._notifications)[-1]
        assert last.severity == "error"
        assert last.message.startswith("Start batch-01 failed: Host kvm-03 is unreachable")
        assert "nothing was changed" in last.message
        # Busy from the engine: its message, as an error, no traceback.
        monkeypatch.setattr(mixed_engine, "vm_action", Recorder(
            mixed_engine, raises=Busy("busy: vm:x (task 3) is locked by another task")))
        await pilot.press("r")                       # resume: never asks first
        await app.workers.wait_for_complete()
        await pilot.pause()
        last = list(app._notifications)[-1]
        assert last.severity == "error" and "locked by another task" in last.message
        assert app.is_running

    run_app(app, check)


def test_palette_command_opens_a_vm(offline_engine):
    app = make_app(offline_engine)

    async def check(pilot):
        await pilot.press("ctrl+p")
        await pilot.press(*"Open VM db-01")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, VmScreen) and app.screen.uuid == uuid_of(3)

    run_app(app, check)


def test_palette_lists_the_screens_actions_and_the_inventory(mixed_engine):
    from mvmtui.app import ConsoleCommands

    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3")
        names = [name for name, _, _ in
                 ConsoleCommands(app.screen)._commands(with_inventory=True)]
        for expected in ("Force off", "Shut down", "Filter", "Sort", "Help", "Back",
                         "Open cluster lab", "Open host kvm-03", "Open VM web-01"):
            assert expected in names

    run_app(app, check)


def test_help_lists_the_bindings_of_the_screen_underneath(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        groups = app.screen.groups
        described = {d for rows in groups.values() for _, d in rows}
        assert {"Start", "Shut down", "Force off", "Reboot", "Suspend", "Resume"} <= described
        assert {"Filter", "Summary", "History", "Sort", "Help", "Back"} <= described
        assert ("F", "Force off") in groups["VM actions"]
        await pilot.press("escape")
        assert isinstance(app.screen, ClusterScreen)

    run_app(app, check)


def test_engine_events_are_coalesced_and_update_the_tables(mixed_engine, monkeypatch):
    app = make_app(mixed_engine, "prod")
    seen = []
    original = ClusterScreen.apply_changes

    def spy(self, changes):
        seen.append(changes)
        original(self, changes)
    monkeypatch.setattr(ClusterScreen, "apply_changes", spy)

    async def check(pilot):
        await pilot.press("3")
        table = vms_table(app)
        web = mixed_engine.vm(uuid_of(1))
        seen.clear()

        def burst():   # from another thread, as the engine does
            for i in range(2000):
                cpu = float(i % 100)
                app._on_engine_event(VmChanged(replace(web, cpu_pct=cpu)))
        t = threading.Thread(target=burst)
        t.start()
        t.join()
        # The screens re-read the engine: change the engine's own copy, as it would.
        mixed_engine._vms[web.uuid] = replace(web, state=VmState.PAUSED)
        await pilot.pause(0.35)
        assert 1 <= len(seen) <= 2 and all(len(c.vms) == 1 for c in seen)
        assert cell_text(table, web.uuid, "state") == "paused"
        # A host that goes down makes its VMs stale (the engine's own path).
        mixed_engine._loop.call_soon_threadsafe(functools.partial(
            mixed_engine._set_host, ("prod", "kvm-01"), status=HostStatus.UNREACHABLE,
            problem="lost contact"))
        await pilot.pause(0.3)
        assert cell_text(table, uuid_of(3), "state") == "running (stale)"
        assert cell_text(table, uuid_of(3), "age").startswith("stale · ")
        # A VM that disappears leaves the table.
        mixed_engine._vms.pop(uuid_of(5))
        app._on_engine_event(VmRemoved("prod", uuid_of(5)))
        await pilot.pause(0.3)
        assert uuid_of(5) not in visible_keys(table) and table.total_count == 7

    run_app(app, check)


def test_task_screen_follows_a_running_task(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("4", "enter")
        screen = app.screen
        assert isinstance(screen, TaskScreen) and screen.task_id == 6
        inv = mixed_engine.inv
        inv.add_log(6, FIXED, "info", "VM is paused")
        inv.update_step(6, 2, status=TaskStatus.SUCCEEDED, finished_at=FIXED)
        inv.update_task(6, status=TaskStatus.SUCCEEDED, progress=1.0, finished_at=FIXED)
        app._on_engine_event(TaskChanged(mixed_engine.task(6)))
        await pilot.pause(0.3)
        log = screen.query_one("#log", Listing).table
        assert log.row_count == 4 and cell_text(log, "3", "message") == "VM is paused"
        assert screen.entry.status is TaskStatus.SUCCEEDED

    run_app(app, check)


def test_host_key_question_is_asked_in_a_dialog(mixed_engine, monkeypatch):
    app = make_app(mixed_engine)
    trusted = []

    async def trust(cluster, name, fingerprint):
        trusted.append((cluster, name, fingerprint))

    async def nothing(*args):                       # ctrl+r: no host is really asked
        pass
    monkeypatch.setattr(mixed_engine, "trust_host_key", trust)
    monkeypatch.setattr(mixed_engine, "retry_host", nothing)
    monkeypatch.setattr(mixed_engine, "refresh", nothing)
    host = mixed_engine.host("lab", "lab-01")
    question = HostKeyQuestion(host, "ssh-ed25519", "SHA256:abcDEF0123456789")

    async def check(pilot):
        app._on_engine_event(question)
        app._on_engine_event(question)              # asked once, not twice
        await pilot.pause(0.3)
        assert isinstance(app.screen, HostKeyScreen)
        assert len([s for s in app.screen_stack if isinstance(s, HostKeyScreen)]) == 1
        await pilot.press("enter")                  # default: No
        assert not isinstance(app.screen, HostKeyScreen) and trusted == []
        app._on_engine_event(question)              # declined: not asked again …
        await pilot.pause(0.3)
        assert not isinstance(app.screen, HostKeyScreen)
        other = HostKeyQuestion(host, "ssh-ed25519", "SHA256:anotherKEY")
        app._on_engine_event(other)                 # … but another key is a new question
        await pilot.pause(0.3)
        assert isinstance(app.screen, HostKeyScreen) and app.screen.question == other
        await pilot.press("n")
        await pilot.press("ctrl+r")                 # refresh forgets the answers
        await app.workers.wait_for_complete()
        app._on_engine_event(question)
        await pilot.pause(0.3)
        assert isinstance(app.screen, HostKeyScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert trusted == [("lab", "lab-01", "SHA256:abcDEF0123456789")]

    run_app(app, check)


def test_host_key_in_read_only_mode_is_reported_not_asked(readonly_engine):
    app = make_app(readonly_engine)
    host = readonly_engine.host("lab", "lab-01")
    question = HostKeyQuestion(host, "ssh-ed25519", "SHA256:abcDEF0123456789")

    async def check(pilot):
        app._on_engine_event(question)
        await pilot.pause(0.3)
        assert not isinstance(app.screen, HostKeyScreen)
        [note] = list(app._notifications)
        assert note.severity == "error"
        assert "lab-01" in note.message and "SHA256:abcDEF0123456789" in note.message
        assert "start without --readonly to trust it" in note.message
        app._on_engine_event(question)              # the host's next retry: said once
        await pilot.pause(0.3)
        assert len(app._notifications) == 1 and not isinstance(app.screen, HostKeyScreen)

    run_app(app, check)


def test_refresh_in_offline_mode_says_nothing_is_asked(offline_engine):
    app = make_app(offline_engine)

    async def check(pilot):
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        assert "Offline" in list(app._notifications)[-1].message

    run_app(app, check)


def test_palette_runs_a_screen_action_on_the_current_vm(mixed_engine, monkeypatch):
    fake = Recorder(mixed_engine)
    monkeypatch.setattr(mixed_engine, "vm_action", fake)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("2", "enter")             # host kvm-01; its VMs table has focus
        assert isinstance(app.screen, HostScreen)
        await pilot.press("ctrl+p", *"Force off")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body.startswith("Force off cache-01 on kvm-01")
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert fake.calls == [(uuid_of(5), "destroy")]

    run_app(app, check)


def test_quit_asks_while_actions_started_here_are_running(mixed_engine, monkeypatch):
    release = None

    async def slow(uuid, action):                   # a task that takes its time
        await release.wait()
        return mixed_engine.tasks(limit=1)[0]
    monkeypatch.setattr(mixed_engine, "vm_action", slow)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        nonlocal release
        import asyncio
        release = asyncio.Event()
        await pilot.press("3", "s", "j", "s")        # start web-01 and batch-01
        await pilot.press("escape")
        assert isinstance(app.screen, ClustersScreen)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "quit"
        assert app.screen.body.startswith("2 tasks are still running: quit anyway? "
                                          "Their outcome will be unknown")
        await pilot.press("enter")                   # default: No
        assert app.is_running and isinstance(app.screen, ClustersScreen)
        release.set()                                # the tasks end: q quits at once
        await app.workers.wait_for_complete()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    run_app(app, check)


def test_quit_with_tasks_running_quits_on_yes(mixed_engine, monkeypatch):
    async def forever(uuid, action):
        import asyncio
        await asyncio.Event().wait()
    monkeypatch.setattr(mixed_engine, "vm_action", forever)
    app = make_app(mixed_engine)

    async def check(pilot):
        app.run_vm_action(uuid_of(1), "start", "web-01")
        await pilot.pause()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body.startswith("1 task is still running")
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running

    run_app(app, check)


def test_ssh_password_is_asked_masked_and_handed_to_the_engine(mixed_engine, monkeypatch):
    from textual.widgets import Input

    from mvmtui.screens.password import PasswordScreen
    given, retried = [], []
    monkeypatch.setattr(mixed_engine, "set_password", lambda c, p: given.append((c, p)))

    async def retry(cluster, name):
        retried.append((cluster, name))
    monkeypatch.setattr(mixed_engine, "retry_host", retry)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("L")
        await pilot.pause()
        assert isinstance(app.screen, PasswordScreen)
        field = app.screen.query_one("#password", Input)
        assert field.password                      # typed characters are not shown
        await pilot.press(*"s3cret", "enter")
        await pilot.pause(0.2)
        assert given == [("prod", "s3cret")]
        assert retried == [("prod", "kvm-03")]      # only hosts that are not up
        await pilot.press("L", "escape")            # cancelling hands over nothing
        await pilot.pause()
        assert given == [("prod", "s3cret")]

    run_app(app, check)


def test_footer_shows_the_screens_keys_and_a_click_presses_one(mixed_engine):
    """The footer is one line of text: the current keys, redrawn only when they
    change (the VM keys come and go with a current VM); clicking a key presses it."""
    from mvmtui.widgets.footer import KeysBar, shown_keys

    app = make_app(mixed_engine, "prod")

    def footer_text():
        return str(app.screen.query_one(KeysBar).render())

    async def check(pilot):
        await pilot.press("3")
        await pilot.pause()
        bar = app.screen.query_one(KeysBar)
        assert "s Start" in footer_text() and "? Help" in footer_text()
        assert bar.drawn == shown_keys(app.screen)
        drawn = bar.drawn
        app.screen.refresh_bindings()               # what a focus change does
        await pilot.pause()
        assert bar.drawn is drawn                   # same keys: not drawn again
        x = footer_text().index("/ Filter")
        await pilot.click(KeysBar, offset=(x, 0))
        await pilot.pause()
        assert app.focused.id == "filter-bar"
        await pilot.press("escape", "1")           # Summary: no current VM
        await pilot.pause()
        assert "Start" not in footer_text()

    run_app(app, check)


def test_keys_typed_right_after_slash_go_to_the_filter_never_to_vm_actions(mixed_engine,
                                                                          monkeypatch):
    """A fast typist: "/" and "start" arrive in one burst, before the console has
    drawn anything. Every letter lands in the filter bar; `s` starts nothing."""
    from textual import events

    fake = Recorder(mixed_engine)
    monkeypatch.setattr(mixed_engine, "vm_action", fake)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3")
        await pilot.pause()
        for key, char in [("slash", "/")] + [(c, c) for c in "start"]:
            app._driver.send_message(events.Key(key, char))    # no wait in between
        await pilot.pause()
        await pilot.pause()
        assert vms_table(app).filter_text == "start"
        assert fake.calls == [] and isinstance(app.screen, ClusterScreen)
        await pilot.press("slash", "x")          # in the filter, "/" is just a character
        assert vms_table(app).filter_text == "start/x"

    run_app(app, check)


def test_status_colours_follow_a_theme_change(mixed_engine):
    app = make_app(mixed_engine)

    async def check(pilot):
        dark = app.palette
        app.theme = "textual-light"
        await pilot.pause()
        assert app.palette.ok == app.get_css_variables()["text-success"] != dark.ok

    run_app(app, check)


def test_history_ticks_follow_running_tasks_and_the_date(inventory_path):
    """Every few seconds the running task's duration moves on; when the day changes,
    start times are re-read so yesterday's tasks no longer show as today's."""
    from mvmtui.engine import Engine
    from conftest import add_running_task

    now = [FIXED]
    eng = Engine(inventory_path, offline=True, clock=lambda: now[0])
    eng.start()
    tid = add_running_task(eng)
    app = make_app(eng, "prod")

    async def check(pilot):
        await pilot.press("4")
        await pilot.pause()
        table = app.screen.query_one("#history", Listing).table
        assert cell_text(table, str(tid), "duration") == "12s"
        now[0] += 60
        app.screen.tick()
        assert cell_text(table, str(tid), "duration") == "1m 12s"
        done = next(r.key for r in table._view if r.key != str(tid))
        assert re.fullmatch(r"\d\d:\d\d:\d\d", cell_text(table, done, "started"))  # today
        now[0] += 86400
        app.screen.tick()
        assert cell_text(table, done, "started").startswith("Jun 15 ")      # yesterday

    try:
        run_app(app, check)
    finally:
        eng.stop()
