"""``spamcli export``: portable JSON, and a scorer re-implemented from the document alone."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib

import pytest
from helpers import run_cli

from spamcli import text
from spamcli.export import load_export
from spamcli.text import FeatureSettings

TEXTS = [
    ("WIN a FREE iPhone!!! Claim now at http://win.example/claim", "en"),
    ("Are we still meeting for lunch tomorrow at 12?", "en"),
    ("Gana dinero desde casa, llama al 600 123 456", "es"),
    ("Danke für die Hilfe beim Umzug am Wochenende.", "de"),
    ("Sie haben im Lotto gewonnen, rufen Sie sofort an", "de"),
    ("这是一个测试 免费领取", "zh"),
    ("Bonjour, on se voit demain ?", "fr"),
    ("<a href='http://x.example'>click</a> 😀😀 mail me: a@b.example", "en"),
]


def _columns(context: dict, text_: str) -> dict[int, int]:
    settings = FeatureSettings.from_dict(context["features"])
    counts: dict[int, int] = {}
    for feature in text.features(text_, settings):
        column = zlib.crc32(feature.encode("utf-8")) % settings.n_features
        counts[column] = counts.get(column, 0) + 1
    return {column: (1 if settings.binary else n) for column, n in counts.items()}


def _portable_score(context: dict, text_: str, model_name: str) -> float:
    """Score as docs/FORMAT.md says, using only the exported document and the feature strings."""
    model = context["models"][model_name]
    r = dict(zip(model["columns"], model["weights"]))
    x = _columns(context, text_)
    xr = {column: value * r.get(column, model["default_weight"]) for column, value in x.items()}
    if model["kind"] == "nb":
        z = sum(xr.values())
    else:
        u = dict(zip(model["columns"], model["coef_plain"]))
        v = dict(zip(model["columns"], model["coef_nb"]))
        floors = model["norm_floors"]
        norm_x = math.sqrt(max(sum(value * value for value in x.values()), floors["plain"]))
        norm_xr = math.sqrt(max(sum(value * value for value in xr.values()), floors["nb"]))
        z = model["intercept"]
        z += sum(value * u.get(column, 0.0) for column, value in x.items()) / norm_x
        z += sum(value * v.get(column, 0.0) for column, value in xr.items()) / norm_xr
    calibration = model["calibration"]
    logit = calibration["a"] * z + calibration["b"]
    if context["site"]:  # what the site's moderators taught
        layer = context["site"]
        delta = dict(zip(layer["columns"], layer["deltas"]))
        evidence = layer["weight"] * sum(delta.get(c, 0.0) for c in x) / math.sqrt(max(len(x), layer["floor"]))
        logit += layer["gain"] * evidence + layer["offset"]
        if layer["regression"]:  # fitted on a moderation export's decisions
            weights = dict(zip(layer["regression"]["columns"], layer["regression"]["weights"]))
            logit += layer["regression"]["gain"] * sum(weights.get(c, 0.0) for c in x) / math.sqrt(max(len(x), 1))
    return 1.0 / (1.0 + math.exp(-logit))


def _portable_label(context: dict, text_: str, lang: str, score: float) -> str:
    """The label as docs/FORMAT.md says (a given language counts as confidence 1)."""
    model_name = _route(context, lang)
    cuts = context["models"][model_name]["thresholds"]
    label = "spam" if score >= cuts["spam"] else "ham" if score < cuts["ham"] else "unsure"
    known = context["known_languages"]
    if label == "spam" and known is not None and lang not in known and score < context["unseen_language_threshold"]:
        label = "unsure"
    return context["learned_labels"].get(hashlib.sha256(text.normalise(text_).encode()).hexdigest(), label)


def _route(context: dict, lang: str) -> str:
    """A known language (confidence 1) goes to its own model if there is one, else the fallback."""
    return lang if lang in context["models"] else context["fallback_model"]


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.json"
    result = run_cli("export", "--model", trained_model, "--out", out)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    return out


def test_export_writes_plain_json_without_pickle(exported):
    raw = exported.read_bytes()
    doc = json.loads(raw.decode("utf-8"))
    assert doc["format"] == "spamcli-export"
    assert b"\x80\x04" not in raw and b"\x80\x05" not in raw  # no pickle protocol header
    context = doc["contexts"]["content"]
    assert "multi" in context["models"]
    for model in context["models"].values():
        assert len(model["columns"]) == len(model["weights"])
        assert isinstance(model["default_weight"], float)
        assert set(model["calibration"]) == {"a", "b"}


def test_export_json_gz_is_gzipped_json_and_loads(trained_model, tmp_path, exported):
    out = tmp_path / "model.json.gz"
    result = run_cli("export", "--model", trained_model, "--out", out)
    assert result.code == 0, result.stderr
    doc = json.loads(gzip.decompress(out.read_bytes()))
    assert doc["contexts"] == json.loads(exported.read_text())["contexts"]
    assert load_export(out)["format"] == "spamcli-export"


def test_exported_document_alone_reproduces_the_scores_of_the_model(exported, spam_filter):
    context = load_export(exported)["contexts"]["content"]
    texts, langs = [t for t, _ in TEXTS], [lang for _, lang in TEXTS]
    verdicts = spam_filter.score(texts, langs)
    for (text_, lang), verdict in zip(TEXTS, verdicts):
        assert verdict.model == _route(context, lang)
        assert abs(_portable_score(context, text_, verdict.model) - verdict.score) < 1e-9


def test_export_test_vectors_match_the_portable_scorer(exported):
    doc = load_export(exported)
    assert doc["test_vectors"]
    for vector in doc["test_vectors"]:
        context = doc["contexts"][vector["context"]]
        settings = FeatureSettings.from_dict(context["features"])
        assert text.normalise(vector["text"]) == vector["normalised"]
        assert text.features(vector["text"], settings) == vector["features"]
        assert abs(_portable_score(context, vector["text"], vector["model"]) - vector["score"]) < 1e-9


@pytest.fixture(scope="module")
def regression_bundle(tmp_path_factory):
    """A model large enough (>= 50 per class) for the NB-weighted regression ("nblr") kind."""
    import random

    from spamcli.bundle import Bundle, save_bundle
    from spamcli.records import Record
    from spamcli.training import TrainOptions, train_context

    rng = random.Random(3)
    spam_words = ["win", "free", "prize", "claim", "cash", "urgent", "offer", "click", "now", "bonus", "casino", "loan"]
    ham_words = [
        "lunch",
        "meeting",
        "tomorrow",
        "thanks",
        "see",
        "you",
        "later",
        "dinner",
        "project",
        "review",
        "call",
        "mum",
    ]
    records = []
    for i in range(240):
        label = i % 2
        words = rng.sample(spam_words if label else ham_words, 5) + rng.sample(spam_words + ham_words, 2)
        records.append(Record(id=i, text=" ".join(words) + f" {i}", lang="en", label=label))
    ctx, _ = train_context(records, TrainOptions(min_per_class=5, dedupe=False))
    assert ctx.models["multi"].kind == "nblr"
    out = tmp_path_factory.mktemp("nblr") / "model"
    save_bundle(Bundle(contexts={"content": ctx}), out)
    return out


def test_exported_regression_model_reproduces_the_scores(regression_bundle, tmp_path):
    from spamcli import SpamFilter

    out = tmp_path / "nblr.json"
    assert run_cli("export", "--model", regression_bundle, "--out", out).code == 0
    doc = load_export(out)
    context = doc["contexts"]["content"]
    verdicts = SpamFilter.load(regression_bundle).score([t for t, _ in TEXTS], [lang for _, lang in TEXTS])
    for (text_, _lang), verdict in zip(TEXTS, verdicts):
        assert abs(_portable_score(context, text_, verdict.model) - verdict.score) < 1e-9
    for vector in doc["test_vectors"]:
        assert abs(_portable_score(context, vector["text"], vector["model"]) - vector["score"]) < 1e-9


def test_export_carries_the_site_calibration_of_a_moderation_export(model_copy, tmp_path):
    from test_site_calibration import _export

    from spamcli import SpamFilter
    from spamcli.learning import Teacher

    teacher = Teacher(model_copy)
    fitted = teacher.teach_decisions(*_export(0, 25)).calibration
    teacher.close()
    out = tmp_path / "calibrated.json"
    assert run_cli("export", "--model", model_copy, "--out", out).code == 0
    doc = load_export(out)
    assert doc["format_version"] == 3  # a version-1 reader would ignore gain and offset, a version-2 the regression
    context = doc["contexts"]["content"]
    assert (context["site"]["gain"], context["site"]["offset"]) == (fitted["gain"], fitted["offset"]) != (1.0, 0.0)
    assert context["site"]["regression"]["gain"] == fitted["regression_gain"] > 0
    assert context["site"]["regression"]["fitted_on"] == "export"
    verdicts = SpamFilter.load(model_copy).score([t for t, _ in TEXTS], [lang for _, lang in TEXTS])
    for (text_, lang), verdict in zip(TEXTS, verdicts):
        assert abs(_portable_score(context, text_, _route(context, lang)) - verdict.score) < 1e-9, text_


def test_export_of_missing_model_exits_4(tmp_path):
    result = run_cli("export", "--model", tmp_path / "none", "--out", tmp_path / "x.json")
    assert result.code == 4
    assert not (tmp_path / "x.json").exists()


def test_export_lets_another_program_label_exactly_as_spamcli_after_learning(model_copy, tmp_path):
    """Known languages, the unseen-language rule, the site layer and learned labels are all in the
    document: a scorer following it gives spamcli's score and label."""
    from spamcli import SpamFilter
    from spamcli.learning import learn_messages

    learn_messages(model_copy, ["Are we still meeting for lunch tomorrow at 12? free prize"], "ham")
    learn_messages(model_copy, ["Cheap watches at www.watch-deal.example, order today"], "spam")
    out = tmp_path / "learned.json"
    assert run_cli("export", "--model", model_copy, "--out", out).code == 0
    doc = load_export(out)
    assert doc["format_version"] == 1  # taught, not calibrated: a version-1 reader scores it right
    context = doc["contexts"]["content"]
    assert context["site"]["columns"] and len(context["learned_labels"]) == 2
    assert context["known_languages"] and "unseen_language_threshold" in context
    cases = [
        *TEXTS,
        ("Are we still meeting for lunch tomorrow at 12? free prize", "en"),
        ("Cheap watches at www.watch-deal.example, order today", "en"),
        ("Bedava iPhone kazandiniz! Hemen tiklayin www.bedava.example", "tr"),
        ("Kazandiniz! Odulunuzu almak icin simdi arayin 0850 123 4567", "tr"),
    ]
    verdicts = SpamFilter.load(model_copy).score([t for t, _ in cases], [lang for _, lang in cases])
    labels, unseen_rule = set(), 0
    for (text_, lang), verdict in zip(cases, verdicts):
        score = _portable_score(context, text_, _route(context, lang))
        assert abs(score - verdict.score) < 1e-9, text_
        assert _portable_label(context, text_, lang, verdict.score) == verdict.label, text_
        labels.add(verdict.label)
        cut = context["models"][verdict.model]["thresholds"]["spam"]
        unseen_rule += verdict.label == "unsure" and cut <= verdict.score < context["unseen_language_threshold"]
    assert {"spam", "ham"} <= labels
    assert unseen_rule  # at least one case where the unseen-language rule decides the label


