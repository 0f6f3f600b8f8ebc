"""Hostile inputs that used to hang or exhaust memory before any check: users' regular expressions
(``--label-rule``'s ``~``, ``--trusted-domains``).

Every test that could hang or eat memory on a regression runs its victim in a subprocess with a
timeout (and an address-space limit where memory is at stake), so a regression fails, fast.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, SAMPLES, Result, assert_one_line_error, cli_env, run_cli

from spamcli.errors import UsageError
from spamcli.moderation import compile_rule
from spamcli.profiles import DomainMatcher

TIMEOUT = 20  # seconds: far above what a passing test takes (< 2 s), far below a hang
MEMORY_LIMIT = 1536 * 2**20  # address space of a victim process: classify needs well under 1 GB
CATASTROPHIC = "(a+)+$"
EVIL_FIELD = "a" * 40 + "!"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_bounded(*args: str | os.PathLike, stdin: str = "") -> Result:
    """``python -m spamcli ARGS`` with a timeout and an address-space limit (a regression fails)."""
    proc = subprocess.run(
        [sys.executable, "-m", "spamcli", *map(str, args)],
        input=stdin.encode("utf-8"),
        capture_output=True,
        env=cli_env(),
        cwd=REPO,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
    )
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def _run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter, bounded in time and memory; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        env=cli_env(),
        cwd=REPO,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    return proc.stdout.decode("utf-8").strip()


# ---- 1. users' regular expressions ------------------------------------------------------------
def test_catastrophic_label_rule_regex_runs_in_linear_time():
    out = _run_python(
        f"""
        import time
        from spamcli.moderation import compile_rule
        rule = compile_rule("reason ~ '{CATASTROPHIC}'")
        start = time.monotonic()
        fields = [{EVIL_FIELD!r}, "a" * 1_000_000 + "!", "aaa"]
        hits = [rule({{"reason": field}}) for field in fields]
        print(hits, time.monotonic() - start)
        """
    )
    hits, seconds = out.rsplit(" ", 1)
    assert hits == "[False, False, True]"
    assert float(seconds) < 1.0


def test_catastrophic_trusted_domain_regex_runs_in_linear_time(trained_model, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text(f"^{CATASTROPHIC}\n")
    profile = {"id": "p1", "about": "hello there", "email": f"someone@{EVIL_FIELD}"}
    result = _run_bounded(
        "classify", "--model", trained_model, "--context", "profile", "--trusted-domains", domains,
        stdin=json.dumps(profile) + "\n",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "reason" not in result.json_lines()[0]


@pytest.mark.parametrize(
    "pattern", [pytest.param(r"(a)\1", id="backreference"), pytest.param("(?=spam)spam", id="lookahead")]
)
def test_label_rule_regex_outside_re2_is_a_usage_error(tmp_path, pattern):
    rule = f"reason ~ '{pattern}'"
    with pytest.raises(UsageError, match="regular expression"):
        compile_rule(rule)
    export = SAMPLES / "moderation_export.csv"
    result = run_cli("train", export, "--text-col", "body", "--label-rule", rule, "--out", tmp_path / "m", timeout=60)
    assert_one_line_error(result, 2)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "pattern", [pytest.param(r"^(\w+)\.\1$", id="backreference"), pytest.param(r"(?<!evil)\.example$", id="lookbehind")]
)
def test_trusted_domain_regex_outside_re2_is_a_usage_error(trained_model, tmp_path, pattern):
    with pytest.raises(UsageError, match="domain pattern"):
        DomainMatcher([pattern])
    domains = tmp_path / "domains.txt"
    domains.write_text(pattern + "\n")
    result = run_cli(
        "classify", "--model", trained_model, "--context", "profile", "--trusted-domains", domains,
        stdin='{"id": "p1", "about": "hi", "email": "a@b.example"}\n', timeout=60,
    )  # fmt: skip
    assert_one_line_error(result, 2)


def test_trusted_domain_regex_matches_the_whole_domain():
    matcher = DomainMatcher([r"partner\d+\.example", r"(mail|www)\.school\.org"])
    assert matcher.match("partner12.example") == r"partner\d+\.example"
    assert matcher.match("mail.school.org") == r"(mail|www)\.school\.org"
    for domain in ("evilpartner12.example", "partner12.example.attacker.net", "xmail.school.org.evil"):
        assert matcher.match(domain) is None, domain
    assert DomainMatcher([r"^fast-loans\.example$"]).match("fast-loans.example")  # anchors still fine
    assert DomainMatcher([r"SCHOOL\.org"]).match("school.org")  # case-insensitive


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("(" * 5000 + "a" + ")" * 5000, id="parentheses"),
        pytest.param("not " * 5000 + "a", id="not"),
        pytest.param("a == " + "(" * 5000 + "b" + ")" * 5000, id="comparison-operand"),
    ],
)
def test_label_rule_nested_too_deeply_is_a_usage_error(tmp_path, rule):
    with pytest.raises(UsageError, match="nested too deeply"):
        compile_rule(rule)
    export = SAMPLES / "moderation_export.csv"
    result = run_cli("train", export, "--text-col", "body", "--label-rule", rule, "--out", tmp_path / "m", timeout=60)
    assert_one_line_error(result, 2)


def test_label_rule_nested_moderately_still_works():
    depth = 30
    rule = compile_rule("not " * depth + "(" * depth + "a" + ")" * depth)
    assert rule({"a": "1"}) is True and rule({"a": ""}) is False
