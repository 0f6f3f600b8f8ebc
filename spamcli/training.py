"""Training a context model from labeled records.

The way: clean (drop unreadable records and duplicates) -> detect languages -> hash features ->
out-of-fold scores for the multilingual fallback and for each language with enough data ->
keep a language's own model only where it beats the fallback on that language's held-out rows ->
Platt calibration and spam/ham thresholds from the out-of-fold scores -> final models on all data.

Out-of-fold means every training message is scored by a model that did not see it (K folds,
grouped so that duplicates share a fold), so calibration and thresholds are chosen on held-out data.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import InputError
from .metrics import roc_auc, spam_threshold_for_fpr
from .model import NaiveBayesModel, fit_platt, quiet_convergence
from .records import Record
from .router import FALLBACK, FP_BUDGETS, ContextModel, Thresholds, fpr_key
from .stream import usable_cpus
from .text import FeatureSettings, SparseRows, Vectoriser, normalise


@dataclass
class TrainOptions:
    context: str = "content"
    settings: FeatureSettings = field(default_factory=FeatureSettings)
    alpha: float = 0.1
    kind: str = "nblr"  # "nb": Naive Bayes log-odds only; "nblr": NB-weighted logistic regression
    C: float = 30.0  # inverse regularisation of the regression (nblr)
    min_per_class: int = 30
    folds: int = 4
    max_fpr: float = 0.005  # false-positive rate allowed at the spam threshold (held-out)
    max_missed: float = 0.10  # share of spam allowed to fall below the ham threshold
    min_lang_confidence: float = 0.5
    lang_backend: str = "fasttext"
    dedupe: bool = True
    seed: int = 13
    # A field naming each record's domain/source (e.g. "sms", "comments"): the regression then gives
    # every (domain, class) the same total weight, so a small domain is not drowned by a big one.
    domain_field: str | None = None
    unseen_language_threshold: float = 0.97
    # A field naming each record's community (a forum, a video's comments, a data set). With it,
    # the default spam thresholds are also fit for communities the model has never seen: the
    # fallback is scored with each community left out in turn, and the spam cut must keep the
    # median community's false-positive rate at or below ``cold_max_fpr`` (see ``cold_start_cut``).
    source_field: str | None = None
    cold_max_fpr: float = 0.02
    jobs: int | None = None  # threads for the fits (None: every CPU this process may use)
    # The regression, calibration and thresholds use at most this many clean records, a uniform random
    # sample of a bigger input, so that memory stays bounded (hashed rows take about 3.5 KB each; see
    # benchmarks/README.md); the Naive Bayes counts of the final models still take every record. None: all.
    max_rows: int | None = 200_000


@dataclass
class LanguageRow:
    """One line of the training summary table."""

    lang: str
    spam: int
    ham: int
    own_model: bool
    reason: str
    auc_own: float | None = None
    auc_fallback: float | None = None


@dataclass
class TrainReport:
    records_read: int
    unreadable: int
    duplicates: int
    conflicting: int
    spam: int
    ham: int
    languages: list[LanguageRow]
    thresholds: Thresholds
    auc_out_of_fold: float | None
    warnings: list[str]
    cold_start: dict | None = None  # thresholds chosen with whole communities left out (source_field)

    def to_dict(self) -> dict:
        return {
            "records_read": self.records_read,
            "unreadable": self.unreadable,
            "duplicates_dropped": self.duplicates,
            "conflicting_labels_dropped": self.conflicting,
            "spam": self.spam,
            "ham": self.ham,
            "auc_out_of_fold": None if self.auc_out_of_fold is None else round(self.auc_out_of_fold, 4),
            "languages": [
                {
                    "lang": r.lang,
                    "spam": r.spam,
                    "ham": r.ham,
                    "own_model": r.own_model,
                    "reason": r.reason,
                    "auc_own": None if r.auc_own is None else round(r.auc_own, 4),
                    "auc_fallback": None if r.auc_fallback is None else round(r.auc_fallback, 4),
                }
                for r in self.languages
            ],
            "warnings": self.warnings,
            **({"cold_start": self.cold_start} if self.cold_start else {}),
        }


@lru_cache(maxsize=1 << 18)
def _group_key(text: str) -> int:
    """Duplicates and near-exact duplicates (same normalised text) share a key, hence a fold.
    Cached: cleaning, conflict removal and fold assignment ask for the same texts."""
    return zlib.crc32(normalise(text).encode("utf-8"))


def clean_records(
    records: Iterable[Record],
    dedupe: bool = True,
    max_rows: int | None = None,
    seed: int = 13,
    sink: _AllCounts | None = None,
) -> tuple[list[Record], dict]:
    """Drop unreadable records, exact/normalised duplicates, and texts labeled both ways.

    ``max_rows``: keep at most this many (a uniform random sample of the clean records, seeded,
    by reservoir sampling), so an input of any length trains in bounded memory; duplicates are
    still found over the whole input (one small number per distinct text). ``stats["clean"]``
    counts the clean records before sampling. ``sink``: once there are more than ``max_rows``
    clean records, told of every one (``add``), sampled or not; and of the first record showing
    that a text is labeled both ways (``drop``, with the label the text was first counted under)."""
    import random

    stats: Counter[str] = Counter()
    first_error = ""
    by_key: dict[int, int] = {}  # text key -> label
    conflicts: set[int] = set()
    kept: list[Record] = []
    clean = 0
    draw = random.Random(seed)
    for rec in records:
        stats["read"] += 1
        if rec.error or rec.label is None:
            stats["unreadable"] += 1
            first_error = first_error or f"record {rec.id}: {rec.error or 'no label'}"
            continue
        if dedupe:
            key = _group_key(rec.text)
            seen = by_key.get(key)
            if seen is not None:
                stats["duplicates"] += 1
                if seen != rec.label and key not in conflicts:
                    conflicts.add(key)
                    if sink is not None:
                        sink.drop(rec, seen, key)
                continue
            by_key[key] = rec.label
        clean += 1
        if sink is not None and max_rows is not None and clean > max_rows:
            if clean == max_rows + 1:  # the sample is full: from now on the counts take every record
                for kept_rec in kept:
                    sink.add(kept_rec, _group_key(kept_rec.text) if dedupe else 0)
            sink.add(rec, key if dedupe else 0)
        if max_rows is None or len(kept) < max_rows:
            kept.append(rec)
        else:  # Algorithm R: the record replaces a kept one with probability max_rows / clean
            slot = draw.randrange(clean)
            if slot < max_rows:
                kept[slot] = rec
    if conflicts:
        before = len(kept)
        kept = [r for r in kept if _group_key(r.text) not in conflicts]
        stats["conflicting"] = before - len(kept)
    return kept, {**stats, "clean": clean, "first_error": first_error}


def _languages(detected: list[tuple[str, float]], min_confidence: float) -> list[str]:
    """Each detected language, or ``und`` where detection was not sure enough to train on."""
    return [lang if conf >= min_confidence else "und" for lang, conf in detected]


class _AllCounts:
    """Naive Bayes counts of every clean record, per language and class, while the records stream
    by: when the regression trains on a sample (``max_rows``), the final models still count
    everything. Records are language-detected and hashed ``chunk`` at a time and their counts
    added to one sparse matrix (row ``2 * language + class``), so memory grows with the distinct
    (language, class, column) triples, not with the records (plus 12 bytes a record: its text key
    and language). A text labeled both ways is taken out again at the end (``drop``), as the
    in-memory path drops it: under its first copy's language and label, with the features of the
    copy that showed the conflict, the same features as the first's, as both normalise to the same
    text (counts are kept at or above 0 should a 32-bit text key collide)."""

    def __init__(self, opts: TrainOptions, detect, transform, chunk: int = 20_000):
        self._opts, self._detect, self._transform, self._chunk = opts, detect, transform, chunk
        self._pending: list[tuple[str, str | None, int, int]] = []  # text, language hint, label, text key
        self._dropped: list[tuple[str, int, int]] = []  # text, label first counted under, text key
        self._keys: list[np.ndarray] = []  # the text key and language of every record counted
        self._langs: list[np.ndarray] = []
        self.languages: dict[str, int] = {}
        self.counts = None  # scipy CSR, shape (2 * languages, n_features)
        self.docs: Counter[tuple[int, int]] = Counter()  # (language, class) -> documents
        self.records = 0

    def add(self, rec: Record, key: int) -> None:
        self._pending.append((rec.text, rec.lang, int(rec.label), key))
        if len(self._pending) >= self._chunk:
            self._flush()

    def drop(self, rec: Record, label: int, key: int) -> None:
        self._dropped.append((rec.text, int(label), key))

    def finish(self) -> bool:
        """Counts everything pending and takes the dropped texts out; whether any record was
        counted (the sample was full)."""
        if not (self._pending or self.records):  # nothing added: the sample was never full
            return False
        self._flush()
        if self._dropped:
            keys, langs = np.concatenate(self._keys), np.concatenate(self._langs)
            order = np.argsort(keys, kind="stable")
            for start in range(0, len(self._dropped), self._chunk):
                part = self._dropped[start : start + self._chunk]
                texts, labels, dropped_keys = zip(*part)
                where = order[np.searchsorted(keys, np.asarray(dropped_keys, dtype=np.int64), sorter=order)]
                self._add(list(texts), langs[where], np.asarray(labels), -1.0)
            self.counts.data = np.maximum(self.counts.data, 0.0)
            self.counts.eliminate_zeros()
            self._dropped = []
        return True

    def _flush(self) -> None:
        if not self._pending:
            return
        texts, hints, labels, keys = zip(*self._pending)
        self._pending = []
        detected = self._detect(list(texts), list(hints))
        langs = _languages(detected, self._opts.min_lang_confidence)
        ids = np.array([self.languages.setdefault(lang, len(self.languages)) for lang in langs], dtype=np.int32)
        self._keys.append(np.asarray(keys, dtype=np.int64))
        self._langs.append(ids)
        self._add(list(texts), ids, np.asarray(labels), 1.0)

    def _add(self, texts: list[str], ids: np.ndarray, labels: np.ndarray, sign: float) -> None:
        import scipy.sparse as sp

        for cell, n in Counter(zip(ids.tolist(), labels.tolist())).items():
            self.docs[cell] += sign * n
        self.records += int(sign) * len(texts)
        X = self._transform(texts, self._opts.settings).to_scipy()
        groups = ids.astype(np.int64) * 2 + labels
        shape = (2 * len(self.languages), X.shape[0])
        part = (sp.csr_matrix((np.full(len(texts), sign), (groups, np.arange(len(texts)))), shape=shape) @ X).tocsr()
        if self.counts is None:
            self.counts = part
        else:
            if self.counts.shape[0] < part.shape[0]:
                self.counts.resize(part.shape)
            self.counts = self.counts + part

    def of(self, lang: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(feature counts (2, n_features), documents per class) of a language, or of all (None)."""
        if lang is None:
            rows = [np.asarray(self.counts[c::2].sum(axis=0), dtype=np.float64).ravel() for c in (0, 1)]
            docs = [sum(v for (_, label), v in self.docs.items() if label == c) for c in (0, 1)]
            return np.vstack(rows), np.array(docs, dtype=np.float64)
        i = self.languages[lang]
        docs = [self.docs[i, 0], self.docs[i, 1]]
        return self.counts[2 * i : 2 * i + 2].toarray(), np.array(docs, dtype=np.float64)


