"""The site layer (spamcli/site.py): what moderators teach reaches similar messages, exactly reversibly."""

from __future__ import annotations

import numpy as np
import pytest

from spamcli import SpamFilter, site
from spamcli.learning import ensure_site_model, learn_messages
from spamcli.training import cold_start_cut

FLAGGED_GENUINE = "Check out my new song on soundcloud, love from DJ Kasper and the Dublin choir"
NEAR_DUPLICATE = "check out my NEW song on soundcloud!! love from DJ Kasper and the Dublin choir"
SHARES_WORDS = "DJ Kasper and the Dublin choir sing again on Sunday"
UNRELATED = "WIN a FREE iPhone now at http://x.example"


@pytest.fixture
def site_model(tmp_path):
    path = tmp_path / "site"
    assert ensure_site_model(path)
    return path


def _scores(path, texts):
    return np.array([v.score for v in SpamFilter.load(path).score(texts, ["en"] * len(texts))])


def test_a_taught_genuine_message_lowers_similar_messages_and_barely_moves_others(site_model):
    probes = [NEAR_DUPLICATE, SHARES_WORDS, UNRELATED]
    before = _scores(site_model, probes)
    learn_messages(site_model, [FLAGGED_GENUINE], "ham")
    after = _scores(site_model, probes)
    logit = np.log(after / (1 - after)) - np.log(before / (1 - before))
    assert logit[0] < -0.5  # a near-duplicate (not the same normalised text), in log-odds
    assert after[1] < before[1]  # a different message sharing its distinctive words
    assert abs(after[2] - before[2]) < 0.005  # unrelated spam keeps its score


def test_one_correction_changes_the_verdict_on_a_near_duplicate(site_model):
    def labels():
        return [v.label for v in SpamFilter.load(site_model).score([FLAGGED_GENUINE, NEAR_DUPLICATE], ["en"] * 2)]

    assert labels() == ["spam", "spam"]  # the shipped model flags both
    learn_messages(site_model, [FLAGGED_GENUINE], "ham")
    assert labels()[0] == "ham"  # the very message: the moderator's decision
    assert labels()[1] != "spam"  # its near-duplicate is no longer flagged, after one lesson


def test_more_corrections_move_similar_messages_further(site_model):
    before = _scores(site_model, [NEAR_DUPLICATE])[0]
    learn_messages(site_model, [FLAGGED_GENUINE], "ham")
    one = _scores(site_model, [NEAR_DUPLICATE])[0]
    others = [f"Check out my new song on soundcloud, love from DJ Kasper, {w}" for w in ("live", "tonight", "again")]
    learn_messages(site_model, others, "ham")
    assert _scores(site_model, [NEAR_DUPLICATE])[0] < one < before


def test_taught_spam_raises_similar_messages(site_model):
    spam = "Visit tokobagus-murah.example for cheap followers, promo kode BAGUS"
    probe = "promo kode BAGUS at tokobagus-murah.example today"
    before = _scores(site_model, [probe])[0]
    learn_messages(site_model, [spam], "spam")
    assert _scores(site_model, [probe])[0] > before


def test_site_shift_has_known_values():
    layer = site.SiteLayer(columns=np.array([1, 2]), spam=np.array([1.0, 0.0]), ham=np.array([0.0, 2.0]), n_messages=10)
    deltas = layer.deltas((np.array([0.01, 0.01]), np.array([0.01, 0.01])))
    assert deltas == pytest.approx([np.log(2.0), -np.log(3.0)], abs=1e-12)
    # one row holding columns 1, 2 and 3 (3 never taught): weight 10/11, normalised as 100 features
    shift = layer.shift(np.array([0, 3]), np.array([1, 2, 3]), deltas)
    assert shift == pytest.approx([-0.0368605], abs=1e-7)
    # the same row's columns, one by one (--explain), add up to its shift
    assert layer.contributions(np.array([1, 2, 3]), deltas) == pytest.approx([0.0630134, -0.0998738, 0.0], abs=1e-7)


def test_a_calibrated_layer_weighs_its_taught_classes_alike():
    # 30 spam and 10 ham taught (an export of a site where three messages in four are spam); column 1
    # is in every one of them (a space, a digit), column 2 in two of the spam
    raw = site.SiteLayer(np.array([1, 2]), np.array([30.0, 2.0]), np.array([10.0, 0.0]), 40)
    rates = (np.array([0.3, 0.01]), np.array([0.3, 0.01]))
    assert raw.class_weights == (1.0, 1.0)  # corrections alone: counted raw
    assert raw.deltas(rates)[0] == pytest.approx(np.log1p(30 / 30) - np.log1p(10 / 30), abs=1e-12)  # spam evidence
    fit = site.SiteFit(0.8, 0.5, site.balancing(30, 10))  # fitted on those 40 decisions
    calibrated = raw.calibrated(fit)
    assert calibrated.class_weights == (40 / 60, 40 / 20)
    deltas = calibrated.deltas(rates)
    assert deltas[0] == pytest.approx(0.0, abs=1e-12)  # a feature of every message is no evidence either way
    assert deltas[1] == pytest.approx(np.log1p(2 * 40 / 60 / 1.0), abs=1e-12)
    assert raw.calibrated(site.SiteFit(0.8, 0.5)).class_weights == (1.0, 1.0)  # fitted by an older spamcli


