"""The headless CLI: input checked at entry, errors an operator (or a script) reads,
exit codes that mean something. No hosts: offline engines and tmp inventories."""
from __future__ import annotations

import asyncio
import getpass
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mvmtui import cli, cli_lab
from mvmtui.cli import main
from mvmtui.engine import Engine, Inventory
from mvmtui.engine.errors import Offline
from mvmtui.engine.lab import Lab
from mvmtui.engine.model import Cluster, Host, Vm, VmState
from mvmtui.engine.tasks import Journal, TaskSpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inv(tmp_path) -> str:
    """An inventory with cluster lab (kvm-01, kvm-02; web-01 on kvm-01) and one
    finished task with steps and logs. Hosts are unreachable addresses: every test
    here runs offline or fails before contacting them."""
    path = tmp_path / "inv.db"
    i = Inventory(path)
    i.save_cluster(Cluster(name="lab"))
    for n in (1, 2):
        i.save_host(Host(cluster="lab", name=f"kvm-0{n}", address=f"192.0.2.{n}"))
    i.save_vms([Vm(cluster="lab", host="kvm-01", uuid="u1", name="web-01",
                   state=VmState.RUNNING, seen_at=1.0)])
    j = Journal(i, lambda: 100.0, lambda e: None)

    async def body(ctx):
        ctx.step(0)
        ctx.log("host checked")
        ctx.step(1)

    spec = TaskSpec(kind="vm.start", title="Start web-01", cluster="lab", target_kind="vm",
                    target="u1", target_name="web-01", host="kvm-01",
                    steps=("Check host", "Start"), locks=("vm:u1",), params={})
    asyncio.run(j.run(spec, body))
    i.close()
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


class _Tty:
    """A stdin that says it is a terminal."""

    def isatty(self):
        return True


# ---- 1. --ask-password ---------------------------------------------------------------
def test_ask_password_from_a_pipe_is_refused(capsys, inv, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    code, _, err = run(capsys, "--inventory", inv, "vm", "list", "--ask-password")
    assert code == 2
    assert "--ask-password needs a terminal to type the password on" in err
    assert "Traceback" not in err


def test_ask_password_on_ctrl_d_is_a_usage_error(capsys, inv, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Tty())

    def eof(prompt=""):
        raise EOFError
    monkeypatch.setattr(getpass, "getpass", eof)
    code, _, err = run(capsys, "--inventory", inv, "vm", "list", "--ask-password")
    assert (code, err.strip()) == (2, "mvmtui: no password given")


def test_console_ask_password_on_ctrl_d(capsys, inv, monkeypatch):
    import mvmtui.app
    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(cli, "_has_terminal", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": (_ for _ in ()).throw(EOFError))
    monkeypatch.setattr(mvmtui.app, "run_console", lambda *a, **k: pytest.fail("opened"))
    code, _, err = run(capsys, "--inventory", inv, "console", "--ask-password", "lab")
    assert (code, err.strip()) == (2, "mvmtui: no password given")


# ---- 2. cluster add checks its input -------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["lab2", "a=10.0.0.1:0"], "bad port '0' in 'a=10.0.0.1:0': a port is a number from 1 to 65535"),
    (["lab2", "a=10.0.0.1:99999"], "bad port '99999'"),
    (["lab2", "a=10.0.0.1:abc"], "bad port 'abc'"),
    (["lab2", "a=10.0.0.1:"], "bad port ''"),
    (["my lab", "a=10.0.0.1"], "bad cluster name 'my lab': use letters, digits, '-', '_' and "
                               "'.', 1–63 characters, starting with a letter or digit"),
    (["_lab", "a=10.0.0.1"], "bad cluster name '_lab'"),
    (["x" * 64, "a=10.0.0.1"], "bad cluster name"),
    (["lab2", "kvm 01=10.0.0.1"], "bad host name 'kvm 01'"),
    (["lab2", "a=10.0.0.1/24"], "bad address '10.0.0.1/24' in 'a=10.0.0.1/24': write a "
                                "hostname or an IP address"),
    (["lab2", "a=kvm 01.example"], "bad address 'kvm 01.example'"),
    (["lab2", "a=10.0.0.300"], "bad address '10.0.0.300'"),
    (["lab2", "kvm-01=10.77.0.11", "kvm-01=10.77.0.12"], "host kvm-01 is given twice"),
    (["lab2", "kvm-01=10.77.0.11", "kvm-02=10.77.0.11:22"],
     "address 10.77.0.11:22 is given twice"),
])
def test_cluster_add_refuses_bad_input_in_plain_words(capsys, tmp_path, args, message):
    path = str(tmp_path / "new.db")
    code, out, err = run(capsys, "--inventory", path, "cluster", "add", *args)
    assert code == 2, out
    assert message in err
    assert "('" not in err and "Traceback" not in err        # no Python tuples or reprs


