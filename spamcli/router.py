"""The language router: detect each text's language, pick that language's model or the fallback.

A :class:`ContextModel` is everything needed to score one context (``content`` or ``profile``):
feature settings, one :class:`~spamcli.model.NaiveBayesModel` per language that had enough data of
both classes (and beat the fallback on held-out data), the multilingual fallback trained on
everything, the minimum language-id confidence, and the spam/ham thresholds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .langid import LanguageDetector, new_detector
from .model import NaiveBayesModel, sigmoid
from .text import FeatureSettings, Vectoriser, message_hash

if TYPE_CHECKING:
    from .site import SiteLayer

FALLBACK = "multi"
SPAM, UNSURE, HAM = "spam", "unsure", "ham"
# False-positive budgets for which training stores a spam threshold (``classify --max-fpr``).
FP_BUDGETS = (0.005, 0.01, 0.02, 0.03, 0.05)


def fpr_key(budget: float) -> str:
    """The manifest key of a false-positive budget: 0.01 -> "0.01"."""
    return f"{budget:g}"


def check_fp_budget(max_fpr: float | None, ham: float | None, spam: float | None) -> None:
    """``--max-fpr`` is one of :data:`FP_BUDGETS` and comes without ``--spam``/``--ham-threshold``
    (it picks the thresholds): ValueError with the message for the user if not."""
    if max_fpr is None:
        return
    if ham is not None or spam is not None:
        raise ValueError("--max-fpr picks the thresholds; give it or --spam/--ham-threshold, not both")
    if max_fpr not in FP_BUDGETS:
        raise ValueError(f"--max-fpr must be one of {', '.join(f'{b:g}' for b in FP_BUDGETS)}")


@dataclass(frozen=True)
class Thresholds:
    """``score >= spam`` is spam, ``score < ham`` is ham, in between is unsure."""

    ham: float = 0.3
    spam: float = 0.7

    def label(self, score: float) -> str:
        if score >= self.spam:
            return SPAM
        if score < self.ham:
            return HAM
        return UNSURE


@dataclass
class Verdict:
    """The score of one text, before it becomes an output record."""

    score: float
    label: str
    lang: str
    lang_confidence: float
    model: str
    reasons: list[tuple[str, float]] | None = None
    learned: str | None = None  # "spam"/"ham" when a moderator taught this very message (spamcli learn)


def sorted_positions(keys: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pos, found)``: where each of ``columns`` is in the sorted ``keys``, and whether it is there
    at all (``pos`` is a valid index into a non-empty ``keys`` either way; 0 when ``keys`` is empty)."""
    columns = np.asarray(columns)
    if not len(keys):
        return np.zeros(len(columns), dtype=np.intp), np.zeros(len(columns), dtype=bool)
    pos = np.minimum(np.searchsorted(keys, columns), len(keys) - 1)
    return pos, keys[pos] == columns


def base_rates(base, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q_ham, q_spam)``: the share of ``base``'s training ham and spam (a model's ``columns``,
    ``counts`` and ``doc_counts``) holding each of the sorted ``columns`` (smoothed), the site
    layer's yardstick."""
    pos, seen = sorted_positions(base.columns, columns)
    rates = []
    for c in (0, 1):
        held = np.where(seen, base.counts[c, pos] if len(base.columns) else 0.0, 0.0)
        rates.append((held + 0.5) / (base.doc_counts[c] + 1.0))
    return rates[0], rates[1]


