"""The in-process runner (``helpers.run_cli``) gives what a real ``python -m spamcli`` gives, and
leaves nothing behind in the test process."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import pytest
from helpers import SAMPLES, cli_env, run_cli, run_cli_process

MESSAGES = "WIN a FREE iPhone now!!! claim at http://prize.example\nsee you at lunch\n\n\xff\n"
JSONL = json.dumps({"id": "a", "text": "free money"}) + "\n{broken\n"

# (arguments, stdin); "MODEL" stands for the session's trained model
INVOCATIONS = [
    pytest.param([], "", id="no-arguments"),
    pytest.param(["--version"], "", id="version"),
    pytest.param(["classify", "--help"], "", id="help"),
    pytest.param(["classify", "--no-such-option"], "", id="usage-error"),
    pytest.param(["classify", "--model", "MODEL"], MESSAGES, id="classify-stdin"),
    pytest.param(["classify", "--model", "MODEL", "--jobs", "2", "--explain"], JSONL, id="classify-jobs-2"),
    pytest.param(["classify", "--model", "MODEL", "-", "--only", "spam"], MESSAGES, id="classify-only"),
    pytest.param(["classify", "--model", "MODEL"], "", id="empty-input-exit-3"),
    pytest.param(["classify", "--model", "/nonexistent/model"], "hi\n", id="missing-model-exit-4"),
    pytest.param(["classify", "--model", "MODEL", str(SAMPLES / "decidim.txt")], "", id="classify-decidim-file"),
    pytest.param(["classify", "--model", "MODEL", "--format", "decidim"], "spam;free money\nham;hi\n", id="stdin-fmt"),
    pytest.param(["evaluate", str(SAMPLES / "messages.csv"), "--model", "MODEL"], "", id="evaluate-table"),
    pytest.param(["info", "--model", "MODEL"], "", id="info-table"),
    pytest.param(["train", "--spam", str(SAMPLES / "spam.txt")], "", id="train-one-class-exit-3"),
]


@pytest.mark.parametrize(("args", "stdin"), INVOCATIONS)
def test_in_process_run_gives_what_a_process_gives(trained_model, args, stdin):
    args = [str(trained_model) if a == "MODEL" else a for a in args]
    assert run_cli(*args, stdin=stdin) == run_cli_process(*args, stdin=stdin)


def test_in_process_run_puts_the_process_state_back(trained_model, model_copy, tmp_path):
    before = _process_state()
    out = tmp_path / "out.csv"
    result = run_cli(
        "classify", "--model", trained_model, "--jobs", "2", "-o", out, stdin="hi\n", env=cli_env(SPAMCLI_X="1")
    )
    assert result.code == 0, result.stderr
    learned = run_cli("learn", "--model", model_copy, "--spam", "-", stdin="cheap watches\n")
    assert learned.code == 0, learned.stderr
    assert _process_state() == before  # the CLI set OPENBLAS_NUM_THREADS and its signal handlers


def _process_state() -> tuple:
    umask = os.umask(0o022)
    os.umask(umask)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGALRM)}
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    return dict(os.environ), os.getcwd(), umask, handlers, sys.stdout, sys.stderr, threading.active_count(), fds


def test_an_in_process_run_that_calls_os_exit_fails_the_test_instead_of_ending_it(monkeypatch):
    from spamcli import cli

    monkeypatch.setattr(cli, "exit_code_of", lambda command: os._exit(7))
    with pytest.raises(AssertionError, match="os._exit"):
        run_cli("--version")
