"""Host figures from /proc (engine/metrics.py): real output, and anything else."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, strategies as st

from mvmtui.engine.metrics import parse_proc, rate

FIXTURE = Path(__file__).parent / "fixtures" / "proc" / "debian12.txt"

SAMPLE = """0.52 0.58 0.59 2/431 12345
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9999999     100    0    0    0     0          0         0  9999999     100    0    0    0     0       0          0
  eth0: 1000        10    0    0    0     0          0         0  2000        20    0    0    0     0       0          0
  eth1: 500          5    0    0    0     0          0         0  700          7    0    0    0     0       0          0
   8       0 sda 100 0 2048 0 50 0 4096 0 0 0 0 0 0 0 0 0 0
   8       1 sda1 90 0 2000 0 40 0 4000 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 10 0 8 0 10 0 16 0 0 0 0 0 0 0 0 0 0
 259       1 nvme0n1p1 10 0 8 0 10 0 16 0 0 0 0 0 0 0 0 0 0
   7       0 loop0 10 0 999 0 10 0 999 0 0 0 0 0 0 0 0 0 0
"""


def test_load_network_and_whole_disks_are_summed():
    c = parse_proc(SAMPLE)
    assert c.load1 == 0.52
    assert (c.rx_bytes, c.tx_bytes) == (1500, 2700)         # lo left out
    # sda and nvme0n1, not their partitions nor loop devices; sectors of 512 bytes.
    assert (c.rd_bytes, c.wr_bytes) == ((2048 + 8) * 512, (4096 + 16) * 512)


def test_this_machines_real_proc_parses():
    c = parse_proc(FIXTURE.read_text())
    assert c.load1 is not None and c.load1 >= 0
    assert c.rx_bytes >= 0 and c.rd_bytes >= 0


def test_rates_are_none_when_unknown_or_a_counter_went_back():
    assert rate(100, 600, 5.0) == 100.0
    assert rate(None, 600, 5.0) is None
    assert rate(600, 100, 5.0) is None           # the host rebooted
    assert rate(100, 600, 0.0) is None


@given(st.text(alphabet=st.sampled_from(list("0123456789 :/.\nabcdelo-p")), max_size=400))
def test_anything_else_never_crashes(text):
    parse_proc(text)