def test_a_feature_the_base_never_saw_weighs_as_if_one_base_message_in_200_held_it():
    layer = site.SiteLayer(columns=np.array([7]), spam=np.array([1.0]), ham=np.array([0.0]), n_messages=1)
    # base rates of 1 in 20,000 are taken as 1 in 200: log(1 + 1 / (100 * 0.005)) = log(3), not log(201)
    assert layer.deltas((np.array([5e-5]), np.array([5e-5]))) == pytest.approx([np.log(3.0)], abs=1e-12)
    assert layer.weight == 0.5  # the first lesson has half the layer's strength


def test_cold_start_cut_is_set_by_the_median_community():
    y = np.array([0] * 10 + [0] * 10 + [0] * 10 + [1] * 3)
    sources = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10 + ["a"] * 3)
    scores = np.concatenate(
        [np.linspace(0.0, 0.45, 10), np.r_[np.linspace(0.0, 0.4, 8), 0.8, 0.9], np.full(10, 0.99), [0.9] * 3]
    )
    # a: no genuine message above 0.5; b: 2 of 10 at 0.8 and 0.9; c: all ten at 0.99 (flagged at any cut)
    assert cold_start_cut(y, scores, sources, 0.1) == pytest.approx(0.8, abs=1e-4)  # median = b's rate: 1 of 10
    assert cold_start_cut(y, scores, sources, 0.2) == 0.5
    assert cold_start_cut(y, scores, sources, 0.0) == pytest.approx(0.9, abs=1e-4)


def test_explain_names_the_words_a_moderator_taught(site_model):
    def reasons():
        (verdict,) = SpamFilter.load(site_model).score([NEAR_DUPLICATE], ["en"], explain=50)
        return dict(verdict.reasons)

    before = reasons()
    learn_messages(site_model, [FLAGGED_GENUINE], "ham")
    after = reasons()
    # the words of the taught genuine message now pull its near-duplicate towards ham
    assert after["kasper"] < before.get("kasper", 0.0) - 0.05
    assert after["dublin"] < before.get("dublin", 0.0) - 0.05


def test_a_site_taught_only_spam_does_not_flag_genuine_messages_sharing_its_common_words(site_model, monkeypatch):
    """A team that teaches every spam it hides and no genuine message: without a cap on the larger
    class, the words common to its site ("hi", "see you", "thanks") became spam evidence from 400
    lessons, and genuine messages holding them scored 1.0 (checked below, with the cap lifted)."""
    shops = ["Lucky", "Golden", "Royal", "Mega", "Super", "Star", "Diamond"]
    games = ["deposit", "bonus", "spins", "jackpot", "cashback", "vip", "slots", "roulette", "poker", "betting"]
    towns = ["Leeds", "Porto", "Ghent", "Lyon", "Turin", "Bergen", "Krakow", "Oslo", "Riga", "Vigo"]
    club = "Hi friends, join {} {} club today in {}, see you there and thanks"
    spam = [club.format(shops[i % 7], games[i // 7 % 10], towns[i // 70 % 10]) for i in range(400)]
    learn_messages(site_model, spam, "spam")
    genuine = ["Hi friends, see you at the library today, thanks", "thanks for the help, see you there"]
    con = site.connect(site_model)
    try:
        spam_weight, ham_weight = site.fit_of(con, "content").class_weights
    finally:
        con.close()
    assert (spam_weight, ham_weight) == (10 / 400, 1.0)  # 400 spam, 0 ham: they count as 10
    verdicts = SpamFilter.load(site_model).score(genuine, ["en"] * len(genuine))
    assert [v.label for v in verdicts] != ["spam", "spam"] and all(v.score < 0.9 for v in verdicts)
    assert SpamFilter.load(site_model).score([spam[3]], ["en"])[0].score > 0.99  # the spam still caught
    monkeypatch.setattr(site, "CLASS_GAP", 1e9)
    monkeypatch.setattr(site, "CLASS_SLACK", 1e9)
    assert [v.label for v in SpamFilter.load(site_model).score(genuine, ["en"] * 2)] == ["spam", "spam"]


def test_the_class_cap_leaves_a_week_of_corrections_as_taught():
    assert site.lesson_class_weights(42, 10) == (30 / 42, 1.0)  # min(3 * 10 + 10, 10 + 20) = 30
    for spam, ham in [(22, 8), (18, 5), (15, 3), (12, 25), (46, 50), (0, 0), (10, 0), (0, 5)]:
        assert site.lesson_class_weights(spam, ham) == (1.0, 1.0)
    assert site.lesson_class_weights(0, 400) == (1.0, 10 / 400)
    assert site.lesson_class_weights(300, 100) == (120 / 300, 1.0)
