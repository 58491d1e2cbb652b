""""I have powered it off" (F on a host that does not answer): the operator's typed,
journaled word that a lost host is powered off, the fence of last resort.

Without a fence nothing restarts: a host whose management network is down may still
run its guests, and starting them elsewhere would run each VM twice and destroy its
disks. So the dialog says that plainly, and the host's name, typed, confirms it; the
engine records it on every host that answers (the watcher, wherever it runs, reads
it there) and refuses while the host answers.
"""
from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ..engine.model import Host, HostStatus, Task, TaskStatus
from ..widgets.footer import KeysBar
from ..widgets.listing import plural
from .confirm import TypedConfirmScreen
from .ha import FENCED_KEY, state_words

_HERE = Path(__file__).parent
CONFIRMING = "confirming a host is powered off"


def fenced_binding() -> Binding:
    return Binding(FENCED_KEY, "fenced", "Powered off…", id="host.fenced")


def fence_offered(app: App, host: Host | None) -> bool:
    """The key is offered for a host that does not answer, where changes can be made."""
    return (host is not None and host.status is not HostStatus.UP
            and not app.changes_refused(CONFIRMING))  # type: ignore[attr-defined]


def host_fenced(app: App, host: Host | None) -> None:
    """F on a host: the typed confirmation; its outcome is notified."""
    if host is None:
        return
    why = app.changes_refused(CONFIRMING)  # type: ignore[attr-defined]
    if why:
        app.notify(why, severity="error")
        return
    if host.status is HostStatus.UP:
        app.notify(f"{host.name} answers: it is up, not powered off. Nothing to confirm.",
                   severity="error")
        return
    watched = app.engine.ha_status(host.cluster).watcher.watched  # type: ignore[attr-defined]

    def done(task: Task | None) -> None:
        if task is None:
            return
        words = (f"{host.name}: confirmed powered off (task {task.id}). Its Auto and "
                 f"Failover VMs restart on other hosts")
        if watched:
            app.notify(words + " once the watcher reads it.", title="I have powered it off")
        else:
            app.notify(words + f" once a watcher runs: nobody watches cluster "
                       f"{host.cluster} now (mvmtui watch).", title="I have powered it off",
                       severity="warning", timeout=20)

    app.push_screen(FencedScreen(host), done)


class FencedScreen(TypedConfirmScreen):
    """The warning, the VMs it concerns, and the host's name typed. The engine checks
    the name; every refusal stays in the dialog."""

    CSS_PATH = [_HERE / "dialogs.tcss", _HERE / "fence.tcss"]
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="fenced.cancel")]
    INPUT_ID, ERROR_ID = "fenced-name", "fenced-error"

    def __init__(self, host: Host) -> None:
        super().__init__(classes="dialog-screen")
        self.host = host

    def compose(self) -> ComposeResult:
        engine = self.app.engine  # type: ignore[attr-defined]
        h = self.host
        name = h.name
        st = engine.ha_status(h.cluster)
        vms = sorted(engine.vms(h.cluster, host=name), key=lambda v: v.name)
        active = [v.name for v in vms if v.state.active]
        facts = f"{name} is {h.status.value}"
        ha = state_words(st.of(name))
        facts += f"; HA: {ha}." if ha else "."
        if active:
            facts += (f" Last seen running on it: {', '.join(active)} "
                      f"({plural(len(active), 'VM')}).")
        with Vertical(classes="dialog fence"):
            yield Static(f"I have powered it off: {name}", classes="dialog-title",
                         markup=False)
            yield Static(facts, classes="dialog-facts", markup=False)
            yield Static("Confirm only once it is powered off (its power pulled, or its BMC "
                         "or PDU says off): its Auto and Failover VMs then restart on "
                         "other hosts; Pinned VMs wait for it.",
                         classes="dialog-body", markup=False)
            yield Static("If it still runs, its VMs would run twice and destroy their disks.",
                         classes="dialog-body fence-warning", markup=False)
            if not st.watcher.watched:
                yield Static(f"Nobody watches cluster {h.cluster} now: the confirmation is "
                             f"recorded, but nothing restarts until a watcher runs "
                             f"(mvmtui watch).", classes="dialog-body fence-unwatched",
                             markup=False)
            yield Static(f"Type {name} to confirm it is powered off:",
                         classes="dialog-question", markup=False)
            yield from self.typed_field(name, "enter records it · escape leaves everything "
                                              "as it is")
        yield KeysBar()

    async def submit(self, typed: str) -> Task | None:
        engine = self.app.engine  # type: ignore[attr-defined]
        task = await engine.confirm_fenced(self.host.cluster, self.host.name, typed)
        if task.status is not TaskStatus.SUCCEEDED:
            self.refuse(f"Not recorded: {task.error or task.status.value} (task {task.id}).")
            return None
        return task
