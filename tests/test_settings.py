"""Settings: the personal file (theme, keys, intervals) and the settings screen, where
a cluster's policy is read and changed through the engine."""
from __future__ import annotations

import re
from pathlib import Path

from mvmtui.app import MvmApp, Preferences, binding_ids
from mvmtui.engine import settings
from mvmtui.engine.policy import KEYS
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.help import HelpScreen
from mvmtui.screens.settings import PolicyValueScreen, SettingsScreen
from mvmtui.widgets.listing import Listing

from conftest import make_app, run_app

ROOT = Path(__file__).resolve().parent.parent
PATH = "/home/operator/.config/mvmtui/settings.toml"


def console(engine, start_cluster="prod", **prefs) -> MvmApp:
    app = MvmApp(engine, start_cluster=start_cluster,
                 preferences=Preferences(path=PATH, **prefs))
    app.animation_level = "none"
    return app


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


# ---- the file ----------------------------------------------------------------------
def test_theme_and_keys_are_read_dotted_or_quoted(tmp_path):
    conf = tmp_path / "settings.toml"
    conf.write_text('theme = "nord"\n'
                    '[keys]\n'
                    '"app.help" = "f1"\n'
                    'cluster.settings = ["f2", "ctrl+s"]\n'      # bare dotted id, a list
                    'vm.start = " S , ctrl+t "\n')
    s = settings.load(conf)
    assert s.theme == "nord" and s.problems == () and s.path == str(conf)
    assert s.keys == (("app.help", "f1"), ("cluster.settings", "f2,ctrl+s"),
                      ("vm.start", "S,ctrl+t"))
    options = s.console_options()
    assert options["others"][0] == ("[intervals] stats", "5 s", "5 s",
                                    "bulk pass: every VM's state, vCPUs, memory and use")
    assert Preferences(**options).theme == "nord"


def test_a_bad_value_is_named_and_only_it_keeps_its_default(tmp_path):
    conf = tmp_path / "settings.toml"
    conf.write_text('theme = 7\n'
                    '[keys]\n"app.help" = ""\n"app.back" = 3\n"app.refresh" = "f5"\n'
                    '[intervals]\nreconcile = -1\nstats = 2\nrecon = 5\n'
                    '[colours]\nred = 1\n')
    s = settings.load(conf)
    assert (s.theme, s.keys, s.stats, s.reconcile) == ("", (("app.refresh", "f5"),), 2.0, 300.0)
    said = "\n".join(s.problems)
    for words in ('theme must be the name of a theme in quotes', "not 7",
                  '[keys] app.help must be a key or keys in quotes', "[keys] app.back",
                  "[intervals] reconcile must be a number of seconds between 0 and 86400, "
                  "not -1; using the default, 300.", "[intervals] has no setting 'recon'",
                  "unknown section [colours] (skipped)"):
        assert words in said
    assert len(s.problems) == 6


def test_a_file_that_is_not_toml_means_every_default(tmp_path):
    conf = tmp_path / "settings.toml"
    conf.write_text("[intervals\n")
    s = settings.load(conf)
    assert s == settings.Settings(problems=s.problems) and len(s.problems) == 1
    assert s.problems[0].startswith("not valid TOML (") and "every setting is its default" \
        in s.problems[0]
    assert settings.load(tmp_path / "none.toml") == settings.Settings()   # no file: defaults


