"""The regression on a context's lessons (spamcli/site_lessons.py): fitted once both classes hold
enough lessons, deterministic, undone exactly by forgetting, and replaced by an export's fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli
from test_site_calibration import PROBES, _export, _ham, _scores, _spam, _teach_export

from spamcli import SpamFilter, site, site_lessons
from spamcli.errors import ModelError
from spamcli.learning import Teacher, ensure_site_model, learn_messages
from spamcli.text import message_hash


@pytest.fixture
def site_model(tmp_path):
    path = tmp_path / "site"
    assert ensure_site_model(path)
    return path


def _regression(path) -> site.SiteRegression | None:
    con = site.connect(path)
    try:
        return site.fit_of(con, "content").regression
    finally:
        con.close()


def _teach(path, n_spam: int, n_ham: int, start: int = 0) -> None:
    learn_messages(path, [_spam(i) for i in range(start, start + n_spam)], "spam")
    learn_messages(path, [_ham(i) for i in range(start, start + n_ham)], "ham")


def test_a_regression_needs_enough_lessons_of_both_classes_and_its_gain_grows_with_them(site_model):
    _teach(site_model, 10, site_lessons.MIN_EACH - 1)
    assert _regression(site_model) is None
    learn_messages(site_model, [_ham(site_lessons.MIN_EACH - 1)], "ham")
    first = _regression(site_model)
    assert first is not None and first.gain == site_lessons.gain(10, 3) == pytest.approx(4 * 3 / 8)
    _teach(site_model, 0, 7, start=3)
    assert _regression(site_model).gain == pytest.approx(4 * 10 / 15)


def test_the_regression_separates_the_taught_words_and_explain_shows_them(site_model):
    _teach(site_model, 6, 6)
    layer = SpamFilter.load(site_model).bundle.context("content").site
    assert layer.regression is not None and layer.is_calibrated and (layer.gain, layer.offset) == (1.0, 0.0)
    vec = SpamFilter.load(site_model).bundle.context("content").vectoriser
    casino = np.unique(np.fromiter(vec.row("casino deposit withdraw"), dtype=np.int64))
    reading = np.unique(np.fromiter(vec.row("reading group library"), dtype=np.int64))
    assert layer.regression.shift(np.array([0, len(casino)]), casino)[0] > 0
    assert layer.regression.shift(np.array([0, len(reading)]), reading)[0] < 0


def test_forgetting_a_lesson_restores_every_score_bit_for_bit(site_model):
    _teach(site_model, 5, 4)
    before, fit_before = _scores(site_model), _regression(site_model)
    learn_messages(site_model, [_ham(50), "a new genuine message about the reading group"], "ham")
    assert not np.array_equal(_scores(site_model), before)
    learn_messages(site_model, [_ham(50), "a new genuine message about the reading group"], "forget")
    assert _scores(site_model).tobytes() == before.tobytes()
    assert _regression(site_model).same_as(fit_before)
    _teach(site_model, 0, 0)
    learn_messages(site_model, [_ham(i) for i in range(4)], "forget")  # below MIN_EACH: none
    assert _regression(site_model) is None


def test_above_the_cap_only_a_lesson_in_the_sample_refits(site_model, monkeypatch):
    monkeypatch.setattr(site_lessons, "MAX_LESSONS", 10)
    _teach(site_model, 8, 8)
    con = site.connect(site_model)
    try:
        keys = sorted(k for (k,) in con.execute("SELECT key FROM messages"))
        assert not site_lessons.refit(con, "content")  # nothing changed, nothing fitted
        fit = site.fit_of(con, "content").regression
        entered, fits, real_fit = 0, [], site_lessons.fit
        monkeypatch.setattr(site_lessons, "fit", lambda *args: fits.append(1) or real_fit(*args))
        for i in range(8):  # new lessons, spam and ham in turn
            text, label = (_spam(100 + i), "spam") if i % 2 else (_ham(100 + i), "ham")
            key = f"content:{message_hash(text)}"
            in_sample = key < keys[9]  # before the last of the sample's 10 lessons
            learn_messages(site_model, [text], label)
            stored = site.fit_of(con, "content").regression
            assert stored is not None and fit is not None
            assert stored.same_as(fit) != in_sample, text
            fit, keys, entered = stored, sorted([*keys, key]), entered + in_sample
        assert 0 < entered < 8 and len(fits) == entered  # both cases seen; a fit for each lesson that entered
    finally:
        con.close()


def test_an_export_takes_over_and_forgetting_it_brings_the_lessons_regression_back(site_model):
    _teach(site_model, 5, 5, start=200)
    lessons_fit, scores = _regression(site_model), _scores(site_model)
    _teach_export(site_model, 0, 25)
    con = site.connect(site_model)
    try:
        assert con.execute("SELECT COUNT(*) FROM calibration").fetchone()[0] == 1
    finally:
        con.close()
    assert not _regression(site_model).same_as(lessons_fit)  # the export's, fitted on its decisions
    learn_messages(site_model, _export(0, 25)[0], "forget")
    assert _regression(site_model).same_as(lessons_fit)
    assert _scores(site_model).tobytes() == scores.tobytes()


def test_info_shows_it_and_a_portable_export_scores_as_spamcli(site_model, tmp_path):
    from test_export import TEXTS, _portable_score, _route, load_export

    _teach(site_model, 4, 4)
    info = json.loads(run_cli("info", "--model", site_model, "--json").stdout)["contexts"]["content"]
    assert "site_calibration" not in info  # no export calibrates it
    assert info["lesson_regression"]["gain"] == site_lessons.gain(4, 4)
    assert f"lesson regression gain {site_lessons.gain(4, 4):.3f}" in " ".join(
        run_cli("info", "--model", site_model).stdout.split()
    )
    out = tmp_path / "portable.json"
    assert run_cli("export", "--model", site_model, "--out", out).code == 0
    doc = load_export(out)
    assert doc["format_version"] == 3  # a version-2 reader would ignore the regression
    context = doc["contexts"]["content"]
    assert context["site"]["regression"]["fitted_on"] == "lessons"
    texts, langs = [t for t, _ in TEXTS] + PROBES, [lang for _, lang in TEXTS] + ["en"] * len(PROBES)
    for text, lang, verdict in zip(texts, langs, SpamFilter.load(site_model).score(texts, langs)):
        assert abs(_portable_score(context, text, _route(context, lang)) - verdict.score) < 1e-9, text


def test_a_lesson_without_its_columns_is_a_damaged_site_database(site_model):
    _teach(site_model, 3, 3)
    con = site.connect(site_model)
    con.execute("DELETE FROM message_columns WHERE key = (SELECT MIN(key) FROM messages)")
    con.execute("DELETE FROM lesson_samples")
    con.close()
    teacher = Teacher(site_model)
    try:
        with pytest.raises(ModelError, match="damaged"):
            teacher.teach([_ham(40)], "ham")
    finally:
        teacher.close()


def test_the_probes_are_scored_with_the_regression(site_model):
    _teach(site_model, 5, 5)
    spam_probe, ham_probe = PROBES[0], PROBES[1]
    with_fit = _scores(site_model)
    con = site.connect(site_model)
    con.execute("DELETE FROM regression")
    con.close()
    without = _scores(site_model)
    assert with_fit[0] > without[0] and with_fit[1] < without[1], (spam_probe, ham_probe)


def test_learn_says_when_the_lesson_regression_starts_and_its_gain(site_model):
    def learn(action: str, texts: list[str], *options: str):
        stdin = "".join(t + "\n" for t in texts)
        return run_cli("learn", "--model", site_model, f"--{action}", *options, "-", stdin=stdin)

    taught = learn("spam", [_spam(i) for i in range(3)])
    assert taught.code == 0
    assert "lesson regression: not yet (3 spam and 0 ham taught; it needs 3 of each)" in taught.stderr
    result = learn("ham", [_ham(i) for i in range(3)], "--json")
    assert json.loads(result.stdout)["lesson_regression"] == {"gain": site_lessons.gain(3, 3), "spam": 3, "ham": 3}
    _teach_export(site_model, 0, 25)
    forgotten = learn("forget", [_spam(0)], "--json")
    assert json.loads(forgotten.stdout)["lesson_regression"] is None  # an export calibrates the site
