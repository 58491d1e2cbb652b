"""The README's screenshots (assets/*.svg) are snapshot-test screens: the same code,
the fixed demo inventory (tests/conftest.py) and a fixed clock. This copies them from
tests/__snapshots__; tests/test_readme_screenshots.py fails when one is out of date.

    .venv/bin/python scripts/screenshots.py            # copy the current snapshots
    .venv/bin/python scripts/screenshots.py --update   # re-make those snapshots first
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPS = ROOT / "tests" / "__snapshots__"

# asset name → (snapshot test module, test name)
SHOTS = {
    "cluster-summary.svg": ("test_snapshots", "test_cluster_summary"),
    "vms.svg": ("test_snapshots", "test_vms_tab"),
    "monitoring.svg": ("test_monitoring_snapshots", "test_monitoring_tab"),
    "host.svg": ("test_monitoring_snapshots", "test_host_chart"),
    "events.svg": ("test_monitoring_snapshots", "test_events_tab"),
    "maintenance-preview.svg": ("test_moves_snapshots", "test_maintenance_preview_blocked_by_a_pinned_vm"),
    "ceph.svg": ("test_ceph_snapshots", "test_ceph_screen_backfilling"),
}


def source(module: str, test: str) -> Path:
    return SNAPS / module / f"{test}.svg"


def main() -> int:
    if "--update" in sys.argv[1:]:
        ids = [f"tests/{m}.py::{t}" for m, t in SHOTS.values()]
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "--snapshot-update", *ids],
                           cwd=ROOT)
        if r.returncode:
            return r.returncode
    (ROOT / "assets").mkdir(exist_ok=True)
    for name, (module, test) in SHOTS.items():
        shutil.copyfile(source(module, test), ROOT / "assets" / name)
        print(f"assets/{name} ← {module}::{test}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
