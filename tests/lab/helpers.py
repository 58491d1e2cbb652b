"""What lab tests share: the CLI as a subprocess, `mvmtui watch` as an operator runs
it, where a VM runs, and the guests' disk counters read as they are written."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from .conftest import wait_for

CLI = [sys.executable, "-m", "mvmtui"]


def _env(lab_cluster, inventory=None) -> dict:
    return {**os.environ, "MVMTUI_INVENTORY": str(inventory or lab_cluster.inventory)}


@contextlib.contextmanager
def watcher(lab_cluster, log_path, inventory=None, wait=True):
    """`mvmtui watch` in its own process; stopped with SIGTERM (it lets go of its lease)."""
    log = open(log_path, "w")
    p = subprocess.Popen(CLI + ["watch", "--cluster", lab_cluster.name],
                         env=_env(lab_cluster, inventory), stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if wait:
            wait_for(lambda: "holding the watcher lease" in log_path.read_text()
                     or p.poll() is not None, 40, 0.1)
            assert p.poll() is None, log_path.read_text()[-3000:]
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def running_on(lab, vm: str) -> list[str]:
    """Every lab host whose libvirt runs the VM now."""
    return lab.running_on(vm)


class Counters(threading.Thread):
    """The guests' disk counters, read every 0.1 s: (count, boot id) as written."""

    def __init__(self, lab, vms):
        super().__init__(daemon=True)
        self.lab, self.vms = lab, vms
        self.seen = {v: [] for v in vms}
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for v in self.vms:
                c = self.lab.disk_counter(v)
                if c and (not self.seen[v] or self.seen[v][-1] != c):
                    self.seen[v].append(c)
            time.sleep(0.1)

    def stop(self):
        self.done.set()
        self.join(5)

    def boots(self, vm):
        """Boot ids in the order they wrote; a boot id seen again after another means
        two copies wrote the disk."""
        order = []
        for _, boot in self.seen[vm]:
            if not order or order[-1] != boot:
                order.append(boot)
        return order

    def wait_new_boot(self, vm, timeout=60):
        """Until a boot other than the first writes (the restarted copy), and counts on."""
        first = self.boots(vm)[0]
        wait_for(lambda: self.seen[vm] and self.seen[vm][-1][1] != first
                 and sum(b != first for _, b in self.seen[vm]) >= 2, timeout, 0.1)

    def wait_counting(self, vm, timeout=30):
        n = len(self.seen[vm])
        wait_for(lambda: len(self.seen[vm]) >= n + 2, timeout, 0.1)

    def gapless(self, vm) -> bool:
        counts = [n for n, _ in self.seen[vm]]
        return all(b == a + 1 or b > a for a, b in zip(counts, counts[1:])) \
            and counts == sorted(counts)
