# The two commands the README opens with: `make demo` and `make test`.
.PHONY: setup demo test bench lab-down

VENV := .venv/bin

setup:
	bash scripts/setup.sh

# Brings the three-host lab up, opens the console on it, and takes the lab down after.
demo: setup
	$(VENV)/mvmtui demo

test: setup
	$(VENV)/lint-imports
	$(VENV)/python -m pytest

bench: setup
	$(VENV)/python bench/bench_launch.py
	$(VENV)/python bench/bench_table.py
	$(VENV)/python bench/bench_vms_view.py
	$(VENV)/python bench/bench_refresh.py
	$(VENV)/python bench/bench_planner.py
	$(VENV)/python bench/bench_migration.py

lab-down:
	$(VENV)/mvmtui lab down
