"""Classification metrics on numpy alone: ROC-AUC, confusion counts, thresholds, calibration.

Labels are 1 = spam, 0 = ham; scores are P(spam). Kept free of scikit-learn so ``evaluate`` and
training's threshold choice share one small, tested implementation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when only one class is present."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int((y == 1).sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass
class Confusion:
    """Counts at one decision rule; ``spam`` predicted means label == spam (unsure counts as not)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def fpr(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None when ``n`` is 0.

    A rate measured on few examples is uncertain: 0 false positives among 196 genuine comments is
    compatible with a true rate of up to 1.9%. The interval says how far a measured recall or
    false-positive rate can be trusted; unlike the normal approximation it stays inside [0, 1] and is
    sound at 0 and n successes."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), not {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else float(max(0.0, centre - half))
    high = 1.0 if successes == n else float(min(1.0, centre + half))
    return low, high


def confusion(y: np.ndarray, predicted_spam: np.ndarray) -> Confusion:
    y = np.asarray(y).astype(bool)
    p = np.asarray(predicted_spam).astype(bool)
    return Confusion(tp=int((y & p).sum()), fp=int((~y & p).sum()), tn=int((~y & ~p).sum()), fn=int((y & ~p).sum()))


def spam_threshold_for_fpr(y: np.ndarray, scores: np.ndarray, max_fpr: float, floor: float = 0.5) -> float:
    """The lowest threshold >= ``floor`` whose false-positive rate on the ham is <= ``max_fpr``."""
    ham = np.sort(np.asarray(scores)[np.asarray(y) == 0])
    if len(ham) == 0:
        return floor
    allowed = int(np.floor(max_fpr * len(ham)))  # how many ham may score >= threshold
    if allowed >= len(ham):
        return floor
    # threshold just above the (allowed+1)-th highest ham score
    kth = ham[len(ham) - allowed - 1]
    return float(max(floor, np.nextafter(kth, np.inf)))


def threshold_for_precision(y: np.ndarray, scores: np.ndarray, target: float) -> dict | None:
    """The lowest threshold whose precision is >= ``target`` (maximising recall); None if none."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    tp = np.cumsum(t == 1)
    fp = np.cumsum(t == 0)
    # only cut between distinct scores
    last_of_run = np.r_[s[1:] != s[:-1], True]
    precision = tp / np.maximum(tp + fp, 1)
    ok = last_of_run & (precision >= target)
    if not ok.any():
        return None
    k = int(np.flatnonzero(ok)[-1])
    n_pos = max(int((y == 1).sum()), 1)
    n_neg = max(int((y == 0).sum()), 1)
    return {
        "threshold": float(s[k]),
        "precision": float(precision[k]),
        "recall": float(tp[k] / n_pos),
        "fpr": float(fp[k] / n_neg),
    }


def recall_at_fpr(y: np.ndarray, scores: np.ndarray, max_fpr: float) -> float | None:
    """Spam recall at the strictest threshold that keeps the false-positive rate <= max_fpr."""
    y = np.asarray(y)
    if (y == 1).sum() == 0 or (y == 0).sum() == 0:
        return None
    threshold = spam_threshold_for_fpr(y, scores, max_fpr, floor=-np.inf)
    return float((np.asarray(scores)[y == 1] >= threshold).mean())


def brier(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((np.asarray(scores, dtype=np.float64) - np.asarray(y)) ** 2))


def reliability(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[dict]:
    """Per score bin: count, mean score and observed spam fraction (a reliability table)."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "count": int(mask.sum()),
                    "mean_score": round(float(scores[mask].mean()), 4),
                    "spam_fraction": round(float(y[mask].mean()), 4),
                }
            )
    return rows


@dataclass
class Report:
    """Metrics of one group of records (all, or one language)."""

    n: int
    n_spam: int
    n_ham: int
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    auc: float | None
    unsure_rate: float
    confusion: dict
    recall_ci95: tuple[float, float] | None = None  # Wilson intervals (see wilson_interval)
    fpr_ci95: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        def rounded(v):
            if isinstance(v, float):
                return round(v, 4)
            if isinstance(v, tuple):
                return [round(x, 4) for x in v]
            return v

        return {k: rounded(v) for k, v in asdict(self).items()}


def report(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Report:
    """Metrics where ``labels`` (spam/unsure/ham) is the decision; unsure counts as not flagged."""
    y = np.asarray(y)
    flagged = np.array([lab == "spam" for lab in labels], dtype=bool)
    conf = confusion(y, flagged)
    return Report(
        n=len(y),
        n_spam=int((y == 1).sum()),
        n_ham=int((y == 0).sum()),
        precision=conf.precision,
        recall=conf.recall,
        f1=conf.f1,
        fpr=conf.fpr,
        auc=roc_auc(y, scores),
        unsure_rate=float(np.mean([lab == "unsure" for lab in labels])) if labels else 0.0,
        confusion={"tp": conf.tp, "fp": conf.fp, "tn": conf.tn, "fn": conf.fn},
        recall_ci95=wilson_interval(conf.tp, conf.tp + conf.fn),
        fpr_ci95=wilson_interval(conf.fp, conf.fp + conf.tn),
    )