def _fold_ids(texts: list[str], folds: int, seed: int) -> np.ndarray:
    keys = np.array([_group_key(t) for t in texts], dtype=np.int64)
    return (keys * 2654435761 + seed) % (2**32) % folds


MIN_PER_CLASS_FOR_REGRESSION = 50


def balanced_weights(y: np.ndarray, domains: np.ndarray | None) -> np.ndarray | None:
    """Sample weights giving each (domain, class) cell the same total weight (mean weight 1)."""
    if domains is None:
        return None
    w = np.ones(len(y))
    for domain in set(domains.tolist()):
        for label in (0, 1):
            cell = (domains == domain) & (y == label)
            if cell.any():
                w[cell] = 1.0 / cell.sum()
    return w * (len(y) / w.sum())


def _fit(
    X,
    y: np.ndarray,
    opts: TrainOptions,
    domains: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    counts: tuple[np.ndarray, np.ndarray] | None = None,
) -> NaiveBayesModel:
    """Fit one model on ``X`` (on its ``rows``, which ``y`` and ``domains`` then follow), with the
    NB ``counts`` given or else of those rows; below 50 examples of a class the regression
    overfits, so plain NB is used (Naive Bayes is the better learner on very small data)."""
    kind = opts.kind
    if min(int(y.sum()), int(len(y) - y.sum())) < MIN_PER_CLASS_FOR_REGRESSION:
        kind = "nb"
    weights = balanced_weights(y, domains)
    return NaiveBayesModel.fit(
        X, y, alpha=opts.alpha, kind=kind, C=opts.C, sample_weight=weights, rows=rows, counts=counts
    )


