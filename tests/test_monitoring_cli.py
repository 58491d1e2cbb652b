"""`mvmtui metrics` and `mvmtui events` (cli_metrics.py) on an inventory with history
written as the stats pass writes it: offline, no host contacted."""
from __future__ import annotations

import json
import time

import pytest

from mvmtui.cli import main
from mvmtui.cli_metrics import parse_since
from mvmtui.cli import UsageError
from mvmtui.engine import Inventory
from mvmtui.engine.history import History
from mvmtui.engine.model import OUTSIDE, Cluster, Host, Vm, VmState


@pytest.fixture
def inv(tmp_path) -> str:
    path = tmp_path / "inv.db"
    i = Inventory(path)
    i.save_cluster(Cluster(name="lab"))
    i.save_host(Host(cluster="lab", name="kvm-01", address="192.0.2.1"))
    i.save_vms([Vm(cluster="lab", host="kvm-01", uuid="u1", name="web-01",
                   state=VmState.RUNNING, seen_at=1.0)])
    h = History(i)
    now = time.time()
    for k in range(12):          # the last minute, a pass every 5 s
        at = now - 60 + 5 * k
        h.write([("lab", "host", "kvm-01", "kvm-01", at, {"cpu_pct": 10.0 + k, "load1": 0.5}),
                 ("lab", "vm", "u1", "web-01", at, {"cpu_pct": 50.0, "net_rx_bps": 2048.0})],
                now=at)
    i.add_event(now - 30, "lab", "kvm-01", "u1", "vm.state", "web-01: running → shutoff",
                outside=OUTSIDE)
    i.add_event(now - 20, "lab", "kvm-01", "kvm-01", "host.status", "up → unreachable",
                source="seen by console · root@admin")
    i.close()
    return str(path)


def test_metrics_of_a_host_as_json(inv, capsys):
    assert main(["--inventory", inv, "metrics", "host", "kvm-01", "--since", "15m",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tier"] == "raw samples" and d["name"] == "kvm-01"
    assert [v for _, v in d["metrics"]["cpu_pct"]] == [10.0 + k for k in range(12)]
    assert d["metrics"]["load1"][-1][1] == 0.5
    assert d["as_of"] is not None


def test_metrics_of_a_vm_as_a_table(inv, capsys):
    assert main(["--inventory", inv, "metrics", "vm", "web-01"]) == 0
    out = capsys.readouterr().out
    assert "vm web-01 (lab), last 1h: raw samples" in out
    assert "CPU" in out and "50.0%" in out and "2.0 KiB/s" in out


def test_a_longer_range_reads_the_averages(inv, capsys):
    assert main(["--inventory", inv, "metrics", "vm", "web-01", "--since", "1w",
                 "--metric", "cpu_pct", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tier"] == "15-minute averages"
    assert list(d["metrics"]) == ["cpu_pct"] and d["metrics"]["cpu_pct"][-1][1] == 50.0


def test_bad_input_says_what_is_accepted(inv, capsys):
    assert main(["--inventory", inv, "metrics", "host", "kvm-01", "--since", "soon"]) == 2
    assert "90s, 15m, 1h" in capsys.readouterr().err
    assert main(["--inventory", inv, "metrics", "vm", "web-01", "--metric", "load1"]) == 2
    assert "no vm metric 'load1'" in capsys.readouterr().err
    assert main(["--inventory", inv, "metrics", "host", "kvm-09"]) == 3
    assert main(["--inventory", inv, "metrics", "host", "kvm-01", "--since", "60d"]) == 2


def test_events_name_who_made_each_change(inv, capsys):
    assert main(["--inventory", inv, "events", "--cluster", "lab", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in ev] == ["host.status", "vm.state"]      # newest first
    assert ev[1]["source"] == OUTSIDE and ev[1]["target_name"] == "web-01"
    assert main(["--inventory", inv, "events", "--vm", "web-01"]) == 0
    out = capsys.readouterr().out
    assert "running → shutoff" in out and "unreachable" not in out
    assert main(["--inventory", inv, "events", "--since", "1s"]) == 0
    assert "no events" in capsys.readouterr().out


def test_since_accepts_compound_durations():
    assert parse_since("2h30m") == 9000 and parse_since("90s") == 90
    with pytest.raises(UsageError):
        parse_since("1h 30m")


def test_the_same_event_seen_by_two_processes_is_recorded_once(tmp_path):
    i = Inventory(tmp_path / "i.db")
    for _ in range(2):          # the console's engine and a CLI's, a moment apart
        i.add_event(100.0, "lab", "kvm-01", "u1", "vm.state", "web-01: shut off → running")
    i.add_event(103.0, "lab", "kvm-01", "u1", "vm.state", "web-01: shut off → running")
    assert len(i.events("lab")) == 1
    i.add_event(200.0, "lab", "kvm-01", "u1", "vm.state", "web-01: shut off → running")
    assert len(i.events("lab")) == 2                  # later: a change of its own
