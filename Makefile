# The two commands the README opens with: `make demo` and `make test`.
.PHONY: setup demo demo-ceph test bench bench-terminal lab-down

VENV := .venv/bin

setup:
	bash scripts/setup.sh

# Brings the three-host lab up, opens the console on it, and takes the lab down after.
demo: setup
	$(VENV)/mvmtui demo

# The same with a real Ceph (four hosts, VM disks on RBD; about a minute more to start).
demo-ceph: setup
	$(VENV)/mvmtui demo --ceph

# Two workers: one runs every lab test in order (they share the session's labs), the
# other the rest meanwhile (tests/conftest.py puts the lab tests in one xdist group).
test: setup
	$(VENV)/lint-imports
	$(VENV)/python -m pytest -n 2 --dist loadgroup

bench: setup
	$(VENV)/python bench/bench_launch.py
	$(VENV)/python bench/bench_table.py
	$(VENV)/python bench/bench_vms_view.py
	$(VENV)/python bench/bench_refresh.py
	$(VENV)/python bench/bench_planner.py
	$(VENV)/python bench/bench_migration.py
	$(VENV)/python bench/bench_sampling.py
	$(VENV)/python bench/bench_charts.py
	$(VENV)/python bench/bench_ceph.py
	$(VENV)/python bench/bench_terminal.py
	$(VENV)/python bench/bench_monitoring_terminal.py

# What an operator sees, in tmux: mvmtui beside VirtUI Manager 3.3.3, 1,000 and 10,000 VMs.
bench-terminal: setup
	$(VENV)/python bench/bench_terminal.py

lab-down:
	$(VENV)/mvmtui lab down