class _FitPool:
    """The model fits of one training run, on a pool of threads: liblinear, the NB counting and the
    C feature code release the GIL, so every core works. Fits are submitted as soon as their data
    are known (the largest first), so no core idles at a barrier between the fallback, its folds,
    the left-out communities and the languages; each result is the same whatever the order."""

    def __init__(self, jobs: int):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="spamcli-fit")

    def __enter__(self) -> _FitPool:
        self._quiet = quiet_convergence()  # for the threads too (see quiet_convergence)
        self._quiet.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._quiet.__exit__(*exc)

    def fit(self, X, y: np.ndarray, opts: TrainOptions, domains: np.ndarray | None, rows=None, counts=None):
        """A future of :func:`_fit` on ``X`` (on its ``rows``, with ``counts``)."""
        return self._pool.submit(_fit, X, y, opts, domains, rows, counts)

    def held_out(
        self,
        X,
        y: np.ndarray,
        groups: np.ndarray,
        opts: TrainOptions,
        domains: np.ndarray | None,
        wanted,
        rows: np.ndarray | None = None,
    ) -> Callable[[], np.ndarray]:
        """Submit the fits giving the decision value of every row of X (of its ``rows``, which
        ``y``, ``groups`` and ``domains`` then follow) by a model fitted without its group; returns
        the function that waits for them (NaN for groups not ``wanted`` or whose remainder lacks a
        class). Fits read the rows in place: no fold is copied."""
        rows = np.arange(X.shape[0]) if rows is None else rows

        def one(test: np.ndarray) -> np.ndarray:
            train = ~test
            model = _fit(X, y[train], opts, None if domains is None else domains[train], rows[train])
            return _decisions(model, X, rows[test])

        tests = [groups == g for g in wanted]
        tests = [t for t in tests if t.any() and len(set(y[~t].tolist())) == 2]
        futures = [(t, self._pool.submit(one, t)) for t in tests]

        def gather() -> np.ndarray:
            z = np.full(len(y), np.nan)
            for test, future in futures:
                z[test] = future.result()
            return z

        return gather


