"""The headless CLI against the lab: JSON output and exit codes that mean something."""
from __future__ import annotations

import json

from mvmtui.cli import main


def _run(capsys, lab_cluster, *args):
    code = main(["--inventory", str(lab_cluster.inventory), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_lists_as_json(capsys, lab_cluster):
    code, out, _ = _run(capsys, lab_cluster, "host", "list", "--cluster", "citest", "--json")
    assert code == 0
    hosts = json.loads(out)
    assert {h["name"]: h["status"] for h in hosts} == {
        "kvm-01": "up", "kvm-02": "up", "kvm-03": "up"}
    code, out, _ = _run(capsys, lab_cluster, "vm", "list", "--cluster", "citest", "--json")
    assert code == 0
    vms = {v["name"]: v for v in json.loads(out)}
    assert vms["web-01"]["host"] == "kvm-01" and vms["web-01"]["state"] == "running"
    code, out, _ = _run(capsys, lab_cluster, "cluster", "list")
    assert code == 0 and "citest" in out and "3/3" in out


def test_vm_verbs_and_exit_codes(capsys, lab_cluster):
    code, out, _ = _run(capsys, lab_cluster, "vm", "start", "staging-01", "--json")
    assert code == 0, out
    assert json.loads(out)[0]["status"] == "succeeded"
    code, out, _ = _run(capsys, lab_cluster, "vm", "start", "staging-01")
    assert code == 1 and "already running" in out          # libvirt's reason, plainly
    code, out, _ = _run(capsys, lab_cluster, "vm", "destroy", "staging-01")
    assert code == 0
    code, _, err = _run(capsys, lab_cluster, "vm", "start", "no-such-vm")
    assert code == 3 and "No VM named 'no-such-vm'" in err
    code, out, _ = _run(capsys, lab_cluster, "task", "list", "--json")
    titles = [t["title"] for t in json.loads(out)]
    assert titles[:3] == ["Force off staging-01", "Start staging-01", "Start staging-01"]


def test_offline_list_does_not_contact_hosts(capsys, lab_cluster):
    code, out, _ = _run(capsys, lab_cluster, "host", "list", "--offline", "--json")
    assert code == 0                        # nothing asked of the hosts: all stale
    assert {h["status"] for h in json.loads(out)} == {"stale"}


def test_readonly_verb_is_refused_with_its_exit_code(capsys, lab_cluster):
    code, _, err = _run(capsys, lab_cluster, "vm", "destroy", "web-01", "--readonly")
    assert code == 6 and "Read-only" in err


def test_inventory_option_with_equals(capsys, lab_cluster):
    code = main([f"--inventory={lab_cluster.inventory}", "cluster", "list", "--offline"])
    assert code == 0 and "citest" in capsys.readouterr().out
