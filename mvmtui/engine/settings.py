"""Personal settings: one TOML file, $MVMTUI_CONFIG or
$XDG_CONFIG_HOME/mvmtui/settings.toml (~/.config/mvmtui/settings.toml).

    [intervals]          # seconds
    stats = 5            # bulk pass: every VM's state, vCPUs, memory and use
    reconcile = 300      # full re-read of every host (what no event reports)
    reconnect = 2        # first retry of a host that stopped answering
    [timeouts]           # seconds
    shutdown = 90        # a guest's ACPI shutdown
    reboot = 90          # a guest's ACPI reboot

A missing file means the defaults; a bad one is refused with what to fix.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import BadSetting


class SettingsError(BadSetting):
    """The settings file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    stats: float = 5.0
    reconcile: float = 300.0
    reconnect: float = 2.0
    shutdown: float = 90.0
    reboot: float = 90.0

    def engine_options(self) -> dict:
        return dict(stats_interval=self.stats, reconcile_interval=self.reconcile,
                    reconnect_interval=self.reconnect, shutdown_timeout=self.shutdown,
                    reboot_timeout=self.reboot)


_SECTIONS = {"intervals": ("stats", "reconcile", "reconnect"),
             "timeouts": ("shutdown", "reboot")}


def default_path() -> Path:
    if os.environ.get("MVMTUI_CONFIG"):
        return Path(os.environ["MVMTUI_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "mvmtui" / "settings.toml"


def load(path: Path | None = None) -> Settings:
    path = path or default_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"Cannot read the settings file {path}: {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"The settings file {path} is not valid TOML ({exc}). "
                            f"Fix it, or move it aside to use the defaults.") from exc
    values: dict[str, float] = {}
    for section, table in data.items():
        known = _SECTIONS.get(section)
        if known is None or not isinstance(table, dict):
            raise SettingsError(f"{path}: unknown section [{section}]; known: "
                                f"{', '.join(f'[{s}]' for s in _SECTIONS)}.")
        for key, value in table.items():
            if key not in known:
                raise SettingsError(f"{path}: [{section}] has no setting {key!r}; "
                                    f"known: {', '.join(known)}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= 86400:
                raise SettingsError(f"{path}: [{section}] {key} must be a number of "
                                    f"seconds between 0 and 86400, not {value!r}.")
            values[key] = float(value)
    assert set(values) <= {f.name for f in fields(Settings)}
    return Settings(**values)
