"""The CLI shell: command surface, version, help, and how errors are rendered."""

import subprocess
import sys

from plmkit.cli import COMMANDS, app


def test_every_registered_command_is_listed_and_nothing_else():
    import typer.main

    registered = sorted(typer.main.get_command(app).commands)
    assert registered == sorted(COMMANDS)


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == "plmkit 0.1.0"


def test_help_of_every_command_exits_zero_and_shows_an_example(run_cli):
    for name in COMMANDS:
        code, out, err = run_cli(name, "--help")
        assert code == 0, (name, err)
        assert "plmkit " + name in out, f"`{name} --help` shows no example"


def test_unknown_command_is_a_usage_error(run_cli):
    code, _, err = run_cli("frobnicate")
    assert code == 2 and "frobnicate" in err


def test_python_dash_m_runs_the_same_cli():
    r = subprocess.run([sys.executable, "-m", "plmkit", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "plmkit 0.1.0"


def test_ctrl_c_in_any_command_exits_130_with_one_line(run_cli, monkeypatch):
    import plmkit.tokenization

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(plmkit.tokenization, "train_from_corpus", interrupted)
    code, _, err = run_cli("tokenize", "corpora/en", "--preset", "bert", "--vocab-size", "500", "--out", "/tmp/plmkit-never-written")
    assert code == 130, err
    assert err.strip().endswith("interrupted") and "Traceback" not in err
