"""Measuring a model on labeled data: overall and per language, with threshold advice.

:func:`evaluate_model` scores labeled records with a :class:`~spamcli.api.SpamFilter`;
:func:`cross_validate` instead trains a configuration K times on the file itself and scores each
held-out fold (grouped so duplicates stay on one side). Both return an :class:`Evaluation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .metrics import Report, brier, recall_at_fpr, reliability, report, threshold_for_precision
from .records import Record
from .router import Thresholds


@dataclass
class ScoredExample:
    id: object
    text: str
    label: int
    score: float
    decision: str
    lang: str
    model: str


@dataclass
class Evaluation:
    overall: Report
    by_language: dict[str, Report]
    thresholds: Thresholds
    recommended: dict | None
    target_precision: float
    brier: float
    recall_at_fpr: dict[str, float | None]
    reliability: list[dict]
    skipped: int
    false_positives: list[ScoredExample] = field(default_factory=list)
    false_negatives: list[ScoredExample] = field(default_factory=list)

    def to_dict(self) -> dict:
        def example(e: ScoredExample) -> dict:
            return {"id": e.id, "score": round(e.score, 4), "lang": e.lang, "model": e.model, "text": e.text[:300]}

        return {
            "overall": self.overall.to_dict(),
            "by_language": {k: v.to_dict() for k, v in self.by_language.items()},
            "thresholds": {"ham": self.thresholds.ham, "spam": self.thresholds.spam},
            "recommended_spam_threshold": self.recommended,
            "target_precision": self.target_precision,
            "brier": round(self.brier, 4),
            "recall_at_fpr": {k: (None if v is None else round(v, 4)) for k, v in self.recall_at_fpr.items()},
            "reliability": self.reliability,
            "skipped_records": self.skipped,
            "false_positives": [example(e) for e in self.false_positives],
            "false_negatives": [example(e) for e in self.false_negatives],
        }


def summarise(
    examples: list[ScoredExample],
    thresholds: Thresholds,
    target_precision: float = 0.99,
    skipped: int = 0,
    errors: int = 0,
) -> Evaluation:
    """Metrics over scored examples (shared by evaluate and cross-validation)."""
    if not examples:
        raise InputError("no labeled records to evaluate")
    y = np.array([e.label for e in examples])
    scores = np.array([e.score for e in examples])
    decisions = [e.decision for e in examples]
    by_lang: dict[str, Report] = {}
    langs = np.array([e.lang or "und" for e in examples], dtype=object)
    for lang in sorted(set(langs), key=lambda code: -int((langs == code).sum())):
        mask = langs == lang
        by_lang[str(lang)] = report(y[mask], scores[mask], [d for d, m in zip(decisions, mask) if m])
    fps = sorted((e for e in examples if e.label == 0), key=lambda e: -e.score)
    fns = sorted((e for e in examples if e.label == 1), key=lambda e: e.score)
    return Evaluation(
        overall=report(y, scores, decisions),
        by_language=by_lang,
        thresholds=thresholds,
        recommended=threshold_for_precision(y, scores, target_precision),
        target_precision=target_precision,
        brier=brier(y, scores),
        recall_at_fpr={f"{f:g}": recall_at_fpr(y, scores, f) for f in (0.001, 0.005, 0.01)},
        reliability=reliability(y, scores),
        skipped=skipped,
        false_positives=[e for e in fps if e.decision == "spam"][:errors] if errors else [],
        false_negatives=[e for e in fns if e.decision != "spam"][:errors] if errors else [],
    )


def evaluate_model(
    spam_filter,
    records: Iterable[Record],
    target_precision: float = 0.99,
    errors: int = 0,
    batch_size: int = 2048,
) -> Evaluation:
    """Score labeled records with a loaded SpamFilter and measure it."""
    examples: list[ScoredExample] = []
    skipped = 0
    batch: list[Record] = []

    def flush() -> None:
        verdicts = spam_filter.score([r.text for r in batch], [r.lang for r in batch])
        for rec, v in zip(batch, verdicts):
            examples.append(ScoredExample(rec.id, rec.text, int(rec.label), v.score, v.label, v.lang, v.model))
        batch.clear()

    for rec in records:
        if rec.error or rec.label is None:
            skipped += 1
            continue
        batch.append(rec)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summarise(examples, spam_filter.thresholds, target_precision, skipped, errors)


def cross_validate(
    records: Iterable[Record],
    options,
    folds: int = 5,
    target_precision: float = 0.99,
    errors: int = 0,
    progress=None,
) -> Evaluation:
    """Train ``options`` (a TrainOptions) on K-1 folds and score the held-out fold, K times."""
    from .training import _fold_ids, clean_records, train_context

    if folds < 2:
        raise InputError("--cv needs at least 2 folds")
    kept, stats = clean_records(records, dedupe=options.dedupe)
    if not kept:
        raise InputError("no usable labeled records")
    fold_of = _fold_ids([r.text for r in kept], folds, options.seed + 1)
    examples: list[ScoredExample] = []
    thresholds = Thresholds()
    for k in range(folds):
        train = [r for r, f in zip(kept, fold_of) if f != k]
        test = [r for r, f in zip(kept, fold_of) if f == k]
        if not test:
            continue
        if progress:
            progress(f"fold {k + 1}/{folds}: training on {len(train)}, testing on {len(test)}")
        ctx, _ = train_context(train, options)
        thresholds = ctx.thresholds
        verdicts = ctx.score([r.text for r in test], [r.lang for r in test])
        for rec, v in zip(test, verdicts):
            examples.append(ScoredExample(rec.id, rec.text, int(rec.label), v.score, v.label, v.lang, v.model))
    return summarise(examples, thresholds, target_precision, stats.get("unreadable", 0), errors)
