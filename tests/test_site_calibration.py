"""The site calibration (spamcli/site_calibration.py): fitted on a moderation export's decisions only,
on leave-one-out layer sums, and exactly undone by forgetting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli

from spamcli import SpamFilter, site, site_calibration
from spamcli.bundle import load_bundle
from spamcli.errors import ModelError
from spamcli.learning import Teacher, ensure_site_model, learn_messages
from spamcli.text import message_hash

SHOPS = ["Lucky Dragon", "Golden Reel", "Mega Spin", "Royal Flush", "Star Slots", "Jade Palace", "Wild Card"]
PERKS = ["free spins", "cashback", "a welcome bonus", "VIP points", "a jackpot draw", "instant payouts"]
TOWNS = ["Leeds", "Porto", "Ghent", "Lyon", "Turin", "Bergen", "Kraków"]
TOPICS = ["the novel", "the poems", "the essays", "the short stories", "the letters", "the play"]
# Distinct texts: message_hash ignores numbers, so they must differ in words.


def _spam(i: int) -> str:
    shop, perk = SHOPS[i % 7], PERKS[(i // 7) % 6]
    return f"{shop} casino gives {perk} today, deposit now and withdraw tomorrow, batch {TOWNS[i // 42 % 7]}"


def _ham(i: int) -> str:
    town, topic = TOWNS[i % 7], TOPICS[(i // 7) % 6]
    return f"The {town} reading group discusses {topic} at the library, see {SHOPS[i // 42 % 7]} street"


def _export(start: int, n: int) -> tuple[list[str], list[int]]:
    texts = [f(i) for i in range(start, start + n) for f in (_spam, _ham)]
    return texts, [1, 0] * n


PROBES = [_spam(290), _ham(290), "Thanks for the notes from the meeting, see you on Monday."]


@pytest.fixture
def site_model(tmp_path):
    path = tmp_path / "site"
    assert ensure_site_model(path)
    return path


def _scores(path) -> np.ndarray:
    return np.array([v.score for v in SpamFilter.load(path).score(PROBES, ["en"] * len(PROBES))])


def _calibration(path) -> tuple[float, float]:
    con = site.connect(path)
    try:
        return _gain_offset(site.fit_of(con, "content"))
    finally:
        con.close()


def _gain_offset(fit: site.SiteFit) -> tuple[float, float]:
    return fit.gain, fit.offset


def _teach_export(path, start: int, n: int) -> dict:
    teacher = Teacher(path)
    try:
        return teacher.teach_decisions(*_export(start, n)).calibration
    finally:
        teacher.close()


def test_the_fit_recovers_a_known_gain_and_offset():
    rng = np.random.default_rng(7)
    base, sums = rng.normal(0, 1, 20_000), rng.normal(0, 3, 20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(base + 0.5 * sums - 1.0)))).astype(float)
    gain, offset = site_calibration._logistic_fit(base, sums, y)
    assert abs(gain - 0.5) < 0.05 and abs(offset + 1.0) < 0.1, (gain, offset)


def test_the_fit_converges_where_a_plain_newton_step_overshoots():
    """Separable decisions with large layer sums: an undamped Newton step flies off to the clip."""
    y = np.array([1.0] * 50 + [0.0] * 50)
    sums = np.where(y == 1, 25.0, 1.0) + np.linspace(-3, 3, 100)
    base = np.where(y == 1, 4.0, -1.0)
    gain, offset = site_calibration._logistic_fit(base, sums, y)
    assert site.GAIN_RANGE[0] < gain < site.GAIN_RANGE[1], gain
    assert site.OFFSET_RANGE[0] < offset < 0, offset


def test_leave_one_out_sums_are_the_layer_without_that_message(site_model):
    _teach_export(site_model, 0, 25)
    teacher = Teacher(site_model)
    teacher.teach_decisions([_spam(i) for i in range(100, 110)], [1] * 10)  # 35 spam, 25 ham decisions
    teacher.close()
    con = site.connect(site_model)
    layer = site.SiteLayer.read(con, "content")
    ctx = load_bundle(site_model, with_site=False).context("content")
    rows = con.execute(
        "SELECT m.label, c.columns FROM decisions d JOIN messages m USING (key) JOIN message_columns c USING (key)"
    ).fetchall()
    con.close()
    y = np.array([label == "spam" for label, _ in rows], dtype=float)
    columns = [np.frombuffer(blob, dtype=np.int32).astype(np.int64) for _, blob in rows]
    loo = site_calibration._leave_one_out_sums(layer, ctx, columns, y, y)
    assert layer.is_calibrated and layer.class_weights == (60 / 70, 60 / 50)  # unequal classes, weighed alike
    for i in (0, 1, len(rows) - 1):
        cols = np.frombuffer(rows[i][1], dtype=np.int32).astype(np.int64)
        own = np.isin(layer.columns, cols)
        without = site.SiteLayer(
            layer.columns,
            layer.spam - own * y[i],
            layer.ham - own * (1 - y[i]),
            layer.n_messages - 1,
            layer.gain,
            layer.offset,
            class_weights=site.balancing(35 - int(y[i]), 25 - int(1 - y[i])),  # the decisions without it
        )
        shift = without.shift(np.array([0, len(cols)]), cols, without.deltas(ctx.base_rates(layer.columns)))
        expected = (shift[0] - layer.offset) / layer.gain  # the sum before gain and offset
        assert loo[i] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_an_export_calibrates_the_site_and_forgetting_it_restores_every_score(site_model):
    before = _scores(site_model)
    fitted = _teach_export(site_model, 0, 25)
    assert (fitted["spam"], fitted["ham"]) == (25, 25)
    assert _calibration(site_model) == (fitted["gain"], fitted["offset"]) != (1.0, 0.0)
    assert not np.array_equal(_scores(site_model), before)

    learn_messages(site_model, _export(0, 25)[0], "forget")
    assert _calibration(site_model) == (1.0, 0.0)
    assert np.array_equal(_scores(site_model), before)


def test_forgetting_a_later_export_returns_the_earlier_calibration_exactly(site_model):
    first = _teach_export(site_model, 0, 25)
    scores = _scores(site_model)
    second = _teach_export(site_model, 100, 30)
    assert (second["spam"], second["ham"]) == (55, 55)
    assert (second["gain"], second["offset"]) != (first["gain"], first["offset"])

    learn_messages(site_model, _export(100, 30)[0], "forget")
    assert _calibration(site_model) == (first["gain"], first["offset"])
    assert np.array_equal(_scores(site_model), scores)


def test_corrections_alone_never_calibrate_the_site(site_model):
    learn_messages(site_model, [_spam(i) for i in range(30)], "spam")
    learn_messages(site_model, [_ham(i) for i in range(30)], "ham")
    assert _calibration(site_model) == (1.0, 0.0)


def test_too_few_decisions_leave_the_site_uncalibrated(site_model):
    fitted = _teach_export(site_model, 0, site_calibration.MIN_EACH - 1)
    assert fitted == {"gain": None, "offset": None, "spam": 19, "ham": 19, "regression_gain": None}
    assert _calibration(site_model) == (1.0, 0.0)


def test_a_follower_picks_up_a_refit_calibration(site_model):
    learn_messages(site_model, [_spam(0)], "spam")
    bundle = load_bundle(site_model)
    follower = site.SiteFollower(site_model, bundle.contexts)
    try:
        _teach_export(site_model, 0, 25)
        teacher = Teacher(site_model)
        fitted = teacher.teach_decisions([_spam(i) for i in range(100, 110)], [1] * 10).calibration
        teacher.close()
        learn_messages(site_model, [_ham(i) for i in range(100, 103)], "ham")  # corrections: no refit
        follower.poll()
        layer = bundle.contexts["content"].site
        assert (layer.gain, layer.offset) == (fitted["gain"], fitted["offset"])
        # the follower weighs the classes as a fresh read does: as the 35 spam and 25 ham decisions
        # of the fit (the 3 corrections since do not move the weights)
        fresh = load_bundle(site_model).contexts["content"].site
        assert layer.n_messages == fresh.n_messages == 63
        assert layer.class_weights == fresh.class_weights == (60 / 70, 60 / 50)
        rates = bundle.contexts["content"].base_rates(layer.columns)
        assert np.array_equal(layer.deltas(rates), fresh.deltas(rates))
        assert layer.regression.gain == fitted["regression_gain"] > 0  # and the regression fitted with them
        assert layer.regression.same_as(fresh.regression)
    finally:
        follower.close()


def test_learn_on_an_export_reports_the_calibration_and_info_shows_it(site_model, tmp_path):
    export = tmp_path / "export.csv"
    texts, labels = _export(0, 25)
    rows = "".join(f'"{t}",{"true" if y else "false"},true\n' for t, y in zip(texts, labels))
    export.write_text("text,hidden,reviewed\n" + rows)  # every message reviewed: hidden or kept
    result = run_cli("learn", "--model", site_model, export, "--hidden-col", "hidden", "--json")
    assert result.code == 0, result.stderr
    calibration = json.loads(result.stdout)["calibration"]
    assert (calibration["spam"], calibration["ham"]) == (25, 25)
    assert f"gain {calibration['gain']:.3f}" in result.stderr
    assert f"regression gain {calibration['regression_gain']:.3f}" in result.stderr
    info = json.loads(run_cli("info", "--model", site_model, "--json").stdout)
    assert info["contexts"]["content"]["site_calibration"] == {
        "gain": calibration["gain"],
        "offset": calibration["offset"],
        "regression_gain": calibration["regression_gain"],
    }
    assert "regression gain" in " ".join(run_cli("info", "--model", site_model).stdout.split())


def test_two_concurrent_export_learns_lose_no_decision_and_leave_the_calibration_of_both(site_model, tmp_path):
    import subprocess
    import sys

    from helpers import REPO, cli_env

    exports = []
    for k, (start, n) in enumerate(((0, 25), (100, 30))):
        texts, labels = _export(start, n)
        path = tmp_path / f"export{k}.csv"
        path.write_text(
            "text,hidden,reviewed\n"
            + "".join(f'"{t}",{"true" if y else "false"},true\n' for t, y in zip(texts, labels))
        )
        exports.append(path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spamcli", "learn", "--model", str(site_model), str(path), "--hidden-col", "hidden"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=cli_env(),
            cwd=REPO,
        )
        for path in exports
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stderr.close()
    con = site.connect(site_model)
    try:
        assert con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 110
        stored = _gain_offset(site.fit_of(con, "content"))
        refit = site_calibration.refit(con, load_bundle(site_model, with_site=False).context("content"), "content")
    finally:
        con.close()
    assert (refit["spam"], refit["ham"]) == (55, 55)
    assert stored == (refit["gain"], refit["offset"])  # the last refit saw every decision of both


def test_a_run_that_stopped_before_its_refit_is_refit_by_the_next_forget(site_model):
    _teach_export(site_model, 0, 25)
    texts = _export(0, 25)[0][:3]
    con = site.connect(site_model)
    try:  # what a `learn --forget` killed between its transaction and its refit leaves behind
        for text in texts:
            site.apply(con, f"content:{message_hash(text)}", "content", None, np.zeros(0))
        assert site_calibration.stale(con, "content")
    finally:
        con.close()
    report = learn_messages(site_model, texts, "forget")  # the same forget again: nothing left to forget
    assert report.not_learned == 3
    con = site.connect(site_model)
    try:
        assert not site_calibration.stale(con, "content")
        stored = _gain_offset(site.fit_of(con, "content"))
        fresh = site_calibration.refit(con, load_bundle(site_model, with_site=False).context("content"), "content")
    finally:
        con.close()
    assert (fresh["spam"], fresh["ham"]) == (23, 24)
    assert stored == (fresh["gain"], fresh["offset"])


def test_an_export_run_stopped_while_teaching_leaves_its_decisions_due_and_next_learn_refits(site_model, monkeypatch):
    """Each chunk of an export's lessons is kept with its decisions in one transaction: a run killed
    between two chunks leaves no lesson without its decision (those were taught as plain lessons,
    uncalibrated, and no later learn or forget ever calibrated them), and the next learn refits."""
    from spamcli import learning

    monkeypatch.setattr(learning, "TRANSACTION_MESSAGES", 10)
    calls = {"n": 0}
    apply_many = site.apply_many

    def stopped_at_the_sixth(*args, **kwargs):  # spam in 10, 10, 5; ham in 10, 10, then the kill
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return apply_many(*args, **kwargs)

    monkeypatch.setattr(site, "apply_many", stopped_at_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        _teach_export(site_model, 0, 25)
    monkeypatch.setattr(site, "apply_many", apply_many)
    con = site.connect(site_model)
    try:
        assert site.taught(con)["content"] == {"spam": 25, "ham": 20}
        assert con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 45
        assert not site.has_calibration(con, "content") and site_calibration.stale(con, "content")
    finally:
        con.close()
    learn_messages(site_model, ["Thanks for the notes from the meeting."], "ham")
    con = site.connect(site_model)
    try:
        assert site.has_calibration(con, "content") and not site_calibration.stale(con, "content")
    finally:
        con.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE decisions SET base_logit = 'abc'",
        "UPDATE decisions SET base_logit = 1e308 * 10",
        "DELETE FROM counts",
        "UPDATE message_columns SET columns = x'0102'",
        "DROP TABLE regression; CREATE TABLE regression (x)",
        "DROP TABLE fit_versions; CREATE TABLE fit_versions (x)",
    ],
    ids=["text-logit", "infinite-logit", "counts-gone", "columns-misshapen", "regression-foreign", "versions-foreign"],
)
def test_a_damaged_decisions_table_stops_learn_with_a_model_error(site_model, tmp_path, statement):
    import sqlite3

    from helpers import assert_one_line_error

    _teach_export(site_model, 0, 25)
    con = sqlite3.connect(site_model / "site.sqlite")
    con.executescript(statement)
    con.close()
    export = tmp_path / "more.csv"
    texts, labels = _export(100, 2)
    rows = "".join(f'"{t}",{"true" if y else "false"},true\n' for t, y in zip(texts, labels))
    export.write_text("text,hidden,reviewed\n" + rows)
    assert_one_line_error(run_cli("learn", "--model", site_model, export, "--hidden-col", "hidden"), 4)


def test_a_calibration_fitted_by_an_older_spamcli_scores_as_then_until_refitted(site_model):
    """An older spamcli fitted gain and offset on raw counts, with no regression: after an upgrade
    they are applied to raw counts still (no score moves), and the next forget refits them."""
    _teach_export(site_model, 0, 25)
    teacher = Teacher(site_model)
    teacher.teach_decisions([_spam(i) for i in range(100, 110)], [1] * 10)  # unequal classes
    teacher.close()
    con = site.connect(site_model)
    with con:
        con.execute("DELETE FROM fit_versions")  # what a database of an older spamcli holds
        con.execute("DELETE FROM regression")
    gain, offset = _gain_offset(site.fit_of(con, "content"))
    assert site_calibration.stale(con, "content")
    con.close()
    layer = load_bundle(site_model).contexts["content"].site
    assert (layer.gain, layer.offset, layer.class_weights, layer.regression) == (gain, offset, (1.0, 1.0), None)
    ctx = load_bundle(site_model, with_site=False).context("content")
    raw = site.SiteLayer(layer.columns, layer.spam, layer.ham, layer.n_messages, gain, offset)
    cols, rows = layer.columns[:60], np.array([0, 20, 40, 60])  # three messages of taught features
    assert np.array_equal(
        layer.shift(rows, cols, layer.deltas(ctx.base_rates(layer.columns))),
        raw.shift(rows, cols, raw.deltas(ctx.base_rates(layer.columns))),
    )
    learn_messages(site_model, [_spam(105)], "forget")  # a decision forgotten: refitted, as this spamcli fits
    refitted = load_bundle(site_model).contexts["content"].site
    assert refitted.class_weights == (59 / 68, 59 / 50) and refitted.regression is not None


def test_the_next_export_replaces_a_damaged_fit(site_model):
    _teach_export(site_model, 0, 25)
    con = site.connect(site_model)
    with con:
        con.execute("UPDATE regression SET gain = 0")  # not one spamcli writes
    con.close()
    with pytest.raises(ModelError):
        load_bundle(site_model)
    fitted = _teach_export(site_model, 25, 25)  # the refit reads the counts only, and writes a new fit
    assert load_bundle(site_model).contexts["content"].site.regression.gain == fitted["regression_gain"]


@pytest.mark.parametrize("version", ["'x'", "1e999", "3"])
def test_a_forget_refits_over_a_fit_version_spamcli_cannot_read(site_model, version):
    """A version spamcli never writes (or a newer one's) is a damaged fit to a reader (exit 4), and
    the next forget's refit replaces it, where it was an internal error."""
    _teach_export(site_model, 0, 25)
    con = site.connect(site_model)
    with con:
        con.execute(f"UPDATE fit_versions SET version = {version}")  # noqa: S608 - the test's own values
    con.close()
    with pytest.raises(ModelError, match="version"):
        load_bundle(site_model)
    result = run_cli("learn", "--model", site_model, "--forget", "-", stdin=_spam(3) + "\n")
    assert result.code == 0, result.stderr
    assert load_bundle(site_model).contexts["content"].site.regression is not None


def test_the_fit_does_not_depend_on_how_the_decisions_are_chunked(site_model, monkeypatch):
    """The leave-one-out sums are computed a chunk of decisions at a time; each chunk weighs the
    classes by every decision, as the calibrated layer does (by its own chunk's, they differed)."""
    texts, labels = _export(0, 25)
    teacher = Teacher(site_model)
    teacher.teach_decisions(texts + [_spam(i) for i in range(100, 110)], labels + [1] * 10)
    teacher.close()
    ctx = load_bundle(site_model, with_site=False).context("content")
    con = site.connect(site_model)
    try:
        whole = site_calibration.refit(con, ctx, "content")
        monkeypatch.setattr(site_calibration, "_CHUNK", 7)  # chunks of 7 decisions, each mostly one class
        assert site_calibration.refit(con, ctx, "content") == whole
    finally:
        con.close()


def test_an_export_keeps_every_decision_with_the_base_log_odds_after_older_lessons_left_them(site_model):
    """An older spamcli learned into the base counts; an export holding those messages takes them
    out first, and only then are its decisions' base log-odds read (they were read per class: the
    spam decisions' while the ham ones were still counted, off by 0.11)."""
    import sqlite3

    from spamcli.bundle import save_bundle
    from spamcli.learning import _apply_legacy

    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"
    words = words.split() + ["quebec", "romeo", "sierra", "tango"]
    ham = [f"zorblax quintet meets at the {w} hall on tuesday, zorblax tickets free" for w in words[:10]]
    spam = [f"zorblax quintet tickets, buy now at the {w} hall, zorblax cheap" for w in words[10:]]
    bundle = load_bundle(site_model, with_site=False)
    ctx = bundle.context("content")
    for text in ham:  # learned as spam by an older spamcli; the export keeps them
        _apply_legacy(ctx, text, list(ctx.models), 1, 1.0)
        bundle.learned[f"content:{message_hash(text)}"] = {
            "label": "spam",
            "models": list(ctx.models),
            "context": "content",
        }
    save_bundle(bundle, site_model)
    teacher = Teacher(site_model)
    report = teacher.teach_decisions(spam + ham, [1] * 10 + [0] * 10, "content", ["en"] * 20)
    teacher.close()
    assert (report.learned, report.moved) == (10, 10)  # the older lessons moved to the site layer
    after = load_bundle(site_model, with_site=False)
    assert not after.learned
    con = sqlite3.connect(site_model / "site.sqlite")
    stored = dict(con.execute("SELECT key, base_logit FROM decisions"))
    con.close()
    texts = spam + ham
    now = after.context("content").pipeline().base_logits(texts, ["en"] * 20)
    assert [stored[f"content:{message_hash(t)}"] for t in texts] == now.tolist()


def test_a_refit_runs_outside_the_write_lock_and_stores_only_a_fit_of_what_is_taught(site_model, monkeypatch):
    """Another writer teaches while the calibration is fitted: it is not kept waiting for the fit
    (it writes in the middle of it), and the fit of what was taught before it is not stored over
    its lesson: the refit fits again, and stores what a refit from scratch stores."""
    import time

    _teach_export(site_model, 0, 25)
    real_fit, calls, waited = site_calibration._fit, [], []

    def fit_while_another_teaches(con, ctx, context):
        calls.append(context)
        if len(calls) == 1:  # the other writer, in the middle of the first fit
            other = site.connect(site_model)
            other.execute("PRAGMA busy_timeout = 2000")
            start = time.monotonic()
            site.apply(other, f"content:{message_hash(_ham(60))}", "content", "ham", np.array([1, 2, 3]))
            waited.append(time.monotonic() - start)
            other.close()
        return real_fit(con, ctx, context)

    monkeypatch.setattr(site_calibration, "_fit", fit_while_another_teaches)
    ctx = load_bundle(site_model, with_site=False).context("content")
    con = site.connect(site_model)
    try:
        fitted = site_calibration.refit(con, ctx, "content")
        assert len(calls) == 2 and waited[0] < 1.0  # fitted again after the lesson; the writer did not wait
        monkeypatch.setattr(site_calibration, "_fit", real_fit)
        assert site_calibration.refit(con, ctx, "content") == fitted  # what a fresh refit stores
        assert _gain_offset(site.fit_of(con, "content")) == (fitted["gain"], fitted["offset"])
    finally:
        con.close()
