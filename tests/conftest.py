"""Shared fixtures: one small model trained through the real CLI, copies of it, the shared datasets.

The model is trained once per session from ``datasets/samples/messages.csv`` with ``spamcli train``
(a real process: one of the end-to-end runs) and reused by every test that only reads it. Tests
that change a model copy it first (``model_copy``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import SAMPLES, Result, run_cli, run_cli_process, shared_datasets


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> tuple[Path, Result]:
    """``spamcli train`` on the English/Spanish/German sample CSV: the model directory and the run."""
    out = tmp_path_factory.mktemp("model") / "model"
    result = run_cli_process("train", SAMPLES / "messages.csv", "--out", out, "--min-per-class", "5")
    assert result.code == 0, result.stderr
    return out, result


@pytest.fixture(scope="session")
def trained_model(trained_run) -> Path:
    return trained_run[0]


@pytest.fixture(scope="session")
def profile_model(trained_model: Path, tmp_path_factory) -> Path:
    """The session's content model plus a small profile context (sample spam vs the CC0 bios)."""
    out = Path(shutil.copytree(trained_model, tmp_path_factory.mktemp("profile") / "model"))
    result = run_cli(
        "train",
        SAMPLES / "decidim.txt",
        "--spam",
        SAMPLES / "spam.txt",
        "--ham",
        SAMPLES / "genuine_bios.txt",
        "--context",
        "profile",
        "--out",
        out,
        "--min-per-class",
        "5",
    )
    assert result.code == 0, result.stderr
    return out


@pytest.fixture
def model_copy(trained_model: Path, tmp_path: Path) -> Path:
    """A private copy of the trained model that a test may damage."""
    return Path(shutil.copytree(trained_model, tmp_path / "model"))


@pytest.fixture(scope="session")
def spam_filter(trained_model: Path):
    from spamcli import SpamFilter

    return SpamFilter.load(trained_model)


@pytest.fixture
def datasets_dir() -> Path:
    path = shared_datasets()
    if path is None:
        pytest.skip("shared datasets not found (set SPAMCLI_DATASETS)")
    return path