def test_export_carries_the_profile_scoring_with_test_vectors(exported):
    doc = load_export(exported)
    scoring = doc["profile_scoring"]
    assert scoring["text_context"] in doc["contexts"]
    for vector in doc["profile_test_vectors"]:
        signals = [s for s in vector["signals"] if s != "short_bio"]
        logit = scoring["empty_bio_logit"]
        if vector["text_score"] is not None:
            p = min(max(vector["text_score"], 1e-4), 1 - 1e-4)
            logit = math.log(p / (1 - p))
        z = scoring["bias"] + scoring["weights"]["text"] * logit + sum(scoring["weights"][s] for s in signals)
        score = 1 / (1 + math.exp(-z))
        if "short_bio" in vector["signals"]:
            score = min(score, scoring["thresholds"]["ham"] - 1e-4) if scoring["thresholds"] else score
        assert abs(score - vector["score"]) < 2e-3  # text_score and score are rounded to 4 places


def test_export_of_a_model_with_a_non_finite_number_exits_4_and_writes_no_json(model_copy, tmp_path):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["contexts"]["content"]["unseen_language_threshold"] = float("nan")
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "nan.json"
    result = run_cli("export", "--model", model_copy, "--out", out)
    assert result.code == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_export_of_a_site_with_a_capped_class_reproduces_its_scores(model_copy, tmp_path):
    """The larger taught class capped (site.lesson_class_weights) is in the exported deltas."""
    from spamcli import SpamFilter, site
    from spamcli.learning import learn_messages

    shops, perks = ["Lucky", "Golden", "Royal", "Mega", "Super", "Star"], ["spins", "bonus", "jackpot", "slots"]
    learn_messages(model_copy, [f"Join {s} casino today for {p} and more" for s in shops for p in perks], "spam")
    con = site.connect(model_copy)
    assert site.fit_of(con, "content").class_weights == (10 / 24, 1.0)
    con.close()
    out = tmp_path / "capped.json"
    assert run_cli("export", "--model", model_copy, "--out", out).code == 0
    context = load_export(out)["contexts"]["content"]
    cases = [*TEXTS, ("Join the Lucky reading club today and more", "en"), ("Hi, casino night today?", "en")]
    verdicts = SpamFilter.load(model_copy).score([t for t, _ in cases], [lang for _, lang in cases])
    for (text_, lang), verdict in zip(cases, verdicts):
        assert abs(_portable_score(context, text_, _route(context, lang)) - verdict.score) < 1e-9, text_