def test_cluster_add_accepts_good_input_and_json(capsys, tmp_path):
    path = str(tmp_path / "new.db")
    code, out, err = run(capsys, "--inventory", path, "cluster", "add", "lab_2.prod",
                         "kvm-01=10.77.0.11:2222", "kvm.example.net", "v6=[fd00::2]:22",
                         "--json")
    assert code == 0, err
    assert json.loads(out) == {"cluster": "lab_2.prod", "hosts": [
        {"name": "kvm-01", "address": "10.77.0.11", "port": 2222},
        {"name": "kvm.example.net", "address": "kvm.example.net", "port": 22},
        {"name": "v6", "address": "fd00::2", "port": 22}]}
    code, out, err = run(capsys, "--inventory", path, "cluster", "remove", "lab_2.prod",
                         "--json")
    assert code == 0 and json.loads(out)["cluster"] == "lab_2.prod"


# ---- 3. consistency ------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["vm", "list", "--cluster", "nope", "--offline"],
    ["host", "list", "--cluster", "nope", "--offline"],
    ["task", "list", "--cluster", "nope"],
    ["vm", "start", "web-01", "--cluster", "nope", "--offline"],
    ["cluster", "remove", "nope"],
])
def test_an_unknown_cluster_is_not_found(capsys, inv, argv):
    code, out, err = run(capsys, "--inventory", inv, *argv)
    assert (code, out) == (3, "")
    assert err.strip() == "mvmtui: No cluster named 'nope'. Known: lab."


def test_an_unknown_host_is_not_found(capsys, inv):
    code, out, err = run(capsys, "--inventory", inv, "vm", "list", "--host", "kvm-09",
                         "--offline")
    assert (code, out) == (3, "")
    assert err.strip() == "mvmtui: No host 'kvm-09' in cluster 'lab'. Hosts: kvm-01, kvm-02."
    code, out, _ = run(capsys, "--inventory", inv, "vm", "list", "--host", "kvm-01",
                       "--offline", "--json")
    assert code == 0 and [v["name"] for v in json.loads(out)] == ["web-01"]


@pytest.mark.parametrize("wait", ["-5", "abc", "nan"])
def test_wait_must_be_seconds(capsys, inv, wait):
    code, _, err = run(capsys, "--inventory", inv, "vm", "list", "--offline", "--wait", wait)
    assert code == 2
    assert f"argument --wait: give a number of seconds, 0 or more (not {wait})" in err


def test_json_errors_are_objects_on_stdout(capsys, inv):
    code, out, err = run(capsys, "--inventory", inv, "vm", "list", "--cluster", "nope",
                         "--offline", "--json")
    assert code == 3
    assert json.loads(out) == {"error": {"code": 3, "kind": "not-found",
                                         "message": "No cluster named 'nope'. Known: lab."}}
    assert "No cluster named 'nope'" in err
    code, out, _ = run(capsys, "--inventory", inv, "vm", "list", "--wait", "-5", "--json")
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"


