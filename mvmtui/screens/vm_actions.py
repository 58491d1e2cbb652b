"""The VM power actions' keys, as data: one table for every screen that has a
current VM (cluster VMs tab, host VMs table, VM detail).

Whether an action needs a confirmation comes from the engine (VM_ACTIONS[...][2],
"destructive"); what the confirmation says comes from here.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from ..engine.engine import VM_ACTIONS
from ..engine.model import Host, Task, Vm
from ..widgets import format as fmt


# The footer shows at most this many VM keys (80 columns keep "? Help"); a VM whose
# state allows more (unknown state: all six) has the rest in help and the palette.
FOOTER_VM_KEYS = 4


@dataclass(frozen=True)
class VmActionKey:
    key: str
    action: str              # engine action name (VM_ACTIONS)
    consequence: str         # what happens, for the confirmation; {vm} {host}

    @property
    def verb(self) -> str:
        return VM_ACTIONS[self.action][0]

    @property
    def destructive(self) -> bool:
        return VM_ACTIONS[self.action][2]


VM_ACTION_KEYS: tuple[VmActionKey, ...] = (
    VmActionKey("s", "start", "Start {vm} on {host}: boots the guest."),
    VmActionKey("d", "shutdown",
                "Shut down {vm} on {host}: asks the guest OS to power off (ACPI). "
                "Its services stop. A guest that ignores ACPI keeps running; "
                "then only Force off stops it."),
    VmActionKey("F", "destroy",
                "Force off {vm} on {host}: cuts the power, like pulling the plug. "
                "Unsaved data in the guest is lost."),
    VmActionKey("b", "reboot",
                "Reboot {vm} on {host}: asks the guest OS to restart. "
                "Its services are down until it is back up."),
    VmActionKey("p", "suspend",
                "Suspend {vm} on {host}: pauses its CPUs; it keeps its memory. Its "
                "services stop answering until it is resumed."),
    VmActionKey("r", "resume", "Resume {vm} on {host}: lets a paused guest run again."),
)

BY_ACTION = {k.action: k for k in VM_ACTION_KEYS}
assert set(BY_ACTION) == set(VM_ACTIONS), "every engine VM action needs a key"

# Manage Placement (strategy, move to another host): a VM key like the power actions,
# offered after them (the footer shows it when the VM's state leaves room), opening a
# dialog rather than running an engine action (screens/placement.py).
PLACEMENT = "placement"
PLACEMENT_KEY = "P"
PLACEMENT_LABEL = "Placement"


def vm_action_bindings() -> list[Binding]:
    """Bindings for a screen's BINDINGS. ConsoleScreen.check_action hides and refuses
    those that make no sense for the current VM (its state; read-only; offline).

    Each key has two bindings: shown in the footer (`vm_action`) or not
    (`vm_action_more`, past FOOTER_VM_KEYS); check_action lets one of them through,
    and both run the same action."""
    keys = [(k.key, k.action, k.verb) for k in VM_ACTION_KEYS]
    keys.append((PLACEMENT_KEY, PLACEMENT, PLACEMENT_LABEL))
    shown = [Binding(key, f"vm_action('{action}')", verb, id=f"vm.{action}")
             for key, action, verb in keys]
    more = [Binding(key, f"vm_action_more('{action}')", verb, show=False,
                    id=f"vm.{action}.more")
            for key, action, verb in keys]
    return shown + more


def confirmation(vm: Vm, host: Host | None, action: str, now: float,
                 pending: Task | None = None, takes_over: bool = False) -> str:
    """What the operator reads before a destructive action, in full; `pending` is
    the unfinished task on the VM, which this action ends (`takes_over`, as the
    engine says) or is refused behind."""
    text = BY_ACTION[action].consequence.format(vm=vm.name, host=vm.host)
    if pending is not None:
        if takes_over:
            text += (f"\n\n{pending.title} (task {pending.id}) is still waiting for the "
                     f"guest: this ends it (superseded) and acts now.")
        else:
            text += (f"\n\n{pending.title} (task {pending.id}) is still running: this is "
                     f"refused until it ends"
                     + ("; c in History cancels it." if pending.cancellable else "."))
    if vm.stale:
        status = host.status.value if host else "unknown"
        age = fmt.ago(vm.age(now))
        text += (f"\n\n{vm.host} is {status}. The last known state of {vm.name} is "
                 f"{vm.state.value}, seen {age}. If {vm.host} cannot be reached, "
                 f"the task fails and nothing changes.")
    return text