@dataclass
class ContextModel:
    context: str
    settings: FeatureSettings
    models: dict[str, NaiveBayesModel]
    thresholds: Thresholds = field(default_factory=Thresholds)
    model_thresholds: dict[str, Thresholds] = field(default_factory=dict)  # per model, from training
    # Languages with enough genuine (ham) training examples. A text confidently in another language
    # is only labelled spam at ``unseen_language_threshold`` or above (else unsure): the model has
    # never seen genuine messages in that language, and flagging genuine people is the worse error.
    known_languages: list[str] | None = None
    # sha256 of the normalised text -> "spam"/"ham", for messages taught with ``spamcli learn``: the
    # very same message gets the moderator's decision as its label (the score stays the model's).
    learned_labels: dict[str, str] = field(default_factory=dict)
    unseen_language_threshold: float = 0.97
    min_lang_confidence: float = 0.5
    lang_backend: str = "fasttext"
    summary: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)  # profile context: signal weights (see profiles.py)
    # The spam threshold per false-positive budget (fpr_key -> cut), chosen on held-out scores at
    # training like the default one: for the context (key "") and for each model with its own
    # thresholds. Models trained before this existed have none.
    spam_at_fpr: dict[str, dict[str, float]] = field(default_factory=dict)
    # What this site's moderators taught (spamcli learn), added to the base score: see site.py.
    site: SiteLayer | None = field(default=None, repr=False, compare=False)
    _pipeline: Pipeline | None = field(default=None, repr=False, compare=False)  # see pipeline()
    _site_deltas: tuple | None = field(default=None, repr=False, compare=False)  # (layer, its deltas)

    def site_deltas(self, layer: SiteLayer | None = None) -> np.ndarray:
        """The site layer's evidence per taught column, against the fallback's training rates."""
        layer = layer or self.site
        cached = self._site_deltas
        if cached is not None and cached[0] is layer:
            return cached[1]
        deltas = layer.deltas(self.base_rates(layer.columns))
        self._site_deltas = (layer, deltas)
        return deltas

    def base_rates(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(q_ham, q_spam)`` of the fallback model at ``columns``: see :func:`base_rates`."""
        return base_rates(self.models[FALLBACK], columns)

    def set_site(self, layer: SiteLayer | None) -> None:
        """Replace the site layer (a scoring thread keeps the layer it started with)."""
        self.site = layer

    def with_fp_budget(self, budget: float) -> ContextModel:
        """A copy whose spam thresholds are those chosen at training for a held-out false-positive
        rate of ``budget`` (one of :data:`FP_BUDGETS`) instead of the trained default; a ham
        threshold above the new spam threshold comes down to it."""
        key = fpr_key(budget)
        names = ["", *self.model_thresholds]
        if any(key not in self.spam_at_fpr.get(name, {}) for name in names):
            stored = sorted(set.intersection(*(set(self.spam_at_fpr.get(n, {})) for n in names)), key=float)
            have = f"it has {', '.join(stored)}" if stored else "it has none: retrain it with this spamcli"
            raise ValueError(f"the model has no spam threshold for a false-positive budget of {key} ({have})")

        def at_budget(name: str, current: Thresholds) -> Thresholds:
            spam = self.spam_at_fpr[name][key]
            return Thresholds(ham=min(current.ham, spam), spam=spam)

        return replace(
            self,
            thresholds=at_budget("", self.thresholds),
            model_thresholds={name: at_budget(name, t) for name, t in self.model_thresholds.items()},
            _pipeline=None,
        )

    def prepare(self) -> None:
        """Build what scoring needs now (see :meth:`Pipeline.prepare`), for this model's own pipeline."""
        self.pipeline().prepare()

    def pipeline(self) -> Pipeline:
        """This model's own :class:`Pipeline`, made on first use, for :meth:`score`, :meth:`detect`,
        :meth:`explain` and :attr:`vectoriser` (training, evaluation, export). Scorers that are
        loaded (:class:`~spamcli.api.SpamFilter`, :class:`~spamcli.profiles.ProfileScorer`) build
        their own at load instead."""
        pipeline = self._pipeline
        if pipeline is None:
            pipeline = self._pipeline = Pipeline(self)
        return pipeline

    @property
    def vectoriser(self) -> Vectoriser:
        return self.pipeline().vectoriser

    @property
    def languages(self) -> list[str]:
        return sorted(k for k in self.models if k != FALLBACK)

    def _labels(
        self, scores: list[float], routes: list[str], detected: list[tuple[str, float]], override: Thresholds | None
    ) -> list[str]:
        """The label of each score: by ``override`` if given, else by its routed model's thresholds;
        ``spam`` in a language no model was trained on (detected with confidence) becomes ``unsure``
        below :attr:`unseen_language_threshold`."""
        known = self.known_languages
        sure = self.min_lang_confidence
        cut = self.unseen_language_threshold
        by_route = {name: override or self.thresholds_for(name) for name in set(routes)}
        labels = []
        for score, route, (lang, conf) in zip(scores, routes, detected):
            label = by_route[route].label(score)
            unseen = known is not None and conf >= sure and lang not in known
            if label == SPAM and override is None and score < cut and unseen:
                label = UNSURE
            labels.append(label)
        return labels

    def thresholds_for(self, model_name: str) -> Thresholds:
        return self.model_thresholds.get(model_name, self.thresholds)

    def route(self, lang: str, confidence: float) -> str:
        """The model name for a detected language: its own model if sure enough, else fallback."""
        if confidence >= self.min_lang_confidence and lang in self.models:
            return lang
        return FALLBACK

    def detect(self, texts: list[str], langs: list[str | None] | None = None) -> list[tuple[str, float]]:
        """See :meth:`Pipeline.detect`."""
        return self.pipeline().detect(texts, langs)

    def score(
        self,
        texts: list[str],
        langs: list[str | None] | None = None,
        explain: int = 0,
        thresholds: Thresholds | None = None,
    ) -> list[Verdict]:
        """See :meth:`Pipeline.score`."""
        return self.pipeline().score(texts, langs, explain, thresholds)

    def base_logits(self, texts: list[str], langs: list[str | None] | None = None) -> np.ndarray:
        """See :meth:`Pipeline.base_logits`."""
        return self.pipeline().base_logits(texts, langs)

    def explain(self, text: str, model_name: str, top: int) -> list[tuple[str, float]]:
        """See :meth:`Pipeline.explain`."""
        return self.pipeline().explain(text, model_name, top)


class Pipeline:
    """The whole way from texts to verdicts for one :class:`ContextModel`, built when the model is
    loaded: the model (its per-language models, thresholds and site layer), the :class:`Vectoriser`
    of its feature settings (with its caches, and the feature backend, C or Python, chosen when it
    was made) and its language detector (made on first use: a run whose records all give their
    language never reads the language-id model).

    Nothing of it is module state: pipelines of different models score side by side in one process
    and from several threads at once (the caches are bounded dicts, safe to share between threads),
    and the worker processes of ``--jobs`` get theirs from the pool's initializer."""

    def __init__(
        self, model: ContextModel, vectoriser: Vectoriser | None = None, detector: LanguageDetector | None = None
    ):
        self.model = model
        self.settings = model.settings
        self.vectoriser = vectoriser if vectoriser is not None else Vectoriser(model.settings)
        self._detector = detector
        self._detector_lock = threading.Lock()

    def prepare(self) -> None:
        """Load the language-id model and build every model's lookup tables now, which scoring
        does when it first needs them: before worker processes are forked, so that they share them."""
        _ = self.detector
        for model in self.model.models.values():
            model.prepare()

    @property
    def detector(self) -> LanguageDetector:
        """The language detector of the model's backend, made on first use."""
        detector = self._detector
        if detector is None:
            with self._detector_lock:
                if self._detector is None:
                    self._detector = new_detector(self.model.lang_backend)
                detector = self._detector
        return detector

    def with_model(self, model: ContextModel) -> Pipeline:
        """A pipeline for ``model`` (the same one at other thresholds, say) that shares this one's
        vectoriser and detector: ``model`` must have the same feature settings and backend."""
        if model.settings != self.settings or model.lang_backend != self.model.lang_backend:
            raise ValueError("with_model() needs a model of the same feature settings and language backend")
        return Pipeline(model, self.vectoriser, self.detector)

    def detect(self, texts: list[str], langs: list[str | None] | None = None) -> list[tuple[str, float]]:
        """Language of each text; a given language (e.g. a ``lang`` field) is taken as certain."""
        if langs is None:
            langs = [None] * len(texts)
        todo = [i for i, lang in enumerate(langs) if not lang]
        found = self.detector.detect([texts[i] for i in todo]) if todo else []
        out: list[tuple[str, float]] = [(lang or "", 1.0) for lang in langs]
        for i, result in zip(todo, found):
            out[i] = result
        return out

    def score(
        self,
        texts: list[str],
        langs: list[str | None] | None = None,
        explain: int = 0,
        thresholds: Thresholds | None = None,
    ) -> list[Verdict]:
        """Score a batch of texts; ``explain=N`` adds the N features that moved each score most.

        Labels use ``thresholds`` if given, else the routed model's own thresholds."""
        ctx = self.model
        detected = self.detect(texts, langs)
        models, sure = ctx.models, ctx.min_lang_confidence  # self.route(), inlined
        routes = [lang if conf >= sure and lang in models else FALLBACK for lang, conf in detected]
        # one snapshot of the site layer per batch: a follower may swap it meanwhile
        score_list = sigmoid(self._logits(texts, routes, ctx.site)).tolist()
        labels = ctx._labels(score_list, routes, detected, thresholds)
        verdicts = [
            Verdict(score=score, label=label, lang=lang, lang_confidence=round(conf, 3), model=route)
            for score, label, (lang, conf), route in zip(score_list, labels, detected, routes)
        ]
        if explain:
            for verdict, text in zip(verdicts, texts):
                verdict.reasons = self.explain(text, verdict.model, explain)
        if ctx.learned_labels:
            for verdict, text in zip(verdicts, texts):
                verdict.learned = ctx.learned_labels.get(message_hash(text))
                verdict.label = verdict.learned or verdict.label
        return verdicts

    def base_logits(self, texts: list[str], langs: list[str | None] | None = None) -> np.ndarray:
        """The base model's calibrated log-odds of each text, routed as :meth:`score` routes it (a
        given language taken as certain), without the site layer (what the site's calibration is
        fitted against)."""
        ctx = self.model
        return self._logits(texts, [ctx.route(lang, conf) for lang, conf in self.detect(texts, langs)], None)

    def _logits(self, texts: list[str], routes: list[str], layer: SiteLayer | None) -> np.ndarray:
        """Calibrated log-odds of each text by its routed model, plus ``layer``'s shift if given."""
        ctx = self.model
        out = np.empty(len(texts))
        for name in set(routes):
            idx = [i for i, r in enumerate(routes) if r == name]
            model = ctx.models[name]
            rows = self.vectoriser.transform([texts[i] for i in idx])
            logit = model.calib_a * model.decision_function(rows) + model.calib_b
            if layer is not None:
                logit += layer.shift(rows.indptr, rows.indices, ctx.site_deltas(layer))
            out[idx] = logit
        return out

    def explain(self, text: str, model_name: str, top: int) -> list[tuple[str, float]]:
        """The ``top`` words or word pairs that moved the score most, with their signed weight
        (the sum of their features' contributions to the calibrated log-odds, the site layer's
        included when moderators taught this model)."""
        model = self.model.models[model_name]
        names = self.vectoriser.explain_tokens(text)
        row = self.vectoriser.row(text)
        cols = np.fromiter(row, dtype=np.int64, count=len(row))
        vals = np.fromiter(row.values(), dtype=np.float64, count=len(row))
        contrib = model.contributions(cols, vals)
        layer = self.model.site
        if layer is not None:  # what this site's moderators taught moved the score too
            contrib = contrib + layer.contributions(cols, self.model.site_deltas(layer))
        by_name: dict[str, float] = {}
        for col, value in zip(cols.tolist(), contrib.tolist()):
            name = names[col]
            by_name[name] = by_name.get(name, 0.0) + value
        ranked = sorted(by_name.items(), key=lambda item: -abs(item[1]))[:top]
        return [(name, round(weight, 3)) for name, weight in ranked]
