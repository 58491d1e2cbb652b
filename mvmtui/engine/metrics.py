"""What is sampled, how long it is kept, and the host figures read from /proc.

Pure: no I/O. history.py stores the samples; sync.py takes them.

Three tiers, each a fixed size once full (the database never grows without bound):
raw samples (one per stats interval) for an hour, minute averages for a day,
15-minute averages for a month. A chart's range picks the finest tier that covers it.
"""
from __future__ import annotations

from dataclasses import dataclass

# name → (label, unit, column in history's tables, scale stored as an integer)
METRICS: dict[str, tuple[str, str, str, int]] = {
    "cpu_pct": ("CPU", "%", "cpu10", 10),            # 0.1 % steps
    "mem_used_mib": ("Memory", "MiB", "mem", 1),
    "load1": ("Load", "", "load100", 100),           # hosts only
    "disk_rd_bps": ("Disk read", "B/s", "rd", 1),
    "disk_wr_bps": ("Disk write", "B/s", "wr", 1),
    "net_rx_bps": ("Net in", "B/s", "rx", 1),
    "net_tx_bps": ("Net out", "B/s", "tx", 1),
    # A cluster's Ceph (one series, kind "ceph"): its figures share the columns above,
    # since no series has both.
    "raw_used_pct": ("Raw used", "%", "cpu10", 10),
    "raw_used_mib": ("Raw used", "MiB", "mem", 1),
    "client_rd_bps": ("Client read", "B/s", "rd", 1),
    "client_wr_bps": ("Client write", "B/s", "wr", 1),
}
HOST_METRICS = ("cpu_pct", "mem_used_mib", "load1", "disk_rd_bps", "disk_wr_bps",
                "net_rx_bps", "net_tx_bps")
VM_METRICS = tuple(m for m in HOST_METRICS if m != "load1")
CEPH_METRICS = ("raw_used_pct", "raw_used_mib", "client_rd_bps", "client_wr_bps")
KIND_METRICS = {"host": HOST_METRICS, "vm": VM_METRICS, "ceph": CEPH_METRICS}
CEPH_SERIES = "cluster"    # the key of a cluster's one Ceph series


@dataclass(frozen=True)
class Tier:
    number: int
    step: float          # seconds a point stands for (0: raw, one per stats interval)
    keep: float          # seconds kept
    name: str


RAW = Tier(0, 0, 3600, "raw samples")
MINUTE = Tier(1, 60, 86400, "1-minute averages")
QUARTER = Tier(2, 900, 30 * 86400, "15-minute averages")
TIERS = (RAW, MINUTE, QUARTER)

# Chart ranges (keys 1–4 on a chart): seconds shown, and the tier they read.
RANGES: dict[str, tuple[float, Tier]] = {
    "15m": (900, RAW), "1h": (3600, RAW), "1d": (86400, MINUTE), "1w": (7 * 86400, QUARTER),
}
RANGE_NAMES = tuple(RANGES)


def bucket(at: float, step: float) -> int:
    """Start of the step-wide window holding `at` (windows are [start, start+step))."""
    return int(at // step * step)


def to_stored(metric: str, value: float | None) -> int | None:
    if value is None:
        return None
    return round(value * METRICS[metric][3])


def from_stored(metric: str, value: float | None) -> float | None:
    if value is None:
        return None
    return value / METRICS[metric][3]


# ---- host figures from /proc (one SSH exec per stats pass) ------------------------
PROC_COMMAND = "cat /proc/loadavg /proc/net/dev /proc/diskstats"


@dataclass(frozen=True)
class HostCounters:
    load1: float | None
    rx_bytes: int          # every interface but lo, summed
    tx_bytes: int
    rd_bytes: int          # whole disks only (no partitions), summed
    wr_bytes: int


def parse_proc(text: str) -> HostCounters:
    """/proc/loadavg, /proc/net/dev and /proc/diskstats, concatenated. Lines it does
    not know are skipped: a kernel that adds fields must not stop sampling."""
    load1, rx, tx, rd, wr = None, 0, 0, 0, 0
    disks: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if load1 is None and len(parts) == 5 and "/" in parts[3]:
            try:
                load1 = float(parts[0])
            except ValueError:
                pass
        elif ":" in parts[0] and not parts[0].startswith("Inter"):
            name, _, first = line.partition(":")
            fields = first.split()
            if name.strip() != "lo" and len(fields) >= 9:
                try:
                    rx += int(fields[0])
                    tx += int(fields[8])
                except ValueError:
                    pass
        elif len(parts) >= 14 and parts[0].isdigit() and parts[1].isdigit():
            try:    # sectors read (field 6) and written (field 10), 512 bytes each
                disks[parts[2]] = (int(parts[5]) * 512, int(parts[9]) * 512)
            except ValueError:
                pass
    for name, (r, w) in disks.items():
        if _is_partition(name, disks) or name.startswith(("loop", "ram", "dm-", "sr")):
            continue
        rd += r
        wr += w
    return HostCounters(load1, rx, tx, rd, wr)


def _is_partition(name: str, disks: dict) -> bool:
    """sda1 of sda, nvme0n1p1 of nvme0n1: counted in the whole disk already."""
    for whole in disks:
        if whole != name and name.startswith(whole) and name[len(whole):].lstrip("p").isdigit():
            return True
    return False


def rate(prev: int | None, cur: int | None, seconds: float) -> float | None:
    """Per-second rate of a counter; None if unknown or it went back (a reboot)."""
    if prev is None or cur is None or seconds <= 0 or cur < prev:
        return None
    return (cur - prev) / seconds
