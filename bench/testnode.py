"""A libvirt test-driver node file with N domains, for the terminal benchmark.

The domains are named vm-00000, vm-00001, …; about two in three run (every third,
i % 3 == 2, is shut off). Each has 1 vCPU, 512 MiB, one file disk and one NIC on the
network "default", which the file defines too. A shut-off domain in a node file takes
the test driver's own namespace: `<test:runstate>5</test:runstate>` (5 =
VIR_DOMAIN_SHUTOFF); without it every domain of a node file is started when the
driver opens it. `check()` opens the file and checks every state.

    .venv/bin/python bench/testnode.py N FILE   # writes FILE, prints its test:// URI
"""
from __future__ import annotations

import sys
from pathlib import Path

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
SHUTOFF = 5  # VIR_DOMAIN_SHUTOFF

NODE = ("<node><cpu><nodes>1</nodes><sockets>2</sockets><cores>16</cores>"
        "<threads>2</threads><active>64</active><mhz>2400</mhz><model>x86_64</model>"
        "</cpu><memory>{memory_kib}</memory>\n{network}{domains}</node>\n")

# The network the NICs name, so that a client looking it up finds it (VirtUI does,
# for every VM it shows), shaped like libvirt's own default network. Its <ip> is
# needed: asked for a domain's lease addresses on a network without one, libvirt
# 9.0's test driver crashes the client (SIGSEGV in interfaceAddresses). The test
# driver invents the leases; nothing on this machine uses the addresses.
NETWORK = ("<network><name>default</name><uuid>00000000-0000-4000-9000-000000000001</uuid>"
           "<bridge name='virbr0'/><ip address='192.168.122.1' netmask='255.255.255.0'>"
           "<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>"
           "</network>\n")

DOMAIN = ("<domain type='test' xmlns:test='" + TEST_NS + "'>"
          "<name>{name}</name><uuid>{uuid}</uuid>"
          "<memory unit='KiB'>524288</memory><currentMemory unit='KiB'>524288</currentMemory>"
          "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
          "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
          "<source file='/var/lib/libvirt/images/{name}.qcow2'/>"
          "<target dev='vda' bus='virtio'/></disk>"
          "<interface type='network'><mac address='{mac}'/><source network='default'/>"
          "<model type='virtio'/></interface></devices>{runstate}</domain>\n")


def running(i: int) -> bool:
    """Whether domain i runs: two in three."""
    return i % 3 != 2


def domain_xml(i: int) -> str:
    name = f"vm-{i:05d}"
    runstate = "" if running(i) else f"<test:runstate>{SHUTOFF}</test:runstate>"
    return DOMAIN.format(name=name, uuid=f"00000000-0000-4000-8000-{i:012d}",
                         mac=f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                         runstate=runstate)


def node_xml(n: int, first: int = 0) -> str:
    # Memory enough for every domain, so the test driver never refuses one.
    memory_kib = max(64 << 20, (n * 512 + 4096) << 10)
    return NODE.format(memory_kib=memory_kib, network=NETWORK,
                       domains="".join(domain_xml(i) for i in range(first, first + n)))


def write(n: int, path: str | Path, first: int = 0) -> str:
    """Writes the node file (domains first … first+n-1: hosts of one cluster hold
    different VMs); returns its test-driver URI (test:///abs/path)."""
    path = Path(path).resolve()
    path.write_text(node_xml(n, first))
    return f"test://{path}"


def check(path: str | Path, n: int) -> None:
    """Opens the file with libvirt's test driver and checks names and states."""
    import libvirt
    conn = libvirt.openReadOnly(f"test://{Path(path).resolve()}")
    try:
        doms = conn.listAllDomains()
        got = {d.name(): d.info()[0] for d in doms}
    finally:
        conn.close()
    assert len(got) == n, f"{len(got)} domains, not {n}"
    for i in range(n):
        want = libvirt.VIR_DOMAIN_RUNNING if running(i) else libvirt.VIR_DOMAIN_SHUTOFF
        assert got[f"vm-{i:05d}"] == want, f"vm-{i:05d}: state {got[f'vm-{i:05d}']}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    n, out = int(sys.argv[1]), sys.argv[2]
    print(write(n, out))
    check(out, n)
