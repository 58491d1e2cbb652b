"""The README's screenshots are the snapshot tests' screens, kept current."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
shots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shots)


def test_each_screenshot_is_its_snapshot_and_the_readme_shows_it():
    readme = (ROOT / "README.md").read_text()
    for name, (module, test) in shots.SHOTS.items():
        asset = ROOT / "assets" / name
        assert asset.exists(), f"assets/{name} missing: run scripts/screenshots.py"
        assert asset.read_bytes() == shots.source(module, test).read_bytes(), (
            f"assets/{name} is older than {module}::{test}: run scripts/screenshots.py")
        assert f"assets/{name}" in readme, f"the README does not show assets/{name}"
