"""The command itself: help with examples, version, usage errors, the shipped default model."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import DEFAULT_MODEL, REPO, cli_env, run_cli, run_cli_process

from spamcli import __version__


@pytest.mark.parametrize("command", [[], ["classify"], ["train"], ["evaluate"], ["export"]])
def test_help_of_every_command_shows_an_example(command):
    result = run_cli(*command, "--help")
    assert result.code == 0, result.stderr
    assert "Example" in result.stdout


def test_version_option_prints_the_version():
    result = run_cli("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"spamcli {__version__}"


def test_spamcli_console_script_runs_like_python_m():
    exe = shutil.which("spamcli")
    if exe is None:
        pytest.skip("spamcli console script not on PATH")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"spamcli {__version__}"


def test_no_arguments_shows_help_and_exits_2():
    result = run_cli()
    assert result.code == 2
    assert "classify" in result.stderr + result.stdout


def test_unknown_option_is_a_usage_error_on_one_line():
    result = run_cli("classify", "--no-such-option")
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("spamcli: error:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not (DEFAULT_MODEL / "manifest.json").is_file(), reason="models/default not built yet")
def test_default_model_is_used_when_no_model_is_given():
    result = run_cli_process("classify", stdin="WIN a FREE iPhone, claim at http://x.example\n")
    assert result.code == 0, result.stderr
    (item,) = result.json_lines()
    assert item["id"] == 1
    assert item["label"] == "spam"
    assert item["score"] >= 0.5


def test_spamcli_model_env_selects_the_model(trained_model):
    result = run_cli("classify", stdin="hello there\n", env=cli_env(SPAMCLI_MODEL=str(trained_model)))
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == 1


@pytest.mark.parametrize("args", [["--jobs", "1"], []], ids=["jobs-1", "default"])
def test_a_one_process_message_run_imports_neither_the_profile_scorer_nor_the_worker_pool(args):
    """Start-up: `echo hi | spamcli classify --jobs 1` needs neither (each costs milliseconds), nor
    does the default `echo hi | spamcli classify`: workers are not started for one line."""
    import subprocess
    import sys

    from helpers import cli_env

    code = (
        "import sys\n"
        f"sys.argv = ['spamcli', 'classify', *{args!r}]\n"
        "from spamcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('spamcli', 'concurrent')))), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=b"hi\n", capture_output=True, env=cli_env(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    modules = set(result.stderr.decode().split())
    assert "spamcli.router" in modules  # it did score
    assert not modules & {"spamcli.profiles", "spamcli.moderation", "spamcli.parallel", "concurrent.futures"}