def test_task_list_json_has_steps_and_logs(capsys, inv):
    code, out, _ = run(capsys, "--inventory", inv, "task", "list", "--json")
    assert code == 0
    (task,) = json.loads(out)
    assert [s["name"] for s in task["steps"]] == ["Check host", "Start"]
    assert "host checked" in [line["message"] for line in task["logs"]]


def test_task_list_into_a_closed_pipe_is_quiet(inv):
    """`mvmtui task list | head -1`: no "Broken pipe", exit 0."""
    p = subprocess.Popen([sys.executable, "-m", "mvmtui", "--inventory", inv, "task",
                          "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()          # the reader is gone before the first line is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0, err
    assert err == ""


def test_a_mistyped_inventory_is_refused_not_created(capsys, tmp_path):
    path = tmp_path / "invetory.db"
    for argv in (["vm", "list", "--offline"], ["task", "list"], ["cluster", "remove", "x"]):
        code, _, err = run(capsys, "--inventory", str(path), *argv)
        assert code == 5
        assert err.strip() == (f"mvmtui: No inventory at {path}. Create it with `mvmtui "
                               f"--inventory {path} cluster add …` or `mvmtui lab up`, or "
                               f"check the path.")
    assert not path.exists()
    code, _, _ = run(capsys, "--inventory", str(path), "cluster", "add", "c", "h=10.0.0.1")
    assert code == 0 and path.exists()


def test_a_first_run_on_the_default_inventory_just_works(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("MVMTUI_INVENTORY", raising=False)
    code, out, err = run(capsys, "vm", "list", "--json")
    assert (code, json.loads(out), err) == (0, [], "")
    assert (tmp_path / "data" / "mvmtui" / "inventory.db").exists()


@pytest.mark.parametrize("argv", [[], ["--readonly"], ["console", "--offline"]])
def test_the_console_needs_a_terminal(capsys, inv, monkeypatch, argv):
    import mvmtui.app
    monkeypatch.setattr(mvmtui.app, "run_console", lambda *a, **k: pytest.fail("opened"))
    code, out, err = run(capsys, "--inventory", inv, *argv)
    assert code == 2
    assert err.strip() == ("mvmtui: The console needs a terminal; for scripts use a verb, "
                           "e.g. `mvmtui vm list --json`.")


def test_offline_refusals_exit_6(capsys, inv, monkeypatch):
    async def refuse(self, uuid, action):
        raise Offline("Start web-01")
    monkeypatch.setattr(Engine, "vm_action", refuse)
    code, out, err = run(capsys, "--inventory", inv, "vm", "start", "web-01", "--offline",
                         "--json")
    assert code == 6 and "Offline mode" in err
    assert json.loads(out)["error"]["kind"] == "offline"
    assert "6 read-only or offline mode" in cli.__doc__


# ---- 4. lab ssh / lab virsh (no lab needed: a lab's state file in a tmp dir) ---------
@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MVMTUI_LAB_DIR", str(tmp_path / "labs"))
    lab = Lab("lab")
    lab.root.mkdir(parents=True)
    (lab.root / "state.json").write_text(json.dumps({"subnet": 77, "hosts": {
        f"kvm-0{i}": {"address": f"10.77.0.1{i}", "unshare_pid": 1} for i in (1, 2, 3)}}))
    (lab.root / "ssh").mkdir()
    lab.ssh_key.write_text("a key\n")
    monkeypatch.setattr(Lab, "init_pid", lambda self, h: 4242)
    return lab


def test_lab_ssh_argv(lab):
    key, kh = lab.root / "ssh" / "id_ed25519", lab.root / "ssh" / "known_hosts"
    base = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes",
            "root@10.77.0.12"]
    assert cli_lab.lab_ssh_argv(lab, "kvm-02", []) == base
    assert cli_lab.lab_ssh_argv(lab, "kvm-02", ["virsh", "list", "--all"]) == base + [
        "--", "virsh list --all"]
    assert cli_lab.lab_ssh_argv(lab, "kvm-02", ["echo", "a b"])[-1] == "echo 'a b'"


def test_lab_ssh_execs_ssh(capsys, lab, monkeypatch):
    seen = []
    monkeypatch.setattr(os, "execvp", lambda f, argv: seen.append((f, argv)))
    assert main(["lab", "ssh", "kvm-01", "uptime", "-p"]) == 0
    assert seen == [("ssh", cli_lab.lab_ssh_argv(lab, "kvm-01", ["uptime", "-p"]))]


def test_lab_ssh_without_the_labs_key(capsys, lab, monkeypatch):
    lab.ssh_key.chmod(0)
    monkeypatch.setattr(os, "access", lambda path, mode: False)   # also when run as root
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail("ran ssh"))
    code, _, err = run(capsys, "lab", "ssh", "kvm-01")
    assert code == 8 and f"cannot read the lab's SSH key {lab.ssh_key}" in err


def test_lab_ssh_to_an_unknown_host_is_a_lab_error(capsys, lab, monkeypatch):
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail("ran ssh"))
    code, _, err = run(capsys, "lab", "ssh", "kvm-09")
    assert code == 8
    assert err.strip() == "mvmtui: no lab host 'kvm-09'; hosts: kvm-01, kvm-02, kvm-03"


