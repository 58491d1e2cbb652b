"""The console driven by keys (Textual pilot) over an offline engine and a fixed inventory."""
from __future__ import annotations

import re
import threading
from dataclasses import replace

from mvmtui.engine.errors import ReadOnly
from mvmtui.engine.model import HostKeyQuestion, TaskChanged, TaskStatus, VmChanged, VmState
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
    """Stands in for Engine.submit_vm_action and wait_task: records calls; the task
    (id 99) is running when submitted and ends with `outcome`."""

    def __init__(self, engine, monkeypatch, outcome=TaskStatus.SUCCEEDED, error="",
                 raises=None):
        self.engine, self.calls = engine, []
        self.outcome, self.error, self.raises = outcome, error, raises
        monkeypatch.setattr(engine, "submit_vm_action", self.submit)
        monkeypatch.setattr(engine, "wait_task", self.wait)

    async def submit(self, uuid, action):
        self.calls.append((uuid, action))
        if self.raises:
            raise self.raises
        task = self.engine.tasks(limit=1)[0]
        return replace(task, id=99, status=TaskStatus.RUNNING, finished_at=None)

    async def wait(self, task_id):
        task = self.engine.tasks(limit=1)[0]
        return replace(task, id=task_id, status=self.outcome, error=self.error)


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
    """Wraps the engine's real submit_vm_action: records each call, then lets it run."""

    def __init__(self, real):
        self.real, self.calls = real, []

    async def __call__(self, uuid, action):
        self.calls.append((uuid, action))
        return await self.real(uuid, action)


def test_readonly_hides_and_refuses_vm_actions(readonly_engine, monkeypatch):
    spy = Spy(readonly_engine.submit_vm_action)
    monkeypatch.setattr(readonly_engine, "submit_vm_action", spy)
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
        # Neither the console nor the engine saw an action: no call, no toast, no task.
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
    fake = Recorder(mixed_engine, monkeypatch)
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
        assert messages == ["Force off web-02: task 99 running…",
                            "Force off web-02: done — web-02 is running"]
        await pilot.press("r")                       # not for a running VM: refused
        await app.workers.wait_for_complete()
        assert fake.calls == [(uuid_of(2), "destroy")]

    run_app(app, check)


def test_a_harmless_action_runs_without_a_question(mixed_engine, monkeypatch):
    fake = Recorder(mixed_engine, monkeypatch)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "slash", *"cache", "enter", "s")   # cache-01, shut off
        await app.workers.wait_for_complete()
        assert not isinstance(app.screen, ConfirmScreen)
        assert fake.calls == [(uuid_of(5), "start")]

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
        # Busy from the engine: only the refusal, as an error; never "running".
        app.clear_notifications()
        Recorder(mixed_engine, monkeypatch,
                 raises=Busy("Start batch-01: refused: batch-01 is busy with Shut down "
                             "batch-01 (task 3)"))
        await pilot.press("s")                       # start: never asks first
        await app.workers.wait_for_complete()
        await pilot.pause()
        [note] = list(app._notifications)
        assert note.severity == "error" and "is busy with" in note.message
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


def _palette_names(provider) -> list[str]:
    """Every command the palette offers: the screen's keys, then the inventory's."""
    names = [name for name, _, _ in provider._commands()]
    return names + [name for name, _, _ in provider._inventory(set(names))]


def test_palette_lists_the_screens_actions_and_the_inventory(mixed_engine):
    from mvmtui.app import ConsoleCommands

    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3")                       # batch-01 (crashed) under the cursor
        names = _palette_names(ConsoleCommands(app.screen))
        # The screen's keys, VM actions naming their VM; the inventory by name, with the
        # power actions each VM's state allows.
        for expected in ("Start batch-01", "Force off batch-01", "Filter", "Sort", "Help",
                         "Back", "Open cluster lab", "Open host kvm-03", "Open VM web-01",
                         "Shut down web-01", "Reboot db-01", "Resume db-02",
                         "Start cache-01"):
            assert expected in names
        for absent in ("Start web-01", "Resume web-01", "Shut down cache-01", "Start"):
            assert absent not in names
        assert names.count("Start batch-01") == 1       # the key's command, not twice
        # Moving about is for keys: no cursor, page, scroll or focus commands.
        for navigation in ("Up", "Down", "Page up", "Page down", "First", "Last", "Select",
                           "Scroll Left", "Page Left", "Focus Next", "Copy selected text"):
            assert navigation not in names

    run_app(app, check)


