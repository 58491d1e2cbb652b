"""The real lab cluster for tests: three hosts (namespaces, sshd, libvirtd, QEMU),
up once per session under a temporary root, torn down at the end."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mvmtui.engine import Engine, Inventory
from mvmtui.engine.lab import Lab


@dataclass
class LabCluster:
    lab: Lab
    inventory: Path
    name: str


_up: dict[str, Lab] = {}        # labs of this session that run now, by kind


def _end(kind: str) -> None:
    lab = _up.pop(kind, None)
    if lab is not None:
        lab.down()


def _session_lab(tmp_path_factory, kind: str, make_lab) -> LabCluster:
    """Bring a lab of this kind up under a temporary root (make_lab(root) builds it),
    with its own inventory."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, libvirtd); run `make test` as root")
    root = tmp_path_factory.mktemp(kind)
    lab = make_lab(root / "labs")
    inv_path = root / "inventory.db"
    inv = Inventory(inv_path)
    _up[kind] = lab
    try:
        lab.up(inv)
    finally:
        inv.close()
    return LabCluster(lab, inv_path, lab.name)


@pytest.fixture(scope="session")
def lab_cluster(tmp_path_factory) -> LabCluster:
    try:
        yield _session_lab(tmp_path_factory, "plain", lambda root: Lab(
            "citest", hosts=3, subnet=78, root=root))
    finally:
        _end("plain")


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory) -> LabCluster:
    """The lab with a real Ceph: four hosts, monitors on three, an OSD on each, VM disks
    on RBD. Its tests run last (pytest_collection_modifyitems), and the plain lab is
    taken down first: two labs at once would share two cores."""
    _end("plain")
    try:
        yield _session_lab(tmp_path_factory, "ceph", lambda root: Lab(
            "citceph", ceph=True, subnet=76, root=root))
    finally:
        _end("ceph")


def pytest_collection_modifyitems(config, items):
    """Tests on the Ceph lab run after every other lab test (see ceph_cluster); every
    lab test runs in one xdist worker (`make test` runs two), in this order, while the
    other worker runs the rest."""
    here = Path(__file__).parent
    items.sort(key=lambda item: "ceph_cluster" in getattr(item, "fixturenames", ()))
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("lab"))


@pytest.fixture(autouse=True)
def _lab_left_whole(request):
    """After every lab test, the shared lab is made whole again (lab.heal): a test that
    failed halfway through a power cut must not fail every test after it."""
    yield
    if not {"lab_cluster", "ceph_cluster"} & set(request.fixturenames):
        return
    for lab in list(_up.values()):
        done = lab.heal()
        if lab.ceph:
            # A Ceph left recovering (a host power-cycled) stalls every RBD disk: the
            # next test starts from HEALTH_OK, or is told why not.
            try:
                lab.ceph.wait_health_ok(timeout=180)
            except Exception as exc:
                done.append(f"Ceph not HEALTH_OK: {exc}")
        if done:
            print(f"lab healed after {request.node.name}: " + "; ".join(done))


def _lab_engine(cc: LabCluster, ready: float):
    eng = Engine(cc.inventory, reconnect_interval=0.5, stats_interval=1.0,
                 shutdown_timeout=30.0)
    eng.start()
    eng.call(eng.wait_ready(timeout=ready))
    return eng


@pytest.fixture
def engine(lab_cluster):
    eng = _lab_engine(lab_cluster, 15)
    yield eng
    eng.stop()


@pytest.fixture
def ceph_engine(ceph_cluster):
    eng = _lab_engine(ceph_cluster, 20)
    yield eng
    eng.stop()


def wait_for(predicate, timeout: float, interval: float = 0.02):
    """Poll until predicate() is truthy; returns (value, seconds taken)."""
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)