def test_lab_ssh_when_the_lab_is_down(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MVMTUI_LAB_DIR", str(tmp_path / "none"))
    code, _, err = run(capsys, "lab", "ssh", "kvm-01")
    assert code == 8 and "lab 'lab' is not up; `mvmtui lab up` starts it" in err


def test_lab_virsh_prints_its_output_and_exits_with_its_code(capsys, lab, monkeypatch):
    calls = []

    def exec_(self, h, *cmd, check=True, input=None):
        calls.append((h.name, cmd, check))
        return subprocess.CompletedProcess(cmd, 1, "out\n", "error: no domain\n")
    monkeypatch.setattr(Lab, "exec", exec_)
    code, out, err = run(capsys, "lab", "virsh", "kvm-03", "dominfo", "--domain", "nope")
    assert (code, out, err) == (1, "out\n", "error: no domain\n")
    assert calls == [("kvm-03", ("virsh", "-c", "qemu:///system", "dominfo", "--domain",
                                 "nope"), False)]


# ---- 5. task cancel ------------------------------------------------------------------
def test_task_cancel_of_an_unknown_task(capsys, inv):
    code, _, err = run(capsys, "--inventory", inv, "task", "cancel", "99")
    assert (code, err.strip()) == (3, "mvmtui: No task 99.")


def test_task_cancel_asks_and_reports(capsys, inv, monkeypatch):
    asked = []

    async def cancel(self, tid):
        asked.append(tid)
        return self.task(tid)
    monkeypatch.setattr(Engine, "cancel_task", cancel, raising=False)
    code, out, _ = run(capsys, "--inventory", inv, "task", "cancel", "1")
    assert code == 0 and asked == [1]
    assert out.startswith("task 1: cancel asked; ")


@pytest.mark.skipif(not hasattr(Engine, "cancel_task"), reason="engine.cancel_task not yet")
def test_task_cancel_of_a_finished_task_says_why(capsys, inv):
    code, out, err = run(capsys, "--inventory", inv, "task", "cancel", "1")
    assert code == 1 and out == ""
    assert err.startswith("mvmtui: ") and "Traceback" not in err


# ---- 7. demo -------------------------------------------------------------------------
def test_demo_brings_the_lab_up_opens_the_console_and_takes_it_down(capsys, tmp_path,
                                                                   monkeypatch):
    import mvmtui.app
    done = []
    monkeypatch.setattr(cli, "_has_terminal", lambda: True)
    monkeypatch.setattr(Lab, "running_hosts", lambda self: [])
    monkeypatch.setattr(Lab, "up", lambda self, inv=None: done.append(("up", self.nhosts)))
    monkeypatch.setattr(Lab, "down", lambda self, keep_files=False: done.append("down"))

    def console(eng, start_cluster=None, **kw):
        done.append(("console", start_cluster, kw.get("lab_demo", "lab")))
        raise KeyboardInterrupt
    monkeypatch.setattr(mvmtui.app, "run_console", console)
    code = main(["--inventory", str(tmp_path / "i.db"), "demo", "--hosts", "2"])
    assert code == 130                      # the console's outcome is kept ...
    assert done == [("up", 2), ("console", "lab", "lab"), "down"]   # ... lab down anyway
    target = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "$(VENV)/mvmtui demo" in target


# ---- 6. who starts tasks (a live host: libvirt's test driver, no root, no SSH) -------
NODE = """<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
<active>2</active><mhz>2000</mhz><model>x86_64</model></cpu><memory>2097152</memory>
<domain type='test'><name>web-01</name><uuid>00000000-0000-4000-8000-000000000001</uuid>
<memory>262144</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain></node>"""


def test_cli_tasks_are_started_by_the_cli(capsys, tmp_path):
    (tmp_path / "node.xml").write_text(NODE)
    path = tmp_path / "sim.db"
    i = Inventory(path)
    i.save_cluster(Cluster(name="sim", known_hosts=str(tmp_path / "known_hosts")))
    i.save_host(Host(cluster="sim", name="hv-1", address=f"test://{tmp_path}/node.xml"))
    i.close()
    code, out, err = run(capsys, "--inventory", str(path), "vm", "destroy", "web-01",
                         "--cluster", "sim", "--json")
    assert code == 0, err
    (task,) = json.loads(out)
    assert task["status"] == "succeeded" and task["started_by"].startswith("cli · ")
    code, out, _ = run(capsys, "--inventory", str(path), "vm", "list", "--host", "hv-1",
                       "--json")
    assert code == 0 and [v["name"] for v in json.loads(out)] == ["web-01"]   # live


def test_the_console_engine_is_the_consoles(capsys, inv, monkeypatch):
    import mvmtui.app
    seen = []
    monkeypatch.setattr(cli, "_has_terminal", lambda: True)
    monkeypatch.setattr(mvmtui.app, "run_console",
                        lambda eng, start_cluster=None, **kw: seen.append(
                            (eng.journal.started_by.split(" ")[0], start_cluster)))
    assert main(["--inventory", inv, "console", "--offline", "--cluster", "lab"]) == 0
    assert seen == [("console", "lab")]
    code, _, err = run(capsys, "--inventory", inv, "console", "--offline", "--cluster", "x")
    assert code == 3 and "No cluster named 'x'" in err


def test_cluster_list_offline(capsys, inv):
    code, out, _ = run(capsys, "--inventory", inv, "cluster", "list", "--offline", "--json")
    assert code == 0
    (c,) = json.loads(out)
    assert (c["name"], c["hosts_total"], c["vms_total"]) == ("lab", 2, 1)
    code, out, _ = run(capsys, "--inventory", inv, "cluster", "list", "--offline")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["lab", "kvm", "0/2"]


def test_cluster_set_and_show_the_policy(capsys, inv):
    code, out, _ = run(capsys, "--inventory", inv, "cluster", "set", "lab",
                       "vcpu-ratio=2.5", "migration-concurrency=3")
    assert code == 0 and re.search(r"^vcpu-ratio +2\.5$", out, re.M)
    code, out, _ = run(capsys, "--inventory", inv, "cluster", "show", "lab", "--json")
    shown = json.loads(out)
    assert (shown["vcpu_ratio"], shown["migration_concurrency"]) == (2.5, 3)
    code, out, err = run(capsys, "--inventory", inv, "cluster", "set", "lab",
                         "migration-concurrency=99", "--json")
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"
    assert "1–16" in err
    code, _, err = run(capsys, "--inventory", inv, "cluster", "set", "nope", "vcpu-ratio=2")
    assert code == 3 and "No cluster named 'nope'" in err
