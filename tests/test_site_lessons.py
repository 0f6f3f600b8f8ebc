"""The regression on a context's lessons (spamcli/site_lessons.py): fitted once both classes hold
enough lessons, deterministic, undone exactly by forgetting, and replaced by an export's fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import outputs_by_thread_count, run_cli
from test_site_calibration import PROBES, _export, _ham, _scores, _spam, _teach_export

from spamcli import SpamFilter, site, site_lessons
from spamcli.learning import ensure_site_model, learn_messages
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
    monkeypatch.setattr(site_lessons, "MAX_LESSONS", 10)  # the first 5 lessons of each class
    _teach(site_model, 8, 8)
    con = site.connect(site_model)
    try:
        keys = {
            label: sorted(k for (k,) in con.execute("SELECT key FROM messages WHERE label = ?", (label,)))
            for label in ("spam", "ham")
        }
        assert not site_lessons.refit(con, "content")  # nothing changed, nothing fitted
        fit = site.fit_of(con, "content").regression
        entered, fits, real_fit = 0, [], site_lessons.fit
        monkeypatch.setattr(site_lessons, "fit", lambda *args: fits.append(1) or real_fit(*args))
        for i in range(10):  # new lessons, spam and ham in turn
            text, label = (_spam(100 + i), "spam") if i % 2 else (_ham(100 + i), "ham")
            key = f"content:{message_hash(text)}"
            in_sample = key < keys[label][4]  # before the last of its class's 5 in the sample
            learn_messages(site_model, [text], label)
            stored = site.fit_of(con, "content").regression
            assert stored is not None and fit is not None
            assert stored.same_as(fit) != in_sample, text
            fit, keys[label], entered = stored, sorted([*keys[label], key]), entered + in_sample
        assert 0 < entered < 10 and len(fits) == entered  # both cases seen; a fit for each lesson that entered
    finally:
        con.close()


def test_a_lopsided_site_keeps_its_few_genuine_lessons_in_the_sample(site_model, monkeypatch):
    monkeypatch.setattr(site_lessons, "MAX_LESSONS", 10)
    _teach(site_model, 40, 3)  # the first 10 keys of all 43 would hold about one ham
    assert _regression(site_model) is not None
    con = site.connect(site_model)
    try:
        columns, labels = site_lessons._sample(con, "content")
        assert (int(labels.sum()), int(len(labels) - labels.sum())) == (5, 3)
    finally:
        con.close()


def test_moving_a_lesson_refits_and_moving_it_back_restores_the_fit(site_model):
    _teach(site_model, 4, 4)
    fit = _regression(site_model)
    learn_messages(site_model, [_spam(0)], "ham")
    assert not _regression(site_model).same_as(fit)
    learn_messages(site_model, [_spam(0)], "spam")
    assert _regression(site_model).same_as(fit)


def test_a_failed_fit_leaves_no_transaction_open_and_a_damaged_regression_is_replaced(site_model, monkeypatch):
    _teach(site_model, 4, 4)
    fit = _regression(site_model)
    con = site.connect(site_model)
    try:
        con.execute("UPDATE regression SET gain = 99")  # damaged: classify would refuse the model
        monkeypatch.setattr(site_lessons, "fit", lambda *args: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            site_lessons.refit(con, "content")
        assert not con.in_transaction
        monkeypatch.undo()
        assert site_lessons.refit(con, "content")  # same sample, but the stored fit is not sound
        assert site.fit_of(con, "content").regression.same_as(fit)
    finally:
        con.close()


def test_a_fit_outside_the_lock_is_stored_only_if_its_sample_is_still_the_sample(site_model, monkeypatch):
    """Another writer teaches while the fit runs: the fit of the old sample is not stored over it."""
    _teach(site_model, 4, 4)
    real_fit, calls = site_lessons.fit, []

    def fit_while_another_teaches(columns, labels):
        calls.append(len(labels))
        if len(calls) == 1:  # the other writer, in the middle of the first fit
            other = site.connect(site_model)
            site.apply(other, f"content:{message_hash(_ham(60))}", "content", "ham", np.array([1, 2, 3]))
            other.close()
        return real_fit(columns, labels)

    learn_messages(site_model, [_spam(60)], "spam")  # sample 5 + 4, then 5 + 5 after the other writer
    monkeypatch.setattr(site_lessons, "fit", fit_while_another_teaches)
    con = site.connect(site_model)
    try:
        con.execute("DELETE FROM lesson_fits")
        assert site_lessons.refit(con, "content")
        assert calls == [9, 10]  # refitted on the sample as it became
        stored = site.fit_of(con, "content").regression
        con.execute("DELETE FROM lesson_fits")
        monkeypatch.setattr(site_lessons, "fit", real_fit)
        assert site_lessons.refit(con, "content")
        assert site.fit_of(con, "content").regression.same_as(stored)
    finally:
        con.close()


def test_a_regression_deleted_by_an_older_spamcli_is_fitted_again(site_model):
    _teach(site_model, 4, 4)
    fit = _regression(site_model)
    con = site.connect(site_model)
    try:
        con.execute("DELETE FROM regression")  # what an older spamcli's export refit does
        assert site_lessons.refit(con, "content")  # the digest alone would say "unchanged"
        assert site.fit_of(con, "content").regression.same_as(fit)
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
    export_fit = _regression(site_model)  # the export's, fitted on its decisions, not overwritten
    assert not export_fit.on_lessons and export_fit.gain == _teach_export(site_model, 0, 25)["regression_gain"]
    _teach(site_model, 3, 3, start=250)  # corrections after the export leave its regression
    assert not _regression(site_model).on_lessons
    learn_messages(site_model, _export(0, 25)[0], "forget")
    assert _regression(site_model).on_lessons and not _regression(site_model).same_as(lessons_fit)
    learn_messages(site_model, [_spam(i) for i in range(250, 253)] + [_ham(i) for i in range(250, 253)], "forget")
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


def test_a_damaged_lesson_or_table_does_not_stop_learning(site_model):
    _teach(site_model, 4, 4)
    con = site.connect(site_model)
    con.execute("DELETE FROM message_columns WHERE key = (SELECT MIN(key) FROM messages)")
    con.close()
    before = _regression(site_model)
    taught = run_cli("learn", "--model", site_model, "--ham", "-", stdin=_ham(40) + "\n")
    assert taught.code == 0, taught.stderr  # fitted without the lesson whose columns are gone
    assert "not refitted" not in taught.stderr and not _regression(site_model).same_as(before)
    con = site.connect(site_model)
    stored = con.execute("SELECT digest FROM lesson_fits").fetchone()[0]
    assert stored == site_lessons._sample_digest(con, "content")
    con.close()
    con = site.connect(site_model)
    con.execute("DROP TABLE lesson_fits")
    con.execute("CREATE TABLE lesson_fits (context TEXT PRIMARY KEY)")  # not one spamcli writes
    con.close()
    again = run_cli("learn", "--model", site_model, "--ham", "-", stdin=_ham(41) + "\n")
    assert again.code == 0
    assert "the lesson regression was not refitted: site database damaged" in again.stderr
    assert "Traceback" not in again.stderr
    con = site.connect(site_model)
    assert con.execute("SELECT n FROM totals WHERE label = 'ham'").fetchone()[0] == 6  # both taught
    con.close()


def test_lessons_without_a_feature_fit_nothing(site_model):
    result = learn_messages(site_model, ["...", " - ", "--"], "spam")
    report = learn_messages(site_model, ["**", ".", ","], "ham").lesson_regression
    weighed_alike = {"spam": 1.0, "ham": 1.0}
    assert report == {"gain": None, "spam": 3, "ham": 3, "class_weights": weighed_alike}  # nothing to fit or wrong
    assert result.learned == 3 and _regression(site_model) is None
    shown = run_cli("learn", "--model", site_model, "--ham", "-", stdin="~\n")
    assert "lesson regression: none (3 spam and 4 ham taught, but no word in them to fit on)" in shown.stderr


def test_a_learn_after_an_export_run_stopped_before_its_refit_refits_the_calibration(site_model):
    _teach_export(site_model, 0, 25)
    con = site.connect(site_model)
    con.execute("DELETE FROM calibration")  # as if the run stopped between its decisions and its refit
    con.execute("DELETE FROM regression")
    con.close()
    learn_messages(site_model, [_spam(80)], "spam")
    con = site.connect(site_model)
    try:
        assert con.execute("SELECT COUNT(*) FROM calibration").fetchone()[0] == 1
        assert not site.fit_of(con, "content").regression.on_lessons
    finally:
        con.close()


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
    expected = {"gain": site_lessons.gain(3, 3), "spam": 3, "ham": 3, "class_weights": {"spam": 1.0, "ham": 1.0}}
    assert json.loads(result.stdout)["lesson_regression"] == expected
    _teach_export(site_model, 0, 25)
    forgotten = learn("forget", [_spam(0)], "--json")
    assert json.loads(forgotten.stdout)["lesson_regression"] is None  # an export calibrates the site


_REFIT = """
import hashlib, sys
from spamcli import site, site_lessons
con = site.connect(sys.argv[1])
con.execute("DELETE FROM lesson_fits")
assert site_lessons.refit(con, "content")
regression = site.regression_of(con, "content")
print(repr(regression.gain), hashlib.sha256(regression.weights).hexdigest(), len(regression.columns))
"""


@pytest.mark.slow
def test_the_lesson_fit_repeats_bit_for_bit_whatever_the_threads(site_model, datasets_dir):
    """A full sample of real lessons, fitted again in processes of 1 and 2 threads: the same bytes."""
    import hashlib

    from spamcli.datasets import load

    records = [r for r in load("spamassassin_email", datasets_dir) if r.label is not None and r.text.strip()]
    learn_messages(site_model, [r.text for r in records if r.label == 1][:260], "spam")
    learn_messages(site_model, [r.text for r in records if r.label == 0][:260], "ham")
    runs = outputs_by_thread_count(_REFIT, site_model)
    assert len(runs) == 1, runs
    assert runs.pop().split()[1] == hashlib.sha256(_regression(site_model).weights).hexdigest()  # as learn stored it