def _decisions(model: NaiveBayesModel, X, rows: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """``model``'s decision values of ``rows`` of X, copying at most ``chunk`` rows at a time."""
    out = np.empty(len(rows))
    for start in range(0, len(rows), chunk):
        part = X[rows[start : start + chunk]]
        rows_part = SparseRows(part.indptr, part.indices, part.data, X.shape[1])
        out[start : start + chunk] = model.decision_function(rows_part)
    return out


def cold_start_cut(
    y: np.ndarray,
    scores: np.ndarray,
    sources: np.ndarray,
    max_fpr: float,
    raised: np.ndarray | None = None,
    raised_cut: float = 0.97,
) -> float:
    """The lowest spam cut in [0.5, 0.99] at which the median over communities (each scored by a
    model trained without it) of the false-positive rate is <= ``max_fpr``.

    Each community weighs the same, however many messages it has: a new site is one community,
    and a big data set must not hide how a small one fares. The median, not the mean: a community
    of a kind absent from the rest (e-mail, for a model of chat and comments) is flagged wholesale
    at any cut, and would push every other site to the top cut. ``raised`` marks rows whose spam cut
    is at least ``raised_cut`` whatever the cut (a language with no genuine training messages once
    their community is left out, see :attr:`ContextModel.known_languages`): each is flagged always
    (at or above ``raised_cut``) or never."""
    if raised is not None and raised.any():
        scores = scores.copy()
        scores[raised] = np.where(scores[raised] >= raised_cut, 1.0, 0.0)
    ham = [np.sort(scores[(sources == s) & (y == 0)]) for s in np.unique(sources)]
    ham = [h for h in ham if len(h)]
    if not ham:
        return 0.5

    def median_fpr(cut: float) -> float:
        return float(np.median([(len(h) - np.searchsorted(h, cut, side="left")) / len(h) for h in ham]))

    candidates = np.unique(np.concatenate([[0.5], *[np.nextafter(h, np.inf) for h in ham]]))
    candidates = candidates[(candidates >= 0.5) & (candidates <= 0.99)]
    for cut in candidates:  # median_fpr falls as the cut rises: the first that fits is the lowest
        if median_fpr(cut) <= max_fpr:
            return round(float(cut), 4)
    return 0.99


def per_source_rates(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, cut: float) -> dict[str, dict]:
    """FP rate and recall at ``cut`` per community (for the training summary)."""
    out = {}
    for s in np.unique(sources):
        m = sources == s
        ham, spam = scores[m & (y == 0)], scores[m & (y == 1)]
        out[str(s)] = {
            "ham": len(ham),
            "spam": len(spam),
            "fpr": None if not len(ham) else round(float((ham >= cut).mean()), 4),
            "recall": None if not len(spam) else round(float((spam >= cut).mean()), 4),
        }
    return out


def _choose_thresholds(y: np.ndarray, scores: np.ndarray, opts: TrainOptions) -> Thresholds:
    """Spam: the lowest cut >= 0.5 keeping held-out FP rate <= max_fpr. Ham: the cut below which at
    most ``max_missed`` of the spam falls (capped at 0.5); between the two lies "unsure"."""
    spam_scores = np.sort(scores[y == 1])
    ham_t = float(spam_scores[int(np.floor(opts.max_missed * len(spam_scores)))]) if len(spam_scores) else 0.5
    return Thresholds(ham=round(min(ham_t, 0.5), 4), spam=_spam_cut(y, scores, opts.max_fpr))


def _spam_cut(y: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The spam threshold for a held-out false-positive rate of ``max_fpr``, in [0.5, 0.99]."""
    return round(min(spam_threshold_for_fpr(y, scores, max_fpr, floor=0.5), 0.99), 4)


def _spam_at_fpr(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The spam threshold :func:`_choose_thresholds` would pick for each of :data:`FP_BUDGETS`."""
    return {fpr_key(budget): _spam_cut(y, scores, budget) for budget in FP_BUDGETS}


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _shifted(cut: float, shift: float) -> float:
    """``cut`` moved by ``shift`` in log-odds, kept in [cut, 0.99]."""
    return round(max(cut, min(0.99, float(1 / (1 + np.exp(-(_logit(cut) + shift)))))), 4)


def _cold_start(y, scores, missing, sources, langs, opts, thresholds, model_thresholds):
    """Raise the default spam cuts to what communities left out of training need (see
    :func:`cold_start_cut`).

    The fallback was scored with each community left out; the cut it needs is compared with the
    default cut chosen on random folds, and every model's cut moves up by the same log-odds (a
    community's own-language model cannot be tested with its community left out: its language
    would have no data). Never lowers a cut. The ``--max-fpr`` tables stay as chosen on random
    folds: a budget a user picks on purpose is about the data the model was trained on."""
    keep = ~missing
    y, scores, sources, langs = y[keep], scores[keep], sources[keep], langs[keep]
    raised = np.zeros(len(y), dtype=bool)  # languages whose genuine messages all come from this community
    for s in np.unique(sources):
        rest = (sources != s) & (y == 0)
        known = {lang for lang, n in Counter(langs[rest].tolist()).items() if n >= opts.min_per_class}
        mine = sources == s
        raised[mine] = np.array([lang != "und" and lang not in known for lang in langs[mine]], dtype=bool)

    cold = cold_start_cut(y, scores, sources, opts.cold_max_fpr, raised, opts.unseen_language_threshold)
    shift = max(0.0, _logit(cold) - _logit(thresholds.spam))

    def moved(t: Thresholds) -> Thresholds:
        return Thresholds(ham=t.ham, spam=_shifted(t.spam, shift))

    new = moved(thresholds)
    report = {
        "source_field": opts.source_field,
        "max_fpr": opts.cold_max_fpr,
        "shift_log_odds": round(shift, 4),
        "random_folds": {"spam": thresholds.spam, "sources": per_source_rates(y, scores, sources, thresholds.spam)},
        "sources_left_out": {"spam": new.spam, "sources": per_source_rates(y, scores, sources, new.spam)},
    }
    return new, {k: moved(t) for k, t in model_thresholds.items()}, report


def _transform_locally(texts: list[str], settings: FeatureSettings) -> SparseRows:
    return Vectoriser(settings).transform(texts)


def _fit_models(pool: _FitPool, X, y, fold_of, langs, domains, sources, opts: TrainOptions, say, everything=None):
    """Every fit of a context: the fallback (out-of-fold and on all rows), each language's own model
    where it has the data (kept only where it beats the fallback on that language's held-out rows),
    and the fallback with each community left out (``sources``). Returns the models, the summary
    rows, the out-of-fold calibrated score of each row under the model it routes to, that model's
    name per row, the fallback and its left-out-community decision values (or None).
    ``everything``: the :class:`_AllCounts` of a bigger input than ``X`` (a sample of it): the
    final models take their NB counts from it."""
    say(f"fitting the fallback model and its {opts.folds} folds")
    fallback_fit = pool.fit(X, y, opts, domains, counts=None if everything is None else everything.of(None))
    fallback_oof = pool.held_out(X, y, fold_of, opts, domains, range(opts.folds))
    out_of_community = None
    if sources is not None:
        say("scoring the fallback with each community left out")
        out_of_community = pool.held_out(X, y, sources, opts, domains, sorted(set(sources.tolist())))

    rows: list[LanguageRow] = []
    candidates = []  # (row, row indices, future of the out-of-fold decisions)
    for lang, _count in Counter(langs).most_common():
        mask = langs == lang
        ls, lh = int(y[mask].sum()), int(mask.sum() - y[mask].sum())
        row = LanguageRow(lang=str(lang), spam=ls, ham=lh, own_model=False, reason="")
        rows.append(row)
        if lang == "und":
            row.reason = "language uncertain: fallback"
            continue
        if min(ls, lh) < opts.min_per_class:
            row.reason = f"fewer than {opts.min_per_class} of a class: fallback"
            continue
        say(f"cross-validating the {lang} model")
        idx = np.flatnonzero(mask)
        sub_domains = None if domains is None else domains[idx]
        oof = pool.held_out(X, y[idx], fold_of[idx], opts, sub_domains, range(opts.folds), rows=idx)
        candidates.append((row, idx, oof))

    z_fallback = np.nan_to_num(fallback_oof(), nan=0.0)
    fallback = fallback_fit.result()
    fallback.calib_a, fallback.calib_b = fit_platt(z_fallback, y)
    routed = fallback.calibrate(z_fallback)
    route_of = np.full(len(y), FALLBACK, dtype=object)
    models = {FALLBACK: fallback}
    for row in rows:
        row.auc_fallback = roc_auc(y[langs == row.lang], z_fallback[langs == row.lang])

    own_fits = []
    for row, idx, oof in candidates:
        z_own = np.nan_to_num(oof(), nan=0.0)
        row.auc_own = roc_auc(y[idx], z_own)
        if row.auc_fallback is not None and row.auc_own is not None and row.auc_own < row.auc_fallback:
            row.reason = "fallback scored better on held-out data"
            continue
        say(f"fitting the {row.lang} model")
        counts = None if everything is None else everything.of(row.lang)
        sub_domains = None if domains is None else domains[idx]
        own_fits.append((row, idx, z_own, pool.fit(X, y[idx], opts, sub_domains, idx, counts)))
    for row, idx, z_own, future in own_fits:
        own = future.result()
        own.calib_a, own.calib_b = fit_platt(z_own, y[idx])
        models[row.lang] = own
        routed[idx] = own.calibrate(z_own)
        route_of[idx] = row.lang
        row.own_model = True
        row.reason = "own model"
    return models, rows, routed, route_of, fallback, None if out_of_community is None else out_of_community()


def train_context(
    records: Iterable[Record],
    opts: TrainOptions | None = None,
    progress: Callable[[str], None] | None = None,
    transform: Callable[[list[str], FeatureSettings], SparseRows] | None = None,
) -> tuple[ContextModel, TrainReport]:
    """Train one context (``content`` or ``profile``) from labeled records.

    ``transform(texts, settings)`` hashes the texts (default :meth:`Vectoriser.transform`; the Dask
    engine passes one that hashes on the workers, with the same result)."""
    opts = opts or TrainOptions()
    say = progress or (lambda _msg: None)
    tmp_ctx = ContextModel(
        opts.context,
        opts.settings,
        {},
        lang_backend=opts.lang_backend,
        min_lang_confidence=opts.min_lang_confidence,
    )
    everything = _AllCounts(opts, tmp_ctx.detect, transform or _transform_locally)
    kept, stats = clean_records(records, opts.dedupe, opts.max_rows, opts.seed, everything if opts.max_rows else None)
    if not everything.finish():
        everything = None
    if not kept:
        detail = stats["first_error"]
        raise InputError("no usable training records" + (f" (first problem: {detail})" if detail else ""))
    y = np.array([r.label for r in kept], dtype=np.int64)
    n_spam, n_ham = int(y.sum()), int(len(y) - y.sum())
    if n_spam == 0 or n_ham == 0:
        only = "spam" if n_ham == 0 else "ham"
        raise InputError(f"training data has only {only} examples ({len(y)}); a filter needs both spam and ham")
    texts = [r.text for r in kept]

    say(f"detecting languages of {len(texts)} records")
    detected = tmp_ctx.detect(texts, [r.lang for r in kept])
    langs = np.array(_languages(detected, opts.min_lang_confidence), dtype=object)

    domains = None
    if opts.domain_field:
        domains = np.array([str(r.fields.get(opts.domain_field, "")) for r in kept], dtype=object)

    say("hashing features")
    X = (transform or _transform_locally)(texts, opts.settings).to_scipy()
    fold_of = _fold_ids(texts, opts.folds, opts.seed)
    sources = None
    if opts.source_field:
        sources = np.array([str(r.fields.get(opts.source_field, "")) for r in kept], dtype=object)
        if len(set(sources.tolist())) < 2:
            sources = None

    with _FitPool(opts.jobs or usable_cpus()) as pool:
        models, rows, routed, route_of, fallback, z_out = _fit_models(
            pool, X, y, fold_of, langs, domains, sources, opts, say, everything
        )

    thresholds = _choose_thresholds(y, routed, opts)
    model_thresholds = {}
    spam_at_fpr = {"": _spam_at_fpr(y, routed)}
    for name in models:
        mask = route_of == name
        if min(int(y[mask].sum()), int((y[mask] == 0).sum())) >= opts.min_per_class:
            model_thresholds[name] = _choose_thresholds(y[mask], routed[mask], opts)
            spam_at_fpr[name] = _spam_at_fpr(y[mask], routed[mask])

    cold_start = None
    if z_out is not None:
        thresholds, model_thresholds, cold_start = _cold_start(
            y,
            fallback.calibrate(z_out),
            np.isnan(z_out),
            sources,
            langs,
            opts,
            thresholds,
            model_thresholds,
        )

    warnings: list[str] = []
    if everything is not None:
        warnings.append(
            f"Naive Bayes counts over all {everything.records:,} clean records; the regression, calibration "
            f"and thresholds on a uniform random sample of {len(kept):,} of them (--max-rows {opts.max_rows:,}), "
            "so that memory stays bounded; --max-rows 0 uses every record for everything"
        )
    share = min(n_spam, n_ham) / len(y)
    if share < 0.2:
        minority = "spam" if n_spam < n_ham else "ham"
        warnings.append(
            f"classes are imbalanced: {minority} is {share:.0%} of the data; priors are balanced, "
            f"but add more {minority} examples if you can"
        )
    for row in rows:
        if row.lang != "und" and (row.spam + row.ham) >= 20 and min(row.spam, row.ham) == 0:
            only = "spam" if row.ham == 0 else "ham"
            warnings.append(f"language {row.lang}: only {only} examples; it is scored by the fallback")
    report = TrainReport(
        records_read=stats.get("read", 0),
        unreadable=stats.get("unreadable", 0),
        duplicates=stats.get("duplicates", 0),
        conflicting=stats.get("conflicting", 0),
        spam=n_spam,
        ham=n_ham,
        languages=rows,
        thresholds=thresholds,
        auc_out_of_fold=roc_auc(y, routed),
        warnings=warnings,
        cold_start=cold_start,
    )
    ctx = ContextModel(
        context=opts.context,
        settings=opts.settings,
        models=models,
        thresholds=thresholds,
        model_thresholds=model_thresholds,
        spam_at_fpr=spam_at_fpr,
        known_languages=sorted(str(r.lang) for r in rows if r.lang != "und" and r.ham >= opts.min_per_class),
        unseen_language_threshold=opts.unseen_language_threshold,
        min_lang_confidence=opts.min_lang_confidence,
        lang_backend=opts.lang_backend,
        summary=report.to_dict(),
    )
    return ctx, report


# ---- out of core --------------------------------------------------------------------------
CALIBRATION_SAMPLE = 20_000  # held-out rows kept (reservoir) for calibration and thresholds


def count_features(rows, groups: np.ndarray, n_features: int, n_groups: int = 2) -> np.ndarray:
    """Feature totals per group of rows, shape (n_groups, n_features), float64; with the class as
    the group, what MultinomialNB.fit counts."""
    per_entry = np.repeat(np.asarray(groups, dtype=np.int64), np.diff(rows.indptr))
    flat = per_entry * n_features + rows.indices
    weights = rows.data.astype(np.float64)
    return np.bincount(flat, weights=weights, minlength=n_groups * n_features).reshape(n_groups, n_features)


def train_out_of_core(
    records: Iterable[Record],
    opts: TrainOptions | None = None,
    chunk_size: int = 20_000,
    progress: Callable[[str], None] | None = None,
) -> tuple[ContextModel, TrainReport]:
    """Train a Naive Bayes model from a stream of any length in one pass, in bounded memory.

    Records are read ``chunk_size`` at a time; each chunk is hashed and its Naive Bayes counts are
    added to those of its fold (``opts.folds`` folds, by a hash of the normalised text, so repeats
    share a fold). Counts are additive, so the result equals Naive Bayes fitted on all the data at
    once. Memory: ``folds x 2 x n_features`` float64 counts (64 MB at 2^20) plus one chunk plus a
    reservoir of ``CALIBRATION_SAMPLE`` hashed rows that are scored out-of-fold (by the counts of
    the other folds) for Platt calibration and the spam/ham thresholds.

    What this path does not do, and why: the ``nblr`` regression needs every row in memory (it is
    fitted by liblinear), so the model is ``kind="nb"``; no per-language models (one multilingual
    model, languages are not detected); no de-duplication across chunks (only within a chunk).
    """
    import itertools

    opts = opts or TrainOptions()
    say = progress or (lambda _msg: None)
    settings = opts.settings
    n = settings.n_features
    vectoriser = Vectoriser(settings)
    fold_counts = np.zeros((opts.folds, 2, n))
    doc_counts = np.zeros((opts.folds, 2))
    rng = np.random.default_rng(opts.seed)
    sample: list[tuple[int, int, np.ndarray]] = []  # (fold, label, columns) of the reservoir
    seen_rows = 0
    read = unreadable = duplicates = conflicting = 0
    stream = iter(records)
    while True:
        chunk = list(itertools.islice(stream, chunk_size))
        if not chunk:
            break
        read += len(chunk)
        kept, stats = clean_records(chunk, dedupe=opts.dedupe)
        unreadable += stats.get("unreadable", 0)
        duplicates += stats.get("duplicates", 0)
        conflicting += stats.get("conflicting", 0)
        if not kept:
            continue
        texts = [r.text for r in kept]
        y = np.array([r.label for r in kept], dtype=np.int64)
        folds = _fold_ids(texts, opts.folds, opts.seed)
        doc_counts += np.bincount(folds * 2 + y, minlength=opts.folds * 2).reshape(opts.folds, 2)
        for start in range(0, len(texts), 5_000):  # hashed rows of 5,000 texts at a time
            part = slice(start, start + 5_000)
            rows = vectoriser.transform(texts[part])
            groups = folds[part] * 2 + y[part]
            fold_counts += count_features(rows, groups, n, opts.folds * 2).reshape(opts.folds, 2, n)
            for i in range(rows.n_rows):  # reservoir sampling (Algorithm R) of held-out rows
                seen_rows += 1
                slot = seen_rows - 1 if seen_rows <= CALIBRATION_SAMPLE else int(rng.integers(seen_rows))
                if slot < CALIBRATION_SAMPLE:
                    cols = rows.indices[rows.indptr[i] : rows.indptr[i + 1]].copy()
                    item = (int(groups[i] // 2), int(groups[i] % 2), cols)
                    if slot == len(sample):
                        sample.append(item)
                    else:
                        sample[slot] = item
        say(f"counted {read:,} records")
    totals, docs = fold_counts.sum(axis=0), doc_counts.sum(axis=0)
    n_ham, n_spam = int(docs[0]), int(docs[1])
    if n_ham == 0 or n_spam == 0:
        if n_ham + n_spam == 0:
            raise InputError("no usable training records")
        only = "spam" if n_ham == 0 else "ham"
        raise InputError(f"training data has only {only} examples ({n_ham + n_spam}); a filter needs both spam and ham")

    say("calibrating on held-out rows")
    z = np.zeros(len(sample))
    y_sample = np.array([label for _, label, _ in sample], dtype=np.int64)
    for k in range(opts.folds):
        members = [i for i, (fold, _, _) in enumerate(sample) if fold == k]
        if not members:
            continue
        rest = NaiveBayesModel.from_counts(n, opts.alpha, totals - fold_counts[k], docs - doc_counts[k])
        cols = [sample[i][2] for i in members]
        indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])])
        held = SparseRows(indptr, np.concatenate(cols), np.ones(int(indptr[-1]), dtype=np.float32), n)
        z[members] = rest.decision_function(held)
    model = NaiveBayesModel.from_counts(n, opts.alpha, totals, docs)
    model.calib_a, model.calib_b = fit_platt(z, y_sample)
    scores = model.calibrate(z)
    thresholds = _choose_thresholds(y_sample, scores, opts)
    report = TrainReport(
        records_read=read,
        unreadable=unreadable,
        duplicates=duplicates,
        conflicting=conflicting,
        spam=n_spam,
        ham=n_ham,
        languages=[LanguageRow(FALLBACK, n_spam, n_ham, True, "out-of-core: one multilingual NB model")],
        thresholds=thresholds,
        auc_out_of_fold=roc_auc(y_sample, z),
        warnings=["out-of-core training: Naive Bayes only, no per-language models, duplicates dropped per chunk"],
    )
    ctx = ContextModel(
        context=opts.context,
        settings=settings,
        models={FALLBACK: model},
        thresholds=thresholds,
        model_thresholds={FALLBACK: thresholds},
        spam_at_fpr=dict.fromkeys(("", FALLBACK), _spam_at_fpr(y_sample, scores)),
        min_lang_confidence=opts.min_lang_confidence,
        lang_backend=opts.lang_backend,
        summary=report.to_dict(),
    )
    return ctx, report