def test_palette_matches_power_actions_once_their_verb_is_typed(mixed_engine):
    """Every VM's actions are four or five times its "Open VM" commands: they are
    matched only when the query starts with their verb, so a keystroke stays cheap."""
    import asyncio

    from mvmtui.app import ConsoleCommands

    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        provider = ConsoleCommands(app.screen)
        await provider.startup()
        assert not provider._all            # the inventory waits for the first keystroke
        await provider._build()

        def searched(query):
            return {name.split(" ")[0] for commands in provider._searched(query)
                    for name, _, _ in commands}
        assert not searched("s") & {"Start", "Shut", "Suspend"}     # one letter: opens only
        assert searched("st") >= {"Start", "Open"} and "Shut" not in searched("st")
        assert "Shut" in searched("shut down web-02") and "Start" not in searched("sh")
        hits = [hit.text async for hit in provider.search("Start cache-01")]
        assert "Start cache-01" in hits
        await asyncio.sleep(0)

    run_app(app, check)


def test_palette_offers_no_changes_offline(offline_engine):
    from mvmtui.app import ConsoleCommands

    app = make_app(offline_engine, "lab")

    async def check(pilot):
        await pilot.press("3")
        names = _palette_names(ConsoleCommands(app.screen))
        assert "Open VM dev-01" in names
        assert not [n for n in names if n.split()[0] in ("Start", "Shut", "Force", "Reboot",
                                                          "Suspend", "Resume")]

    run_app(app, check)


def test_palette_runs_start_web_02_the_way_the_keys_do(mixed_engine, monkeypatch):
    """From any screen, "Shut down web-02" asks first (destructive) and runs the
    action on that VM; "Start cache-01" runs at once."""
    fake = Recorder(mixed_engine, monkeypatch)
    app = make_app(mixed_engine)

    async def check(pilot):
        await pilot.press("ctrl+p", *"Shut down web-02")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body.startswith("Shut down web-02 on kvm-02")
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+p", *"Start cache-01")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert fake.calls == [(uuid_of(2), "shutdown"), (uuid_of(5), "start")]

    run_app(app, check)


def test_help_lists_the_bindings_of_the_screen_underneath(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "j", "j", "j", "question_mark")     # db-01, running
        assert isinstance(app.screen, HelpScreen)
        groups = app.screen.groups
        described = {d for rows in groups.values() for _, d in rows}
        # The keys that work on a running VM, not those that make no sense for it.
        assert {"Shut down", "Force off", "Reboot", "Suspend"} <= described
        assert not {"Start", "Resume"} & described
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
        # The host itself changes the VM (as virsh would): the engine's event follows.
        mixed_engine.world.change_vm("prod", "kvm-01", web.uuid, event="lifecycle",
                                     state=VmState.PAUSED)
        await pilot.pause(0.35)
        assert 1 <= len(seen) <= 3 and all(set(c.vms) == {web.uuid} for c in seen)
        assert cell_text(table, web.uuid, "state") == "paused"
        # A VM undefined on its host leaves the table.
        mixed_engine.world.undefine("prod", "kvm-02", uuid_of(8))
        await pilot.pause(0.3)
        assert uuid_of(8) not in visible_keys(table) and table.total_count == 7
        # A host that goes down makes its VMs stale.
        mixed_engine.world.power_cut("prod", "kvm-01")
        await pilot.pause(0.4)
        assert cell_text(table, uuid_of(3), "state") == "running (stale)"
        assert cell_text(table, uuid_of(3), "age").startswith("stale · ")

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
    fake = Recorder(mixed_engine, monkeypatch)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("2", "enter", "j")        # host kvm-01; its VMs table: db-01
        assert isinstance(app.screen, HostScreen)
        await pilot.press("ctrl+p", *"Force off db-01")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body.startswith("Force off db-01 on kvm-01")
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert fake.calls == [(uuid_of(3), "destroy")]

    run_app(app, check)


