"""VM power actions and placement changes, each a journaled task.

Owns VM_ACTIONS and which make sense in which state, the task bodies that act on a
VM's host and wait for the outcome, and _live_link (the VM's host, if it is up).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .adapter import Hypervisor, Placement
from .errors import EngineError, HostDown, HypervisorError
from .model import PRIORITIES, HostStatus, Strategy, Task, Vm, VmState
from .tasks import TaskContext, TaskFailed, TaskSpec, can_supersede

if TYPE_CHECKING:
    from .links import _Link

# action -> (title verb, state to wait for, destructive?)
VM_ACTIONS: dict[str, tuple[str, VmState | None, bool]] = {
    "start": ("Start", VmState.RUNNING, False),
    "shutdown": ("Shut down", VmState.SHUTOFF, True),
    "destroy": ("Force off", VmState.SHUTOFF, True),
    "reboot": ("Reboot", None, True),
    "suspend": ("Suspend", VmState.PAUSED, True),     # its services stop answering
    "resume": ("Resume", VmState.RUNNING, False),
}
# Force off takes over from a shutdown or reboot that only waits for the guest.
SUPERSEDES = {"destroy": ("vm.shutdown", "vm.reboot")}

_ACTIONS_BY_STATE: dict[VmState, tuple[str, ...]] = {
    VmState.RUNNING: ("shutdown", "destroy", "reboot", "suspend"),
    VmState.BLOCKED: ("shutdown", "destroy", "reboot", "suspend"),
    VmState.SHUTTING_DOWN: ("destroy",),
    VmState.PAUSED: ("destroy", "resume"),
    VmState.SUSPENDED: ("destroy",),
    VmState.SHUTOFF: ("start",),
    VmState.CRASHED: ("start", "destroy"),
}


def vm_actions(vm: Vm) -> tuple[str, ...]:
    """The power actions that make sense in the VM's (last known) state, in
    VM_ACTIONS order; every action when the state is unknown."""
    return _ACTIONS_BY_STATE.get(vm.state, tuple(VM_ACTIONS))


class VmPower:
    """Mixin of Engine: VM power and placement tasks."""

    def vm_actions(self, vm: Vm) -> tuple[str, ...]:
        """The power actions that make sense for this VM now (see vm_actions)."""
        return vm_actions(vm)

    def would_supersede(self, task: Task, action: str) -> bool:
        """Whether `action` on the VM would take over this pending task (Force off over
        a shutdown that waits) rather than be refused as busy."""
        return can_supersede(task, SUPERSEDES.get(action, ()))

    async def vm_action(self, uuid: str, action: str) -> Task:
        """Run a VM power action as a journaled task; returns the finished task
        (status failed with the reason if it did not happen). Raises Busy when the VM
        is locked by another task, ReadOnly / Offline in those modes."""
        task = await self.submit_vm_action(uuid, action)
        return await self.wait_task(task.id)

    async def submit_vm_action(self, uuid: str, action: str) -> Task:
        """Start a VM power action; returns the task once it runs (holding its lock).
        Its outcome: wait_task(task.id)."""
        if action not in VM_ACTIONS:
            raise EngineError(f"Unknown VM action {action!r}; one of {', '.join(VM_ACTIONS)}.")
        verb, wait_for, _ = VM_ACTIONS[action]
        self._refuse_changes(f"{verb.lower()} of a VM")
        vm = self.vm(uuid)
        steps = ["Check host", verb]
        if wait_for is not None:
            steps.append(f"Wait until {wait_for.value}")
        elif action == "reboot":
            steps.append("Wait for the guest to reboot")
        spec = TaskSpec(kind=f"vm.{action}", title=f"{verb} {vm.name}", cluster=vm.cluster,
                        target_kind="vm", target=vm.uuid, target_name=vm.name, host=vm.host,
                        steps=tuple(steps), locks=(f"vm:{vm.uuid}",),
                        params={"action": action}, supersedes=SUPERSEDES.get(action, ()))

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            link, hv = self._live_link(vm)
            # The VM's lock on its host too: another console must not act on it
            # meanwhile (a Force off may take it from the shutdown it supersedes).
            async with self._locked_on_hosts(ctx, spec, [vm.host]):
                ctx.log(f"{vm.name} is on {vm.host}")
                ctx.step(1)
                boots = self._boots.get(vm.uuid, 0)
                try:
                    await self._lv(link, hv.act, vm.uuid, action)
                except HypervisorError as exc:
                    raise TaskFailed(f"libvirt refused: {exc}") from exc
                ctx.log(f"libvirt accepted {verb.lower()}")
                if wait_for is not None:
                    ctx.step(2)
                    limit = self.shutdown_timeout if action == "shutdown" else 30.0
                    if action == "shutdown":
                        ctx.log(f"Asked the guest to power off (ACPI); waiting up to {limit:.0f} s")
                    await self._wait_state(link, hv, vm.uuid, wait_for, limit, ctx)
                elif action == "reboot":
                    ctx.step(2)
                    await self._wait_reboot(vm, boots, ctx)
                await self._refresh_vm(link, hv, vm.uuid)

        return await self._on_io(self.journal.submit(spec, body))

    async def set_placement(self, uuid: str, strategy: Strategy | str | None = None,
                            home: str | None = None, priority: str | None = None) -> Task:
        """Change a VM's placement strategy, home host and/or restart priority, as a
        task that writes it into the domain's own definition and confirms it by reading
        it back. A Pinned VM without a home is pinned where it is."""
        vm = self.vm(uuid)
        new_priority = vm.priority if priority is None else priority
        if new_priority not in PRIORITIES:
            raise EngineError(f"Unknown restart priority {priority!r}; one of "
                              f"{', '.join(PRIORITIES)}.")
        try:
            new_strategy = vm.strategy if strategy is None else Strategy(strategy)
        except ValueError:
            raise EngineError(f"Unknown strategy {strategy!r}; one of "
                              f"{', '.join(s.value for s in Strategy)}.") from None
        new_home = vm.home if home is None else home
        if new_home:
            self.host(vm.cluster, new_home)       # NotFound names the cluster's hosts
        if new_strategy is Strategy.PINNED and not new_home:
            new_home = vm.host
        self._refuse_changes("changing a VM's placement")
        what = new_strategy.value + (f", home {new_home}" if new_home else "") + (
            f", restart priority {new_priority}" if new_priority != vm.priority else "")
        spec = TaskSpec(kind="vm.placement", title=f"Placement of {vm.name}: {what}",
                        cluster=vm.cluster, target_kind="vm", target=vm.uuid,
                        target_name=vm.name, host=vm.host,
                        steps=("Check host", "Write the placement", "Confirm"),
                        locks=(f"vm:{vm.uuid}",),
                        params={"strategy": new_strategy.value, "home": new_home,
                                "priority": new_priority})

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            link, hv = self._live_link(vm)
            # The VM's lock on its host too: another console must not act on it
            # meanwhile (a Force off may take it from the shutdown it supersedes).
            async with self._locked_on_hosts(ctx, spec, [vm.host]):
                ctx.log(f"{vm.name} is on {vm.host}; was {vm.strategy.value}"
                        + (f", home {vm.home}" if vm.home else ""))
                ctx.step(1)
                try:
                    await self._lv(link, hv.set_placement, vm.uuid, Placement(
                        new_strategy, new_home, new_priority, vm.failed_from))
                except HypervisorError as exc:
                    raise TaskFailed(f"libvirt refused: {exc}") from exc
                ctx.step(2)
                await self._refresh_vm(link, hv, vm.uuid)
                now = self._vms.get(vm.uuid)
                if now is None or (now.strategy, now.home, now.priority) != (
                        new_strategy, new_home, new_priority):
                    raise TaskFailed(f"{vm.host} does not show the new placement of {vm.name}")
                ctx.log(f"{vm.host} shows {what}")

        async def run() -> Task:
            task = await self.journal.submit(spec, body)
            return await self.journal.wait(task.id)
        return await self._on_io(run())

    def _live_link(self, vm: Vm) -> tuple[_Link, Hypervisor]:
        """The VM's host link if the host is up; HostDown (nothing changed) if not."""
        key = (vm.cluster, vm.host)
        link = self._links.get(key)
        host = self._hosts.get(key)
        if link is None or link.hv is None or host is None or host.status is not HostStatus.UP:
            status = host.status.value if host else "unknown"
            raise HostDown(f"Host {vm.host} is {status}"
                           + (f" ({host.problem})" if host and host.problem else "")
                           + "; nothing was changed.")
        return link, link.hv

    async def _wait_state(self, link: _Link, hv: Hypervisor, uuid: str,
                          want: VmState, limit: float, ctx: TaskContext) -> None:
        start = time.monotonic()
        with ctx.cancellable():
            while True:
                try:
                    state = await self._lv(link, hv.state, uuid)
                except HypervisorError as exc:
                    raise TaskFailed(
                        f"lost track of the VM: {link.key[1]} stopped answering while "
                        f"this waited ({exc}). What it did is unknown until "
                        f"{link.key[1]} answers again.") from exc
                if state is want:
                    ctx.log(f"VM is {want.value}")
                    return
                waited = time.monotonic() - start
                if waited > limit:
                    hint = " It may ignore ACPI: Force off cuts the power." \
                        if want is VmState.SHUTOFF else ""
                    raise TaskFailed(f"VM still {state.value} after {limit:.0f} s.{hint}")
                ctx.progress(min(0.95, 0.66 + 0.3 * waited / limit))
                await ctx.sleep(0.2)

    async def _wait_reboot(self, vm: Vm, boots: int, ctx: TaskContext) -> None:
        """libvirt accepting a reboot proves nothing: the guest may ignore ACPI (or not
        have booted far enough to hear it). Success is a reboot event or a new boot."""
        limit = self.reboot_timeout
        ctx.log(f"Asked the guest to restart (ACPI); waiting up to {limit:.0f} s for it "
                f"to reboot")
        start = time.monotonic()
        with ctx.cancellable():
            while self._boots.get(vm.uuid, 0) == boots:
                waited = time.monotonic() - start
                if waited > limit:
                    raise TaskFailed(f"the guest did not reboot within {limit:.0f} s; it "
                                     f"may ignore ACPI, or was still booting. Force off "
                                     f"then Start restarts it for sure.")
                ctx.progress(min(0.95, 0.66 + 0.3 * waited / limit))
                await ctx.sleep(0.2)
        ctx.log("The guest rebooted")