def test_the_file_is_in_the_users_config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MVMTUI_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings.default_path() == tmp_path / "mvmtui" / "settings.toml"
    monkeypatch.setenv("MVMTUI_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert settings.default_path() == tmp_path / "elsewhere.toml"


def test_the_cli_says_what_is_wrong_on_stderr_and_goes_on(tmp_path, monkeypatch, capsys):
    from mvmtui.cli import main
    conf = tmp_path / "settings.toml"
    conf.write_text("[intervals]\nreconcile = -1\n")
    monkeypatch.setenv("MVMTUI_CONFIG", str(conf))
    inv = tmp_path / "i.db"
    assert main(["--inventory", str(inv), "cluster", "add", "c", "h=10.0.0.1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"mvmtui: {conf}: [intervals] reconcile must be a number") \
        and "Traceback" not in err


def test_the_console_gets_the_files_preferences(tmp_path, monkeypatch):
    import mvmtui.app
    from mvmtui import cli
    conf = tmp_path / "settings.toml"
    conf.write_text('theme = "nord"\n[keys]\n"app.help" = "f1"\n[timeouts]\nreboot = 0\n')
    monkeypatch.setenv("MVMTUI_CONFIG", str(conf))
    monkeypatch.setattr(cli, "_has_terminal", lambda: True)
    seen = []
    monkeypatch.setattr(mvmtui.app, "run_console",
                        lambda eng, start_cluster=None, **kw: seen.append(kw["preferences"]))
    assert cli.main(["--inventory", str(tmp_path / "i.db"), "cluster", "add", "c",
                     "h=10.0.0.1"]) == 0
    assert cli.main(["--inventory", str(tmp_path / "i.db"), "console", "--offline"]) == 0
    (prefs,) = seen
    assert (prefs.theme, prefs.keys, prefs.path) == ("nord", (("app.help", "f1"),), str(conf))
    assert "[timeouts] reboot must be a number" in prefs.problems[0]


# ---- the console applies them ---------------------------------------------------------
def test_every_binding_has_an_id_and_the_readme_lists_them():
    """Every key can be remapped, and an operator can find its id."""
    from textual.binding import Binding
    from textual.dom import DOMNode
    ids = binding_ids()
    todo, missing = [DOMNode], []
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("mvmtui."):
            missing += [f"{cls.__name__}: {b.key}" for b in cls.__dict__.get("BINDINGS", ())
                        if isinstance(b, Binding) and not b.id]
    assert missing == []
    readme = (ROOT / "README.md").read_text().split("## Settings")[1].split("\n## ")[0]
    listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", readme))
    assert {i for i in ids if not i.endswith(".more")} <= listed


def test_theme_and_keys_are_applied_and_bad_ones_said_at_start(mixed_engine):
    app = console(mixed_engine, theme="nordd",
                  keys=(("app.help", "f1"), ("cluster.settings", "F2"), ("vm.start", "ctrl+t"),
                        ("app.hlep", "f3"), ("app.back", "ctrl+nonsense")))

    async def check(pilot):
        assert app.theme == "textual-dark"
        (said,) = [n for n in app._notifications if n.title == f"Settings: {PATH}"]
        assert "theme 'nordd' is not a theme here (did you mean 'nord'?)" in said.message
        assert "[keys] app.hlep: no key has this id (did you mean app.help?)" in said.message
        assert "'ctrl+nonsense' is not a key name" in said.message
        assert app.keys_remapped == {"app.help": "f1", "cluster.settings": "f2",
                                     "vm.start": "ctrl+t"}
        await pilot.press("question_mark")          # its usual key no longer opens help
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert ("f1", "Help") in app.screen.groups["Everywhere"]
        await pilot.press("escape", "q")            # app.back keeps its usual key
        assert not isinstance(app.screen, ClusterScreen)
        app.open_cluster("prod")
        await pilot.pause()
        await pilot.press("f2")
        assert isinstance(app.screen, SettingsScreen)

    run_app(app, check)


def test_a_theme_from_the_file_is_used(mixed_engine):
    app = console(mixed_engine, theme="nord")

    async def check(pilot):
        assert app.theme == "nord" and not app.settings_problems

    run_app(app, check)


def test_a_key_that_another_binding_has_is_said(mixed_engine):
    app = console(mixed_engine, keys=(("vm.start", "d"), ("app.refresh", "o"),
                                      ("cluster.settings", "f2")))

    async def check(pilot):
        assert app.settings_problems == [
            "[keys] app.refresh: o is also “Sort” (table.sort); where both apply, only "
            "one of them runs.",
            "[keys] vm.start: d is also “Shut down” (vm.shutdown); where both apply, "
            "only one of them runs."]

    run_app(app, check)


def test_a_key_taken_from_textuals_own_bindings_is_said_once(mixed_engine):
    app = console(mixed_engine, keys=(("cluster.settings", "tab"),))

    async def check(pilot):
        await pilot.press("3", "2")
        clashes = [m for m in messages(app) if "no longer runs" in m]
        assert clashes == ["tab no longer runs “Focus Next”: [keys] gave the key to "
                           "another binding."]

    run_app(app, check)


# ---- the settings screen --------------------------------------------------------------
def policy_table(app):
    return app.screen.query_one("#policy", Listing).table


def test_a_policy_value_is_changed_through_the_engine(mixed_engine):
    app = console(mixed_engine)

    async def check(pilot):
        await pilot.press("S")
        assert isinstance(app.screen, SettingsScreen)
        assert policy_table(app).cursor_key == "vcpu-ratio"
        await pilot.press("enter")
        dialog = app.screen
        assert isinstance(dialog, PolicyValueScreen) and dialog.value == "4"
        await pilot.press("ctrl+u", *"2.5", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert mixed_engine.policy("prod").vcpu_ratio == 2.5
        assert "Cluster prod: vcpu-ratio is now 2.5 (was 4)." in messages(app)
        row = next(r for r in policy_table(app)._view if r.key == "vcpu-ratio")
        assert row.cells[1:3] == ("2.5", "4")
        await pilot.press("G", "e", *"ceph, nfs", "enter")     # e too; a list
        await pilot.pause()
        assert mixed_engine.policy("prod").shared_datastores == ("ceph", "nfs")

    run_app(app, check)


def test_a_bad_value_is_shown_in_the_dialog_and_nothing_changes(mixed_engine):
    app = console(mixed_engine)

    async def check(pilot):
        await pilot.press("S", "j", "enter", "ctrl+u", *"9", "enter")   # memory-ratio 0.1–4
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PolicyValueScreen) and dialog.key == "memory-ratio"
        error = dialog.query_one("#policy-error")
        assert error.display
        assert str(error.render()) == ("memory-ratio=9: out of range; memory-ratio is "
                                       "memory overcommit, 0.1–4 (1 = none). Nothing was "
                                       "changed.")
        assert mixed_engine.policy("prod").memory_ratio == 1.0
        await pilot.press("escape")
        assert isinstance(app.screen, SettingsScreen)
        assert mixed_engine.policy("prod").memory_ratio == 1.0

    run_app(app, check)


def test_read_only_shows_the_policy_and_refuses_to_change_it(readonly_engine):
    app = console(readonly_engine)

    async def check(pilot):
        await pilot.press("S")
        assert isinstance(app.screen, SettingsScreen)
        assert policy_table(app).row_count == len(KEYS)     # every setting is shown
        note = str(app.screen.query_one("#policy-note").render())
        assert note.startswith("Read-only mode: changing a cluster's policy is not allowed.")
        assert "settings.edit" not in {b.binding.id for b in app.screen.active_bindings.values()
                                       if b.enabled}
        await pilot.press("enter")
        assert isinstance(app.screen, SettingsScreen)
        assert messages(app)[-1].startswith("Read-only mode: changing a cluster's policy")

    run_app(app, check)


def test_the_palette_opens_any_clusters_settings(offline_engine):
    app = make_app(offline_engine)

    async def check(pilot):
        await pilot.press("ctrl+p", *"Settings of cluster lab")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen) and app.screen.cluster == "lab"

    run_app(app, check)


def test_the_preferences_in_effect_and_their_file_are_shown(mixed_engine):
    app = console(mixed_engine, keys=(("app.help", "f1"),),
                  problems=("[intervals] stats must be a number of seconds …",),
                  others=settings.Settings(stats=2).describe())

    async def check(pilot):
        await pilot.press("S")
        import io

        from rich.console import Console
        out = Console(width=120, record=True, file=io.StringIO())
        out.print(app.screen.query_one("#preferences").content)
        shown = out.export_text()
        assert f"Read from {PATH} when mvmtui started. Shown only: edit that file" in shown
        assert re.search(r"\[keys\] app\.help +f1 +\? +Help", shown)
        assert re.search(r"\[intervals\] stats +2 s +5 s +bulk pass", shown)
        assert "• [intervals] stats must be a number of seconds …" in shown

    run_app(app, check)


def test_offline_the_policy_can_still_be_changed(offline_engine):
    """The policy lives in the inventory, like `mvmtui cluster set` (an offline engine
    too): no host is asked, so offline mode does not refuse it."""
    app = console(offline_engine)

    async def check(pilot):
        await pilot.press("S", "enter", "ctrl+u", "8", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert offline_engine.policy("prod").vcpu_ratio == 8.0

    run_app(app, check)