def test_quit_asks_while_actions_started_here_are_running(mixed_engine, monkeypatch):
    release = None

    async def slow(uuid, action):                   # a task that takes its time
        await release.wait()
        raise Busy("done waiting")
    monkeypatch.setattr(mixed_engine, "submit_vm_action", slow)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        nonlocal release
        import asyncio
        release = asyncio.Event()
        await pilot.press("3", "s", "j", "j", "s")   # start batch-01 and cache-01
        await pilot.press("escape")
        assert isinstance(app.screen, ClustersScreen)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "quit"
        assert app.screen.body == (
            "2 tasks are still running: Start batch-01, Start cache-01. Quitting stops "
            "them where they are; History records them as interrupted.")
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
    monkeypatch.setattr(mixed_engine, "submit_vm_action", forever)
    app = make_app(mixed_engine)

    async def check(pilot):
        app.run_vm_action(uuid_of(1), "start", "web-01")
        await pilot.pause()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body == (
            "1 task is still running: Start web-01. Quitting stops it where it is; "
            "History records it as interrupted.")
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

    fake = Recorder(mixed_engine, monkeypatch)
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


# ---- issue 6: the console never lies ---------------------------------------------
def footer_text(app):
    from mvmtui.widgets.footer import KeysBar
    return str(app.screen.query_one(KeysBar).render())


def messages(app):
    return [n.message for n in app._notifications]


