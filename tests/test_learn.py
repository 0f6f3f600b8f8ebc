"""``spamcli learn`` (sa-learn semantics) and ``spamcli info`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import REPO, assert_one_line_error, cli_env, run_cli

from spamcli import SpamFilter
from spamcli.bundle import load_bundle

MESSAGE = "Join our crypto trading group today, guaranteed profit every week"
PROBES = [MESSAGE, "crypto trading group", "Thanks for the notes from the meeting, see you on Monday."]


def _scores(model: Path) -> np.ndarray:
    return np.array([v.score for v in SpamFilter.load(model).score(PROBES, ["en"] * len(PROBES))])


def _counts(model: Path) -> dict:
    ctx = load_bundle(model).context("content")
    return {name: (m.counts.sum(axis=1).tolist(), m.doc_counts.tolist()) for name, m in ctx.models.items()}


def _learn(model: Path, action: str, *texts: str):
    return run_cli("learn", "--model", model, f"--{action}", "-", "--json", stdin="".join(t + "\n" for t in texts))


def test_learned_spam_counts_add_to_the_fallback_documents(model_copy):
    before = load_bundle(model_copy).context("content").models["multi"].doc_counts[1]
    assert _learn(model_copy, "spam", MESSAGE, "Another offer: cheap watches").code == 0
    assert load_bundle(model_copy).context("content").models["multi"].doc_counts[1] == before + 2


def test_learn_spam_raises_the_score_and_learning_twice_does_nothing(model_copy):
    before = _scores(model_copy)
    first = _learn(model_copy, "spam", MESSAGE)
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout)["learned"] == 1
    after = _scores(model_copy)
    assert after[0] > before[0]
    manifest = (model_copy / "manifest.json").read_text()
    again = _learn(model_copy, "spam", "  join our CRYPTO trading group today,   guaranteed profit every week ")
    assert json.loads(again.stdout)["unchanged"] == 1  # the same normalised text: already known
    assert (model_copy / "manifest.json").read_text() == manifest
    assert np.array_equal(_scores(model_copy), after)


def test_relearn_as_ham_moves_the_message_and_forget_restores_the_scores_exactly(model_copy):
    before_scores, before_counts = _scores(model_copy), _counts(model_copy)
    assert _learn(model_copy, "spam", MESSAGE).code == 0
    moved = _learn(model_copy, "ham", MESSAGE)
    assert json.loads(moved.stdout)["moved"] == 1
    assert _scores(model_copy)[0] < before_scores[0]
    learned = load_bundle(model_copy).learned
    assert [entry["label"] for entry in learned.values()] == ["ham"]
    forgotten = _learn(model_copy, "forget", MESSAGE)
    assert json.loads(forgotten.stdout)["forgotten"] == 1
    assert _counts(model_copy) == before_counts
    assert np.allclose(_scores(model_copy), before_scores, rtol=0, atol=1e-12)
    assert load_bundle(model_copy).learned == {}
    assert not list(model_copy.glob("learned-*.json"))


def test_forget_of_a_message_never_learned_changes_nothing(model_copy):
    result = _learn(model_copy, "forget", "never seen before")
    assert result.code == 0
    assert json.loads(result.stdout)["not_learned"] == 1


def test_learn_updates_the_routed_language_model_and_the_fallback(model_copy):
    assert _learn(model_copy, "spam", MESSAGE).code == 0
    (entry,) = load_bundle(model_copy).learned.values()
    assert entry["models"][-1] == "multi"
    assert set(entry["models"]) <= set(load_bundle(model_copy).context("content").models)


def test_two_concurrent_learn_processes_lose_no_update(model_copy):
    words = ("red", "blue", "green", "gold", "silver", "black")
    batches = [[f"cheap {w} watches offer from shop {k}" for w in words] for k in ("alpha", "beta")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spamcli", "learn", "--model", str(model_copy), "--spam", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            cwd=REPO,
        )
        for _ in batches
    ]
    for proc, texts in zip(procs, batches):
        proc.stdin.write("".join(t + "\n" for t in texts).encode())
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    bundle = load_bundle(model_copy)
    assert len(bundle.learned) == 12
    assert all(entry["label"] == "spam" for entry in bundle.learned.values())
    info = json.loads(run_cli("info", "--model", model_copy, "--json").stdout)
    assert info["learned_messages"] == 12
    assert info["contexts"]["content"]["learned"] == {"spam": 12, "ham": 0}


def test_learn_needs_a_model_and_exactly_one_action(model_copy):
    assert_one_line_error(run_cli("learn", "--spam", "-", stdin="x\n"), 2)
    assert_one_line_error(run_cli("learn", "--model", model_copy, "--spam", "--ham", "-", stdin="x\n"), 2)
    assert_one_line_error(run_cli("learn", "--model", model_copy, "--spam", "-", stdin=""), 3)


def test_info_shows_contexts_languages_examples_thresholds_and_versions(trained_model):
    data = json.loads(run_cli("info", "--model", trained_model, "--json").stdout)
    assert data["format_version"] == 1 and data["spamcli_version"] and data["created"]
    content = data["contexts"]["content"]
    assert "multi" in content["models"]
    assert content["models"]["multi"]["examples"] == {"spam": 32, "ham": 32}
    assert set(content["thresholds"]) == {"ham", "spam"}
    table = run_cli("info", "--model", trained_model)
    assert table.code == 0
    for word in ("context content", "multi", "format version 1", "learned messages 0"):
        assert word in table.stdout


def test_info_on_a_missing_model_exits_4(tmp_path):
    assert_one_line_error(run_cli("info", "--model", tmp_path / "nope"), 4)


def test_a_learned_message_gets_the_moderators_label_until_it_is_forgotten(model_copy):
    texts = [MESSAGE, "  join our CRYPTO trading group today,   guaranteed profit every week", "crypto trading group"]
    assert _learn(model_copy, "spam", MESSAGE).code == 0
    verdicts = SpamFilter.load(model_copy).score(texts, ["en"] * len(texts))
    assert [v.learned for v in verdicts[:2]] == ["spam", "spam"]  # the same normalised text
    assert all(v.label == "spam" for v in verdicts[:2])
    assert verdicts[2].learned is None
    out = run_cli("classify", "--model", model_copy, stdin=MESSAGE + "\n")
    assert json.loads(out.stdout)["learned"] == "spam"
    assert _learn(model_copy, "forget", MESSAGE).code == 0
    assert all(v.learned is None for v in SpamFilter.load(model_copy).score(texts, ["en"] * 3))
