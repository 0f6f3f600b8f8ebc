"""Profile scoring: the bio's text score combined with account signals (``--context profile``).

Spammers register accounts to put a link and an advert in their bio; genuine people write
"product manager" or nothing at all. A profile's score is::

    score = sigmoid(bias + w_text * logit(text_score) + sum_s w_s * signal_s)

``text_score`` is the bio's calibrated P(spam) from the bundle's ``profile`` context (the
``content`` context when the bundle has no profile context); an empty bio counts as
``logit = empty_bio_logit``. The signals (1 when they fire, listed in the output's ``signals``):

=====================  ==========================================================================
url_in_bio             the bio contains a link or a bare domain
contact_in_bio         the bio contains an e-mail address or a phone number
personal_url           the ``personal_url`` (or ``website``/``url``) field is set
bio_without_activity   a filled bio (``short_bio_words`` words or more) and ``comments_count`` 0
rare_language          the bio's language (detected, confidence >= 0.8, filled bio) differs from
                       the account's ``locale``, or is not one of ``site_languages`` when given
trusted_domain         the e-mail domain matches ``trusted_domains`` of the scoring (lowers)
verified               ``verified`` (or ``is_verified``/``confirmed``) is true (lowers)
=====================  ==========================================================================

Weights: learned by logistic regression when ``spamcli train --context profile`` gets labeled
profiles with account fields (:func:`fit_scoring`); otherwise :data:`DEFAULT_SCORING`. Either can be
overridden with ``--scoring FILE`` (JSON, or TOML on Python 3.11+), keys as in DEFAULT_SCORING.

**Short-bio guard.** A bio of fewer than ``short_bio_words`` words with no link or contact signal
(no url_in_bio, contact_in_bio or personal_url) is capped just below the ham threshold, whatever the
text model says: a text model trained mostly on spam bios has never seen "product manager", and
such a profile carries nothing a spammer would want. The output then lists ``short_bio``.

**Trust lists.** Records whose e-mail domain matches ``--trusted-domains`` or whose id is in
``--trusted-ids`` are reported as ham with score 0 and a ``reason``, without scoring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .errors import InputError, UsageError
from .moderation import truthy
from .records import Record, unwritable_field
from .router import HAM, ContextModel, Pipeline, Thresholds
from .scoring import (  # noqa: F401 - also this module's API, as before
    DEFAULT_SCORING,
    SIGNALS,
    DomainMatcher,
    ScoringConfig,
    read_list_file,
    read_scoring_file,
)
from .text import normalise

LINK_SIGNALS = ("url_in_bio", "contact_in_bio", "personal_url")
ACCOUNT_FIELDS = ("personal_url", "website", "comments_count", "email", "email_domain", "locale", "verified")
PERSONAL_URL_FIELDS = ("personal_url", "website", "url")
VERIFIED_FIELDS = ("verified", "is_verified", "confirmed")
_WORD_RE = re.compile(r"\w+")
_EPS = 1e-4


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


@dataclass
class TrustLists:
    """``--trusted-domains`` and ``--trusted-ids``: matching records are ham, with the reason."""

    domains: DomainMatcher = field(default_factory=lambda: DomainMatcher([]))
    ids: set[str] = field(default_factory=set)

    def reason(self, rec: Record) -> str | None:
        if self.ids and str(rec.id) in self.ids:
            return f"trusted id {rec.id}"
        pattern = self.domains.match(email_domain(rec.fields))
        return f"trusted e-mail domain ({pattern})" if pattern else None


# ---- signals ---------------------------------------------------------------------------------
def _field(fields: dict, names: tuple[str, ...]) -> object:
    lower = {str(k).lower(): v for k, v in fields.items()}
    return next((lower[n] for n in names if n in lower and lower[n] not in (None, "")), None)


def email_domain(fields: dict) -> str:
    value = _field(fields, ("email", "email_domain"))
    return str(value).rsplit("@", 1)[-1].strip().lower().strip(".") if value else ""


def count_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def profile_signals(
    rec: Record, lang: str, confidence: float, config: ScoringConfig, trusted: DomainMatcher | None = None
) -> list[str]:
    """The signals that fire for one profile (see module docstring), in :data:`SIGNALS` order."""
    bio = rec.text or ""
    fields = rec.fields
    norm = normalise(bio) if bio.strip() else ""
    filled = count_words(bio) >= config.short_bio_words
    fired = set()
    if "⟨url⟩" in norm:
        fired.add("url_in_bio")
    if "⟨email⟩" in norm or "⟨phone⟩" in norm:
        fired.add("contact_in_bio")
    if _field(fields, PERSONAL_URL_FIELDS) is not None:
        fired.add("personal_url")
    comments = _field(fields, ("comments_count",))
    if filled and comments is not None and str(comments).strip() in ("0", "0.0"):
        fired.add("bio_without_activity")
    if filled and lang and confidence >= 0.8:
        locale = str(_field(fields, ("locale",)) or "").lower().replace("_", "-").split("-")[0]
        if (locale and lang != locale) or (config.site_languages and lang not in config.site_languages):
            fired.add("rare_language")
    domain = email_domain(fields)
    if trusted is not None and domain and trusted.match(domain):
        fired.add("trusted_domain")
    if truthy(_field(fields, VERIFIED_FIELDS)):
        fired.add("verified")
    return [s for s in SIGNALS if s in fired]


def combine(config: ScoringConfig, text_score: float | None, signals: list[str]) -> float:
    """The profile score from the text score (None: empty bio) and the fired signals."""
    w = config.weights
    text_logit = config.empty_bio_logit if text_score is None else _logit(text_score)
    return _sigmoid(config.bias + w.get("text", 1.0) * text_logit + sum(w.get(s, 0.0) for s in signals))


def has_account_fields(records: Iterable[Record]) -> bool:
    return any(any(str(k).lower() in ACCOUNT_FIELDS for k in r.fields) for r in records)


# ---- scoring ---------------------------------------------------------------------------------
class ProfileScorer:
    """Scores profile records with a bundle's profile (else content) text model plus signals."""

    def __init__(
        self,
        bundle: Bundle,
        overrides: dict | None = None,
        trust: TrustLists | None = None,
        thresholds: Thresholds | None = None,
    ):
        self.text_model: ContextModel = bundle.contexts.get("profile") or bundle.context("content")
        self.pipeline = Pipeline(self.text_model)  # the bio's way to a text score, built at load
        self.config = ScoringConfig.from_dict(self.text_model.scoring, overrides or {})
        self.trust = trust or TrustLists()
        self.override = thresholds
        self._config_domains = DomainMatcher(self.config.trusted_domains)

    @property
    def text_context(self) -> str:
        return self.text_model.context

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds a profile is labeled at (those of the fallback text model's name)."""
        return self.thresholds_for("multi")

    def thresholds_for(self, model_name: str) -> Thresholds:
        return self.override or self.config.thresholds or self.text_model.thresholds_for(model_name)

    def combine(self, text_score: float | None, signals: list[str]) -> float:
        """The profile score from the text score (None: empty bio) and the fired signals."""
        return combine(self.config, text_score, signals)

    def score_records(self, records: list[Record], explain: int = 0) -> list[dict]:
        """Output dicts for a batch of profile records, in order (input fields passed through).

        ``explain=N`` adds what moved each score, in the profile score's log-odds: ``signal_weights``
        (each fired signal's weight), ``text_weight`` (``w_text * logit(text_score)``) and
        ``reasons``, the N bio words or word pairs that moved the text score most (their weight
        times ``w_text``), with ``lang_confidence``."""
        todo = [r for r in records if not r.error and r.text.strip() and self.trust.reason(r) is None]
        texts, langs = [r.text for r in todo], [r.lang for r in todo]
        verdicts = self.pipeline.score(texts, langs, explain=explain) if todo else []
        by_rec = {id(r): v for r, v in zip(todo, verdicts)}
        return [self._score_one(rec, by_rec.get(id(rec)), explain) for rec in records]

    def _explanation(self, verdict, signals: list[str]) -> dict:
        w = self.config.weights
        w_text = w.get("text", 1.0)
        text_logit = self.config.empty_bio_logit if verdict is None else _logit(verdict.score)
        return {
            "lang_confidence": 0.0 if verdict is None else verdict.lang_confidence,
            "bias": self.config.bias,
            "text_weight": round(w_text * text_logit, 3),
            "signal_weights": {s: w.get(s, 0.0) for s in signals if s != "short_bio"},
            "reasons": [{"token": tok, "weight": round(w_text * weight, 3)} for tok, weight in (verdict.reasons or [])]
            if verdict is not None
            else [],
        }

    def _score_one(self, rec: Record, verdict, explain: int = 0) -> dict:
        error = rec.error or unwritable_field(rec)  # every input field is echoed below
        if error:
            return {"id": rec.id, "error": error}
        reason = self.trust.reason(rec)
        if reason:
            return {"id": rec.id, "score": 0.0, "label": HAM, "signals": [], "reason": reason, **_extra(rec)}
        lang, conf, model = (verdict.lang, verdict.lang_confidence, verdict.model) if verdict else ("", 0.0, "")
        signals = profile_signals(rec, lang, conf, self.config, self._config_domains)
        score = self.combine(verdict.score if verdict else None, signals)
        thresholds = self.thresholds_for(model or "multi")
        if count_words(rec.text) < self.config.short_bio_words and not set(LINK_SIGNALS) & set(signals):
            score = min(score, max(0.0, thresholds.ham - _EPS))
            signals.append("short_bio")
        learned = verdict.learned if verdict else None  # the bio's own label, as moderators taught it
        item = {
            "id": rec.id,
            "score": round(score, 4),
            "label": learned or thresholds.label(score),
            "signals": signals,
            "text_score": None if verdict is None else round(verdict.score, 4),
            "lang": lang,
            "model": f"{self.text_context}/{model}" if model else None,
            **({"learned": learned} if learned else {}),
        }
        if explain:
            item.update(self._explanation(verdict, signals))
        return {**item, **_extra(rec, exclude=item)}

    needs_fields = True  # workers get whole records: the signals read the account fields

    def prepare(self) -> None:
        """As :meth:`spamcli.api.SpamFilter.prepare`."""
        self.pipeline.prepare()

    def classify_batches(
        self,
        records: Iterable[Record],
        explain: int = 0,
        max_batch: int = 1024,
        max_wait: float | None = 0.01,
        jobs: int = 1,
    ) -> Iterator[list[dict]]:
        """The same as :meth:`spamcli.api.SpamFilter.classify_batches`, for profiles."""
        from .stream import classify_batches

        yield from classify_batches(self, records, explain, max_batch, max_wait, jobs)


def load_profile_scorer(
    model: Path | Bundle | None = None,
    ham: float | None = None,
    spam: float | None = None,
    trusted_domains: Path | None = None,
    trusted_ids: Path | None = None,
    scoring: Path | None = None,
    max_fpr: float | None = None,
) -> ProfileScorer:
    """A :class:`ProfileScorer` for ``model`` (a directory, a loaded bundle, or None for the shipped
    model): ``trusted_domains``/``trusted_ids``, files of e-mail domains and account ids reported as
    ham; ``scoring``, a JSON/TOML file overriding signal weights; ``ham``/``spam``, thresholds
    overriding the scoring's where given; or ``max_fpr``, the false-positive budget (one of
    :data:`~spamcli.router.FP_BUDGETS`) whose profile spam threshold the scoring stores
    (``spam_at_fpr``, chosen on held-out profile scores when the model was built or trained)."""
    from .bundle import load_bundle
    from .router import check_fp_budget

    try:
        check_fp_budget(max_fpr, ham, spam)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    trust = TrustLists(
        domains=DomainMatcher(read_list_file(trusted_domains) if trusted_domains else []),
        ids=set(read_list_file(trusted_ids)) if trusted_ids else set(),
    )
    scorer = ProfileScorer(bundle, read_scoring_file(scoring) if scoring else None, trust)
    if max_fpr is not None:
        scorer.override = scorer.config.at_fp_budget(max_fpr, scorer.thresholds.ham)
    if ham is not None or spam is not None:
        base = scorer.thresholds
        scorer.override = Thresholds(ham=base.ham if ham is None else ham, spam=base.spam if spam is None else spam)
        if scorer.override.ham > scorer.override.spam:
            raise UsageError("--ham-threshold must not be above --spam-threshold")
    return scorer


def _extra(rec: Record, exclude: dict | None = None) -> dict:
    """The record's other input fields, passed through (scoring keys win on a name clash)."""
    skip = {"id", "score", "label", "signals", "reason", "error", *(exclude or {})}
    return {k: v for k, v in rec.fields.items() if k not in skip}


# ---- learning the weights ---------------------------------------------------------------------
def fit_scoring(
    text_scores: list[float | None], signals: list[list[str]], y: np.ndarray, config: ScoringConfig
) -> ScoringConfig:
    """Logistic regression of the labels on ``logit(text score)`` and the signals (balanced
    classes); thresholds, and the spam threshold per false-positive budget, chosen on its scores
    like the text model's. Returns a learned config."""
    from sklearn.linear_model import LogisticRegression

    from .training import TrainOptions, _choose_thresholds, _spam_at_fpr

    names = ["text", *SIGNALS]
    X = np.array(
        [
            [config.empty_bio_logit if t is None else _logit(t), *(1.0 if s in fired else 0.0 for s in SIGNALS)]
            for t, fired in zip(text_scores, signals)
        ]
    )
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    lr.fit(X, y)
    coef = lr.coef_.ravel()
    # a signal that never fired in the training data cannot be learned: it keeps its default weight
    fired = X.any(axis=0)
    weights = {n: round(float(c), 4) if fired[i] else config.weights[n] for i, (n, c) in enumerate(zip(names, coef))}
    learned = ScoringConfig.from_dict({**config.to_dict(), "weights": weights, "thresholds": None})
    learned.bias = round(float(lr.intercept_[0]), 4)
    learned.source = "learned"
    scores = np.array([_sigmoid(learned.bias + float(np.dot(coef, row))) for row in X])  # the fitted ones
    learned.thresholds = _choose_thresholds(y, scores, TrainOptions())
    learned.spam_at_fpr = _spam_at_fpr(y, scores)
    return learned


def train_profile(records: Iterable[Record], opts, progress=None):
    """Train the profile context: the bio text model (as :func:`~spamcli.training.train_context`)
    and, from out-of-fold text scores (3 folds), the profile scoring: when the labeled records carry
    account fields, signal weights by logistic regression (:func:`fit_scoring`); otherwise the
    default weights, with the profile score's spam threshold per false-positive budget chosen on
    those out-of-fold profile scores (``spam_at_fpr``, for ``--max-fpr``). Returns
    ``(context_model, train_report)``."""
    from dataclasses import replace

    from .training import _spam_at_fpr, train_context

    records = list(records)
    ctx, report = train_context(records, opts, progress)
    usable = [r for r in records if not r.error and r.label is not None]
    y = np.array([r.label for r in usable], dtype=np.int64)
    if min(int(y.sum()), int(len(y) - y.sum())) < 10:
        return ctx, report
    learn = has_account_fields(usable)
    if progress:
        progress(
            "learning signal weights (3 folds)" if learn else "profile thresholds per false-positive budget (3 folds)"
        )
    fold = np.arange(len(usable)) % 3
    text_scores: list[float | None] = [None] * len(usable)
    langs: list[tuple[str, float]] = [("", 0.0)] * len(usable)
    for k in range(3):
        train_part = [r for r, f in zip(usable, fold) if f != k]
        test_idx = np.flatnonzero(fold == k)
        try:
            part_ctx, _ = train_context(train_part, replace(opts, folds=3))
        except InputError:
            return ctx, report
        verdicts = part_ctx.score([usable[i].text for i in test_idx], [usable[i].lang for i in test_idx])
        for i, verdict in zip(test_idx, verdicts):
            text_scores[i] = verdict.score
            langs[i] = (verdict.lang, verdict.lang_confidence)
    config = ScoringConfig.from_dict({})
    signals = [profile_signals(r, lang, conf, config) for r, (lang, conf) in zip(usable, langs)]
    if not learn:
        scores = [combine(config, t if r.text.strip() else None, s) for r, t, s in zip(usable, text_scores, signals)]
        ctx.scoring = {"source": "default", "spam_at_fpr": _spam_at_fpr(y, np.array(scores))}
        return ctx, report
    ctx.scoring = fit_scoring(text_scores, signals, y, config).to_dict()
    report.warnings.append(f"profile signal weights learned from {len(usable)} labeled profiles")
    return ctx, report