def test_offline_hides_and_refuses_vm_actions_and_records_no_task(offline_engine,
                                                                   monkeypatch):
    """--offline: no VM key in the footer, none runs; reached anyway (palette, a stray
    call), the refusal says offline and the journal gets no task."""
    spy = Spy(offline_engine.submit_vm_action)
    monkeypatch.setattr(offline_engine, "submit_vm_action", spy)
    app = make_app(offline_engine, "lab")
    tasks_before = offline_engine.tasks()

    async def check(pilot):
        await pilot.press("3")                       # dev-01: running (stale)
        actions = {a.binding.action for a in app.screen.active_bindings.values()}
        assert not any(a.startswith("vm_action") for a in actions)
        assert "Shut down" not in footer_text(app) and "? Help" in footer_text(app)
        assert app.screen.check_action("vm_action", ("shutdown",)) is False
        await pilot.press("s", "F", "d", "b", "p", "r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert spy.calls == [] and messages(app) == []
        app.ask_vm_action(offline_engine.vm(uuid_of(11)), "destroy")   # as the palette would
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        [note] = list(app._notifications)
        assert note.severity == "error" and note.message.startswith("Offline mode:")
        app.run_vm_action(uuid_of(11), "shutdown", "dev-01")   # the engine refuses too
        await app.workers.wait_for_complete()
        assert messages(app)[-1].startswith("Shut down dev-01: Offline mode:")
        assert not any("running…" in m for m in messages(app))
        assert offline_engine.tasks() == tasks_before

    run_app(app, check)


def test_summary_counts_and_gauges_cover_the_same_hosts(mixed_engine):
    """kvm-03 is down: its CPUs and its VMs are left out of the gauges, and the
    Summary says so; the counts line gives the CPUs the gauges divide by."""
    from textual.widgets import Static

    from mvmtui.widgets.gauge import Gauge

    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        s = app.screen
        counts = str(s.query_one("#counts", Static).render())
        assert "3 of 8 VMs running" in counts and "64 CPUs" in counts   # kvm-01 + kvm-02
        assert s.query_one("#g-vcpu", Gauge).detail == "20 vCPUs of active VMs on 64 CPUs"
        assert str(s.query_one("#capacity-note", Static).render()) == \
            "1 host not answering (2 VMs) not counted"

    run_app(app, check)


def test_offline_summary_says_its_figures_are_last_known(offline_engine):
    from textual.widgets import Static

    from mvmtui.widgets.gauge import Gauge

    app = make_app(offline_engine, "prod")

    async def check(pilot):
        s = app.screen
        assert "0 of 8 VMs running (4 last known)" in str(s.query_one("#counts", Static).render())
        for gauge in ("cpu", "mem", "vcpu", "memalloc"):
            assert s.query_one(f"#g-{gauge}", Gauge).detail.endswith("last known (stale)")
        assert "last known (stale)" in str(s.query_one("#capacity-note", Static).render())
        await pilot.press("2", "enter")              # host kvm-01, not contacted
        assert isinstance(app.screen, HostScreen)
        assert app.screen.query_one("#g-cpu", Gauge).detail == "stale"
        assert str(app.screen.query_one("#capacity-note", Static).render()) == \
            "last known (stale): kvm-01 is stale"

    run_app(app, check)


def test_a_dead_hosts_storage_is_shown_stale(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("2", "G", "enter")          # kvm-03, unreachable
        table = app.screen.query_one("#storage", Listing).table
        assert cell_text(table, "ds:images", "state") == "active (stale)"
        assert cell_text(table, "net:storage", "state") == "active (stale)"

    run_app(app, check)


def test_footer_offers_what_the_vms_state_allows(mixed_engine, monkeypatch):
    """Running: d F b p (not s); paused: r F; shut off: s. Keys that make no sense are
    refused if pressed anyway. At 80 columns "? Help" still fits."""
    fake = Recorder(mixed_engine, monkeypatch)
    app = make_app(mixed_engine, "prod")

    def vm_keys():
        return [k for k, _, d, _ in __import__("mvmtui.widgets.footer", fromlist=["x"])
                .shown_keys(app.screen) if d in ("Start", "Shut down", "Force off", "Reboot",
                                                 "Suspend", "Resume")]

    async def check(pilot):
        await pilot.press("3", "slash", *"web-01", "enter")       # running
        assert vm_keys() == ["d", "F", "b", "p"]
        assert "? Help" in footer_text(app)
        await pilot.press("s", "r")                   # no sense for a running VM
        await app.workers.wait_for_complete()
        assert fake.calls == [] and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape", "slash", *"db-02", "enter")   # paused
        assert vm_keys() == ["F", "r"]
        await pilot.press("escape", "slash", *"cache-01", "enter")  # shut off
        assert vm_keys() == ["s"]
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert fake.calls == [(uuid_of(5), "start")]

    run_app(app, check, size=(80, 24))


def test_footer_fits_at_80_columns_with_the_most_vm_keys(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "slash", *"web-01", "enter")
        await pilot.pause()
        assert "? Help" in footer_text(app)[:80]

    run_app(app, check, size=(80, 24))


def test_an_action_says_running_then_its_outcome(mixed_engine):
    """The real engine: "task N running…", then "done — cache-01 is running"; the
    history names who started it."""
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "slash", *"cache-01", "enter", "s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        tid = mixed_engine.tasks(target=uuid_of(5), limit=1)[0].id
        assert messages(app) == [f"Start cache-01: task {tid} running…",
                                 "Start cache-01: done — cache-01 is running"]
        await pilot.press("escape", "4")
        await pilot.pause(0.3)
        table = app.screen.query_one("#history", Listing).table
        assert cell_text(table, str(tid), "by").startswith("console · ")

    run_app(app, check)


async def move_to(pilot, table, key):
    """Move the cursor of a table to the row with this key."""
    keys = visible_keys(table)
    assert key in keys
    await pilot.press("g", *["j"] * keys.index(key))
    assert table.cursor_key == key


def _ignore_acpi(engine, host, n):
    engine.world.hosts[("prod", host)].ignores_acpi.add(uuid_of(n))


def test_a_waiting_shutdown_shows_in_the_row_refuses_others_and_can_be_cancelled(
        mixed_engine):
    """web-01 ignores ACPI: its row reads "running · stopping…"; a reboot then is
    refused (only the refusal is said, and its task says "refused before it started");
    `c` in History asks (default No), then cancels the shutdown."""
    _ignore_acpi(mixed_engine, "kvm-01", 1)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3", "slash", *"web-01", "enter", "d", "y")
        await pilot.pause(0.5)
        table = vms_table(app)
        assert cell_text(table, uuid_of(1), "state") == "running · stopping…"
        shutdown = mixed_engine.pending_task(uuid_of(1))
        assert messages(app) == [f"Shut down web-01: task {shutdown.id} running…"]
        app.clear_notifications()
        await pilot.press("b", "y")                   # reboot: busy
        await pilot.pause(0.5)
        [refusal] = list(app._notifications)
        assert refusal.severity == "error" and "busy" in refusal.message
        assert "running" not in refusal.message.split(":")[1]
        refused = mixed_engine.tasks(target=uuid_of(1), limit=1)[0]
        assert refused.kind == "vm.reboot" and refused.status is TaskStatus.FAILED
        # History: `c` on the waiting shutdown; the refused reboot shows as refused.
        await pilot.press("escape", "4")           # clear the filter; History
        await pilot.pause(0.3)
        history = app.screen.query_one("#history", Listing).table
        assert cell_text(history, str(refused.id), "status") == "refused"
        assert "c Cancel task" not in footer_text(app)      # the cursor is on the reboot
        await move_to(pilot, history, str(shutdown.id))
        assert "c Cancel task" in footer_text(app)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")                    # default: No
        assert mixed_engine.task(shutdown.id).status is TaskStatus.RUNNING
        await pilot.press("c", "y")
        for _ in range(30):
            if mixed_engine.task(shutdown.id).status.finished:
                break
            await pilot.pause(0.1)
        assert mixed_engine.task(shutdown.id).status is TaskStatus.CANCELLED
        assert any(m.startswith("Shut down web-01: cancelled") for m in messages(app))
        await pilot.pause(0.3)
        await pilot.press("3")
        assert cell_text(vms_table(app), uuid_of(1), "state") == "running"
        # The refused task's own screen says it never started.
        await pilot.press("4")
        await move_to(pilot, history, str(refused.id))
        await pilot.press("enter")
        assert isinstance(app.screen, TaskScreen)
        assert "refused before it started" in TaskScreen.progress_words(app.screen.entry)
        assert app.screen.entry.started_by.startswith("console · ")

    run_app(app, check)


def test_cancel_on_the_task_screen_shows_the_engines_refusal(mixed_engine, monkeypatch):
    from mvmtui.engine.errors import EngineError

    _ignore_acpi(mixed_engine, "kvm-01", 1)
    app = make_app(mixed_engine, "prod")

    async def refuse(task_id):
        raise EngineError(f"Task {task_id} (Shut down web-01) has already succeeded.")

    async def check(pilot):
        await pilot.press("3", "slash", *"web-01", "enter", "d", "y")
        await pilot.pause(0.5)
        tid = mixed_engine.pending_task(uuid_of(1)).id
        app.open_task(tid)
        await pilot.pause()
        assert isinstance(app.screen, TaskScreen) and "c Cancel task" in footer_text(app)
        monkeypatch.setattr(mixed_engine, "cancel_task", refuse)
        await pilot.press("c", "y")
        for _ in range(20):                          # the shutdown itself waits on
            if "Cancel task" in messages(app)[-1]:
                break
            await pilot.pause(0.1)
        last = list(app._notifications)[-1]
        assert last.severity == "error" and "has already succeeded" in last.message

    run_app(app, check)


def test_task_screen_says_where_a_failed_task_stopped(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        app.open_task(3)                            # Start batch-01: failed at its step 2
        await pilot.pause()
        steps = app.screen.query_one("#steps", Listing).table
        assert TaskScreen.progress_words(app.screen.entry) == "failed at step 2 of 3"
        assert cell_text(steps, "2", "status") == "skipped"
        from mvmtui.widgets.gauge import Gauge
        assert app.screen.query_one("#g-progress", Gauge).fraction is None   # no "33%"

    run_app(app, check)


def test_q_on_the_clusters_screen_quits_at_once_without_a_lab(mixed_engine):
    app = make_app(mixed_engine)

    async def check(pilot):
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    run_app(app, check)


def lab_app(engine):
    from mvmtui.app import MvmApp
    app = MvmApp(engine, lab_demo="lab")
    app.animation_level = "none"
    return app


def test_quitting_a_lab_demo_asks_first(mixed_engine):
    """Under `make demo`, q (and ctrl+q) would take the lab down: they ask, default No;
    escape from a tab back to the list does not quit."""
    app = lab_app(mixed_engine)

    async def check(pilot):
        app.open_cluster("lab")
        await pilot.pause()
        await pilot.press("escape", "escape")        # back to the clusters list, no more
        assert isinstance(app.screen, ClustersScreen) and app.is_running
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "quit"
        assert app.screen.body == ("Quitting takes the lab 'lab' down: its 2 hosts and "
                                   "4 VMs are destroyed.")
        await pilot.press("enter")                   # default: No
        assert app.is_running and isinstance(app.screen, ClustersScreen)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.press("ctrl+q", "y")
        await pilot.pause()
        assert not app.is_running

    run_app(app, check)


def test_run_console_passes_the_lab_on(monkeypatch):
    import mvmtui.app as app_module
    seen = {}

    class FakeApp:
        def __init__(self, engine, start_cluster=None, lab_demo=None, preferences=None):
            seen.update(start_cluster=start_cluster, lab_demo=lab_demo,
                        preferences=preferences)

        def run(self):
            pass

    class FakeEngine:
        def start(self):
            pass
    monkeypatch.setattr(app_module, "MvmApp", FakeApp)
    prefs = app_module.Preferences(theme="nord")
    app_module.run_console(FakeEngine(), start_cluster="lab", lab_demo="lab",
                           preferences=prefs)
    assert seen == {"start_cluster": "lab", "lab_demo": "lab", "preferences": prefs}


def test_a_confirmed_vm_shows_its_true_age_without_an_announcement(inventory_path):
    """Each stats pass confirms every VM of a live host but announces only changes:
    the table reads a VM's age when it draws it, so a shut-off VM confirmed a moment
    ago never reads as minutes old."""
    from mvmtui.engine import Engine

    from conftest import scripted_world
    now = [FIXED]
    world = scripted_world(clock=lambda: now[0])
    eng = Engine(inventory_path, clock=lambda: now[0], connect=world.connect,
                 stats_interval=0.2, reconcile_interval=3600, reconnect_interval=3600)
    eng.start(clusters=["prod"])
    eng.call(eng.wait_ready(timeout=10))
    app = make_app(eng, "prod")

    async def check(pilot):
        await pilot.press("3")
        table = vms_table(app)
        index = [c.key for c in table.columns].index("age")
        row = next(r for r in table._view if r.key == uuid_of(5))   # cache-01, shut off
        now[0] = FIXED + 120
        await pilot.pause(0.6)                   # a stats pass or two, nothing changes
        assert eng.vm_seen_at(uuid_of(5)) >= FIXED + 120
        assert row.cells[index].text(now[0]) == "<5s ago"

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_force_off_says_it_ends_the_shutdown_that_waits(mixed_engine):
    """The Force off dialog names the pending shutdown it will supersede."""
    import asyncio
    mixed_engine.shutdown_timeout = 30.0
    mixed_engine.world.hosts[("prod", "kvm-01")].ignores_acpi.add(uuid_of(1))
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        task = await mixed_engine.submit_vm_action(uuid_of(1), "shutdown")
        await asyncio.sleep(0.5)
        await pilot.press("3")
        vms_table(app).move_cursor_to_key(uuid_of(1))
        await pilot.press("F")
        assert isinstance(app.screen, ConfirmScreen)
        assert (f"Shut down web-01 (task {task.id}) is still waiting for the guest: this "
                f"ends it (superseded)") in app.screen.body
        await pilot.press("y")
        done = await mixed_engine.wait_task(task.id)
        assert done.status is TaskStatus.SUPERSEDED
        await app.workers.wait_for_complete()

    run_app(app, check)


def test_history_follows_tasks_that_another_process_runs(mixed_engine, inventory_path):
    """Defect 2: a task run by the CLI (another engine on the same inventory) appears
    in the console's History, and its row ends as the CLI's task ended."""
    from mvmtui.engine import Engine

    from conftest import scripted_world
    world = scripted_world()
    cli = Engine(inventory_path, clock=lambda: FIXED, actor="cli", connect=world.connect,
                 stats_interval=3600, reconcile_interval=3600, reconnect_interval=3600)
    cli.start(clusters=["prod"])
    cli.call(cli.wait_ready(timeout=10))
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("4")
        history = app.screen.query_one("#history", Listing).table
        task = await cli.vm_action(uuid_of(5), "start")         # cache-01, by the CLI
        assert task.status is TaskStatus.SUCCEEDED
        for _ in range(30):
            await pilot.pause(0.1)
            if str(task.id) in visible_keys(history) and \
                    cell_text(history, str(task.id), "status") == "succeeded":
                break
        assert cell_text(history, str(task.id), "status") == "succeeded"
        assert cell_text(history, str(task.id), "by").startswith("cli · ")

    try:
        run_app(app, check, size=(160, 40))
    finally:
        cli.stop()


def test_many_rows_changing_at_once_are_drawn_a_slice_a_frame(mixed_engine, monkeypatch):
    """Issue 8: thousands of rows changing at once (a host answering) are drawn
    ROWS_PER_FRAME at a time, one slice a frame, each read as it is drawn: every row
    ends up as the host says, and a later change is never undone by an older slice."""
    from mvmtui.screens import cluster as cluster_screen
    monkeypatch.setattr(cluster_screen, "ROWS_PER_FRAME", 1)
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("3")
        table = vms_table(app)
        drawn: list[int] = []
        listing = app.screen.query_one("#vms", Listing)
        original = listing.update
        listing.update = lambda rows=(), removed=(): (drawn.append(len(list(rows))),
                                                      original(rows, removed))[1]
        # A host going down flips all its VMs at once.
        mixed_engine.world.power_cut("prod", "kvm-01")
        await pilot.pause(0.6)
        assert drawn and max(drawn) == 1 and len(drawn) >= 3    # a row a frame
        for uuid in (uuid_of(1), uuid_of(3)):
            assert cell_text(table, uuid, "state").endswith("(stale)")

    run_app(app, check)
