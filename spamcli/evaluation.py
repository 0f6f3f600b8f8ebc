"""Measuring a model on labeled data: overall and per language, with threshold advice.

:func:`evaluate_model` scores labeled records with a :class:`~spamcli.api.SpamFilter` (profiles
with a :class:`~spamcli.profiles.ProfileScorer`, account signals included);
:func:`cross_validate` instead trains a configuration K times on the file itself and scores each
held-out fold (grouped so duplicates stay on one side). Both return an :class:`Evaluation`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError
from .metrics import Report, brier, recall_at_fpr, reliability, report, threshold_for_precision
from .records import ReadOptions, Record, Source
from .router import Thresholds

# A language is pooled into the tables' "other" row below this many messages or this share.
OTHER_MIN_COUNT = 10
OTHER_MIN_SHARE = 0.01


@dataclass
class ScoredExample:
    """One misclassified record kept for the report (only the worst ``errors`` are kept)."""

    id: object
    text: str
    label: int
    score: float
    decision: str
    lang: str
    model: str


class ScoreLog:
    """What evaluation keeps of each scored record: label, score, decision and language.

    Texts are not kept (evaluating a large file must not hold it in memory), except for the
    ``errors`` worst false positives and false negatives, kept in bounded heaps.
    """

    def __init__(self, errors: int = 0):
        self.errors = errors
        self.labels: list[int] = []
        self.scores: list[float] = []
        self.decisions: list[str] = []
        self.langs: list[str] = []
        self.learned = 0  # records the model was taught (spamcli learn): labelled by the moderators
        self._worst_fp: list[tuple] = []  # min-heap on score: the root is the mildest kept
        self._worst_fn: list[tuple] = []  # min-heap on -score
        self._seq = 0

    def add(self, rec_id, text: str, label: int, verdict) -> None:
        self.labels.append(label)
        self.scores.append(verdict.score)
        self.decisions.append(verdict.label)
        self.langs.append(verdict.lang or "und")
        self.learned += verdict.learned is not None
        if not self.errors:
            return
        if label == 0 and verdict.label == "spam":
            heap, key = self._worst_fp, verdict.score
        elif label == 1 and verdict.label != "spam":
            heap, key = self._worst_fn, -verdict.score
        else:
            return
        self._seq += 1
        if len(heap) < self.errors or key > heap[0][0]:
            v = verdict
            example = ScoredExample(rec_id, text[:300], label, v.score, v.label, v.lang, v.model)
            item = (key, -self._seq, example)
            if len(heap) < self.errors:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)

    def worst(self, which: str) -> list[ScoredExample]:
        heap = self._worst_fp if which == "fp" else self._worst_fn
        return [item[2] for item in sorted(heap, key=lambda item: (-item[0], -item[1]))]


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
    # Languages with a handful of messages (mostly misdetected short texts), pooled for tables.
    other_languages: list[str] = field(default_factory=list)
    other: Report | None = None
    # Records that are messages this model was taught (spamcli learn): their label is the
    # moderators' own and the site layer counted them, so they flatter every figure.
    learned: int = 0

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
            "other_languages": self.other_languages,
            "learned_records": self.learned,
            "false_positives": [example(e) for e in self.false_positives],
            "false_negatives": [example(e) for e in self.false_negatives],
        }


def summarise(
    log: ScoreLog,
    thresholds: Thresholds,
    target_precision: float = 0.99,
    skipped: int = 0,
) -> Evaluation:
    """Metrics over a log of scored records (shared by evaluate and cross-validation)."""
    if not log.labels:
        raise InputError("no labeled records to evaluate")
    y = np.array(log.labels)
    scores = np.array(log.scores)
    decisions = log.decisions
    by_lang: dict[str, Report] = {}
    langs = np.array(log.langs, dtype=object)
    for lang in sorted(set(langs), key=lambda code: (-int((langs == code).sum()), str(code))):  # ties: by code
        mask = langs == lang
        by_lang[str(lang)] = report(y[mask], scores[mask], [d for d, m in zip(decisions, mask) if m])
    few = max(OTHER_MIN_COUNT, OTHER_MIN_SHARE * len(y))
    other_langs = [lang for lang, rep in by_lang.items() if rep.n < few]
    other = None
    if len(other_langs) >= 2 or (other_langs and len(other_langs) < len(by_lang)):
        mask = np.isin(langs, other_langs)
        other = report(y[mask], scores[mask], [d for d, m in zip(decisions, mask) if m])
    else:
        other_langs = []
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
        false_positives=log.worst("fp"),
        false_negatives=log.worst("fn"),
        other_languages=other_langs,
        other=other,
        learned=log.learned,
    )


@dataclass
class ProfileVerdict:
    """What the score log reads of a scored profile (as of a message's Verdict)."""

    score: float
    label: str
    lang: str
    model: str
    learned: str | None = None


def _verdicts(scorer, batch: list[Record]) -> list:
    """The verdict of each record of ``batch`` (None: it could not be scored), by a SpamFilter or,
    with the whole record for its account fields, a ProfileScorer."""
    if not hasattr(scorer, "score_records"):
        return scorer.score([r.text for r in batch], [r.lang for r in batch])
    items = scorer.score_records(batch)
    return [
        None
        if "error" in x
        else ProfileVerdict(x["score"], x["label"], x.get("lang") or "", x.get("model") or "", x.get("learned"))
        for x in items
    ]


def evaluate_model(
    spam_filter,
    records: Iterable[Record],
    target_precision: float = 0.99,
    errors: int = 0,
    batch_size: int = 2048,
) -> Evaluation:
    """Score labeled records with a loaded SpamFilter (or ProfileScorer) and measure it."""
    log = ScoreLog(errors)
    skipped = 0
    batch: list[Record] = []

    def flush() -> None:
        nonlocal skipped
        for rec, v in zip(batch, _verdicts(spam_filter, batch)):
            if v is None:
                skipped += 1
            else:
                log.add(rec.id, rec.text, int(rec.label), v)
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
    return summarise(log, spam_filter.thresholds, target_precision, skipped)


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
    log = ScoreLog(errors)
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
            log.add(rec.id, rec.text, int(rec.label), v)
    return summarise(log, thresholds, target_precision, stats.get("unreadable", 0))


def table_groups(result: Evaluation) -> list[tuple[str, Report]]:
    """Rows for a human-readable table: all, each language with enough messages, then ``other``."""
    rows = [("all", result.overall)]
    rows += [(lang, rep) for lang, rep in result.by_language.items() if lang not in result.other_languages]
    if result.other is not None:
        rows.append((f"other ({len(result.other_languages)})", result.other))
    return rows


def evaluate_inputs(
    inputs: Iterable[Source],
    opts: ReadOptions | None = None,
    model: Path | None = None,
    context: str = "content",
    cv: int = 0,
    target_precision: float = 0.99,
    errors: int = 0,
    ham: float | None = None,
    spam: float | None = None,
    max_fpr: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """What ``spamcli evaluate`` does: the labeled records of ``inputs`` scored by ``model`` (at
    the thresholds of :func:`~spamcli.api.load_filter`), or with ``cv`` folds cross-validated
    training of the default configuration on them. ``errors``: the worst false positives and
    negatives kept."""
    import itertools

    from .records import read_records

    if cv < 0 or cv == 1:
        raise UsageError("--cv needs at least 2 folds (0 evaluates --model instead)")
    if cv and (max_fpr is not None or spam is not None or ham is not None):
        raise UsageError("--max-fpr and --spam/--ham-threshold apply to --model, not to --cv")
    opts = replace(opts or ReadOptions(), need_label=True, allow_empty_text=context == "profile" and not cv)
    records = itertools.chain.from_iterable(read_records(p, opts) for p in inputs)
    if cv:
        from .training import TrainOptions

        return cross_validate(
            records,
            TrainOptions(context=context),
            folds=cv,
            target_precision=target_precision,
            errors=errors,
            progress=progress,
        )
    from .classifying import load_scorer

    # profiles are scored as classify scores them: the bio's text score and the account signals
    scorer = load_scorer(model, context, ham, spam, max_fpr)
    return evaluate_model(scorer, records, target_precision=target_precision, errors=errors)
