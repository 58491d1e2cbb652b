"""Personal settings: one TOML file, $MVMTUI_CONFIG or the user's config directory
(platformdirs: $XDG_CONFIG_HOME/mvmtui/settings.toml, ~/.config/mvmtui/settings.toml).

    theme = "nord"       # the console's Textual theme (default textual-dark)
    [keys]               # binding id = key(s): the console's keys, remapped
    "app.help" = "f1"
    "cluster.settings" = "f2,S"
    [intervals]          # seconds
    stats = 5            # bulk pass: every VM's state, vCPUs, memory and use
    reconcile = 300      # full re-read of every host (what no event reports)
    reconnect = 2        # first retry of a host that stopped answering
    [timeouts]           # seconds
    shutdown = 90        # a guest's ACPI shutdown
    reboot = 90          # a guest's ACPI reboot
    [ha]
    watch = false        # the console watches its clusters for host loss while it runs
                         # (as `mvmtui watch` does): it competes for each cluster's
                         # watcher lease and, holding one, fences and fails over

A missing file means the defaults. A bad value is never fatal: it is named in
`problems` (the CLI prints them on stderr, the console shows them) and that one
setting keeps its default. Whether a theme or a key exists is the console's to say
(Textual's names); here only the file's shape is checked.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

# setting -> what it means (for the settings screen); the section it is in
MEANINGS = {
    "stats": ("intervals", "bulk pass: every VM's state, vCPUs, memory and use"),
    "reconcile": ("intervals", "full re-read of every host (what no event reports)"),
    "reconnect": ("intervals", "first retry of a host that stopped answering"),
    "shutdown": ("timeouts", "how long a guest's ACPI shutdown may take"),
    "reboot": ("timeouts", "how long a guest's ACPI reboot may take"),
}
_SECTIONS = {"intervals": ("stats", "reconcile", "reconnect"),
             "timeouts": ("shutdown", "reboot"),
             "ha": ("watch",),
             "keys": ()}
# Yes/no settings: name -> (section, meaning)
SWITCHES = {"watch": ("ha", "this console watches for host loss, as `mvmtui watch` does")}
_TOP = ("theme",)     # settings outside any [section]


@dataclass(frozen=True)
class Settings:
    stats: float = 5.0
    reconcile: float = 300.0
    reconnect: float = 2.0
    shutdown: float = 90.0
    reboot: float = 90.0
    watch: bool = False                            # [ha] watch
    theme: str = ""                                # "" = the console's default theme
    keys: tuple[tuple[str, str], ...] = ()         # (binding id, "key,key"), as written
    problems: tuple[str, ...] = ()                 # what the file got wrong, in words
    path: str = field(default="", compare=False)   # the file these come from

    def engine_options(self) -> dict:
        return dict(stats_interval=self.stats, reconcile_interval=self.reconcile,
                    reconnect_interval=self.reconnect, shutdown_timeout=self.shutdown,
                    reboot_timeout=self.reboot)

    def console_options(self) -> dict:
        """What the console applies and shows (the app's Preferences)."""
        return dict(theme=self.theme, keys=self.keys, path=self.path,
                    problems=self.problems, others=self.describe(), ha_watch=self.watch)

    def describe(self) -> tuple[tuple[str, str, str, str], ...]:
        """(setting as in the file, value, default, meaning) of the engine's settings,
        then the console's yes/no ones."""
        default = Settings()
        seconds = tuple((f"[{section}] {name}", f"{getattr(self, name):g} s",
                         f"{getattr(default, name):g} s", means)
                        for name, (section, means) in MEANINGS.items())
        return seconds + tuple(
            (f"[{section}] {name}", _toml_bool(getattr(self, name)),
             _toml_bool(getattr(default, name)), means)
            for name, (section, means) in SWITCHES.items())


def default_path() -> Path:
    if os.environ.get("MVMTUI_CONFIG"):
        return Path(os.environ["MVMTUI_CONFIG"])
    try:
        import platformdirs
    except ImportError:     # it comes with Textual; the engine alone may lack it
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return Path(base) / "mvmtui" / "settings.toml"
    return platformdirs.user_config_path("mvmtui", appauthor=False) / "settings.toml"


def load(path: Path | None = None) -> Settings:
    """The settings in the file; never raises for what the file says (see problems)."""
    path = path or default_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Settings(path=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        return Settings(path=str(path), problems=(
            f"cannot read it ({exc}); every setting is its default.",))
    except tomllib.TOMLDecodeError as exc:
        return Settings(path=str(path), problems=(
            f"not valid TOML ({exc}); every setting is its default until it is "
            f"fixed or moved aside.",))
    values: dict[str, object] = {}
    problems: list[str] = []
    defaults = Settings()
    for section, table in data.items():
        if section in _TOP:
            _top(section, table, values, problems)
            continue
        known = _SECTIONS.get(section)
        if known is None or not isinstance(table, dict):
            problems.append(f"unknown section [{section}] (skipped); known: "
                            f"{', '.join(_TOP)}, "
                            f"{', '.join(f'[{s}]' for s in _SECTIONS)}.")
            continue
        if section == "keys":
            values["keys"] = _keys(table, problems)
            continue
        for key, value in table.items():
            if key not in known:
                problems.append(f"[{section}] has no setting {key!r} (skipped); "
                                f"known: {', '.join(known)}.")
            elif key in SWITCHES:
                if isinstance(value, bool):
                    values[key] = value
                else:
                    problems.append(f"[{section}] {key} must be true or false (no quotes), "
                                    f"not {value!r}; using the default, "
                                    f"{_toml_bool(getattr(defaults, key))}.")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= 86400:
                problems.append(f"[{section}] {key} must be a number of seconds between "
                                f"0 and 86400, not {value!r}; using the default, "
                                f"{getattr(defaults, key):g}.")
            else:
                values[key] = float(value)
    assert set(values) <= {f.name for f in fields(Settings)}
    return Settings(**values, problems=tuple(problems), path=str(path))  # type: ignore[arg-type]


def _toml_bool(flag: bool) -> str:
    return "true" if flag else "false"


def _top(name: str, value: object, values: dict, problems: list[str]) -> None:
    if isinstance(value, str) and value.strip():
        values[name] = value.strip()
    else:
        problems.append(f"{name} must be the name of a theme in quotes, e.g. "
                        f'{name} = "nord", not {value!r}; using the default theme.')


def _keys(table: dict, problems: list[str], prefix: str = "") -> tuple[tuple[str, str], ...]:
    """[keys] as (binding id, "key,key"). Dotted ids written bare (app.help = "f1")
    arrive as nested tables: joined again with dots."""
    out: list[tuple[str, str]] = []
    for name, value in table.items():
        binding = f"{prefix}{name}"
        if isinstance(value, dict):
            out += _keys(value, problems, f"{binding}.")
            continue
        keys = [value] if isinstance(value, str) else value
        if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
            parts = [p.strip() for k in keys for p in k.split(",")]
            if all(parts):
                out.append((binding, ",".join(parts)))
                continue
        problems.append(f'[keys] {binding} must be a key or keys in quotes, e.g. '
                        f'"{binding}" = "f2" or "ctrl+s,S", not {value!r}; it keeps '
                        f"its usual key.")
    return tuple(out)
