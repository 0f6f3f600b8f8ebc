"""One language's model: Naive Bayes counts, optionally NB-weighted logistic regression on top.

**Counts.** Training counts what scikit-learn's :class:`~sklearn.naive_bayes.MultinomialNB` counts,
scored with uniform class priors (``fit_prior=False``: the class balance of the training data must
not decide the verdict; for two classes this is also what Complement NB computes). We keep the additive counts
(documents per class, per-feature totals per class): a model can learn or forget one message later
without retraining (:meth:`NaiveBayesModel.add`), and the model file is plain numbers.

**NB log-count ratio** of column ``j`` (the NB evidence of one occurrence)::

    r_j = log P(j | spam) - log P(j | ham),   P(j | c) = (count_c[j] + alpha) / (total_c + alpha * n_features)

Columns never seen in training share one value, ``default_weight``.

**Two kinds of score** ``z`` for a message with features ``x`` (1/0 presence per column):

- ``kind="nb"``: the Naive Bayes log-odds ``z = sum_j x_j r_j``.
- ``kind="nblr"`` (default): logistic regression over two views of the message, its L2-normalised
  features and its NB-weighted, L2-normalised features (Wang & Manning's NBSVM, 2012)::

      z = b + sum_j x_j u_j / N(x) + sum_j x_j r_j v_j / N_r(x * r)
      N(x) = sqrt(max(||x||^2, floor_plain)),   N_r(y) = sqrt(max(||y||^2, floor_nb))

  ``u`` and ``v`` are the regression's weights (zero for columns unseen in training). The NB view
  carries the per-token evidence, the plain view corrects what NB's independence assumption gets
  wrong, and the normalisation stops long messages from drowning short ones. The floors keep a
  message of one or two words from being scaled up until a single word decides it ("hello" was
  flagged without them); ``floor_nb`` is fixed at training time. Because ``r`` comes
  from the counts, learning or forgetting a message still changes the score, and exactly reversibly.

The calibrated score is Platt scaling of ``z``, fitted on out-of-fold predictions with balanced
classes: ``score = 1 / (1 + exp(-(calib_a * z + calib_b)))``. Everything here is numpy (and the C
extension); only a regression fitted without the C extension imports scikit-learn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import text as _text
from .text import SparseRows

KINDS = ("nb", "nblr")


def row_sums(rows: SparseRows, values: np.ndarray) -> np.ndarray:
    """Per-row sums of ``values`` (one value per stored entry of ``rows``), float64."""
    counts = np.diff(rows.indptr)
    row_ids = np.repeat(np.arange(rows.n_rows), counts)
    return np.bincount(row_ids, weights=values, minlength=rows.n_rows)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _inverse_norms(squared: np.ndarray, floor: float) -> np.ndarray:
    """1 / sqrt(max(squared norm, floor)), and 0 for an empty row."""
    norms = np.sqrt(np.maximum(squared, floor))
    out = np.zeros_like(norms)
    np.divide(1.0, norms, out=out, where=norms > 0)
    return out


# A batch of at most this many features (a few messages) is scored before the model's lookup tables
# over every feature are built (see NaiveBayesModel._batch_tables): a one-message run needs none.
SMALL_BATCH = 8192


def _table(values: np.ndarray, default: float = 0.0) -> np.ndarray:
    """``values`` and then ``default``, float64: a lookup table whose slot -1 is every unseen column."""
    table = np.empty(len(values) + 1, dtype=np.float64)
    table[:-1] = values
    table[-1] = default
    return table


NORM_FLOOR_FEATURES = 100.0  # a message is normalised as if it had at least this many features
REGRESSION_PASSES = 20  # passes of the regression's solver over the data, at most (see _logistic_regression)
LIBLINEAR_TOLERANCE = 1e-4  # its stopping tolerance (scikit-learn's default)


@dataclass
class NaiveBayesModel:
    """Counts of a binary (ham=0, spam=1) multinomial NB over hashed features, plus the
    optional regression weights of ``kind="nblr"`` (see module docstring)."""

    n_features: int
    alpha: float
    columns: np.ndarray  # int32, sorted: the columns seen in training
    counts: np.ndarray  # float64, shape (2, len(columns)): ham row 0, spam row 1
    doc_counts: np.ndarray  # float64, shape (2,): documents of ham and spam
    kind: str = "nb"
    coef_plain: np.ndarray | None = None  # u, aligned with columns (nblr only)
    coef_nb: np.ndarray | None = None  # v, aligned with columns (nblr only)
    intercept: float = 0.0
    # Lower bounds of the squared norms of the two views (nblr): without them a one-word message
    # ("hello", "yes") is normalised up to full strength and its single word decides the verdict.
    floor_plain: float = 0.0
    floor_nb: float = 0.0
    calib_a: float = 1.0
    calib_b: float = 0.0
    _dense: dict = field(default_factory=dict, repr=False, compare=False)

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X,
        y: np.ndarray,
        alpha: float = 0.1,
        kind: str = "nblr",
        C: float = 30.0,
        sample_weight: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        counts: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> NaiveBayesModel:
        """Fit on a scipy CSR matrix of 1/0 features; ``y`` is 1 for spam, 0 for ham.

        ``sample_weight`` (already balanced between the classes) weighs the regression only; the
        NB counts stay plain counts, so that learning and forgetting stay exact. ``rows``: fit on
        these rows of ``X`` only (``y`` and ``sample_weight`` then give one value per such row),
        without copying them where the C extension fits. ``counts``: the NB counts to use, (feature
        counts of shape (2, n_features), documents per class), counted over more messages than
        ``X`` holds (the regression is then fitted on ``X``'s rows with those counts' weights)."""
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}")
        if rows is not None and not _has_c_fit():
            X, rows = X[rows], None
        y = np.asarray(y)
        class_count = np.bincount(y, minlength=2) if y.size and y.min() >= 0 else np.zeros(0)
        if len(class_count) != 2 or class_count.min() == 0:
            raise ValueError("training data needs both classes (0 = ham, 1 = spam)")
        if counts is None:
            counts = (_class_feature_counts(X, y, rows), class_count.astype(np.float64))
        model = cls.from_counts(X.shape[1], alpha, *counts)
        if kind == "nblr":
            model._fit_regression(X, y, C, sample_weight, rows)
        return model

    def _fit_regression(
        self, X, y: np.ndarray, C: float, sample_weight: np.ndarray | None = None, rows: np.ndarray | None = None
    ) -> None:
        self.floor_plain = NORM_FLOOR_FEATURES
        self.floor_nb = NORM_FLOOR_FEATURES * float(np.mean(self.sparse_weights() ** 2))
        upper = C * (sample_weight if sample_weight is not None else _balanced_class_weights(y))
        if _has_c_fit() and bool(np.all(upper > 0)):
            rows = np.arange(X.shape[0], dtype=np.int64) if rows is None else rows
            coef, self.intercept = self._fit_regression_c(X, rows, y, upper)
        else:
            X = X if rows is None else X[rows]
            coef, self.intercept = _logistic_regression(self._regression_views(X), y, C, sample_weight)
        k = len(self.columns)
        self.kind = "nblr"
        self.coef_plain, self.coef_nb = coef[:k].copy(), coef[k:].copy()
        self._dense.clear()

    def _fit_regression_c(self, X, rows: np.ndarray, y: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, float]:
        """The regression by the C extension, on the hashed rows themselves (the two views are
        implied, never built): liblinear's dual coordinate descent, step for step, with its own
        seeded generator, so fits on several threads are each the same as alone, without the GIL."""
        slot = np.full(X.shape[1], -1, dtype=np.int32)
        slot[self.columns] = np.arange(len(self.columns), dtype=np.int32)
        w = np.zeros(2 * len(self.columns) + 1, dtype=np.float64)
        _text._C.nblr_fit(
            np.ascontiguousarray(X.indptr, dtype=np.int64),
            np.ascontiguousarray(X.indices, dtype=np.int32),
            np.ascontiguousarray(X.data, dtype=np.float32),
            slot,
            np.ascontiguousarray(self.sparse_weights(), dtype=np.float64),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.where(np.asarray(y) == 1, 1.0, -1.0),
            np.ascontiguousarray(upper, dtype=np.float64),
            w,
            self.floor_plain,
            self.floor_nb,
            LIBLINEAR_TOLERANCE,
            REGRESSION_PASSES,
            0,
        )
        return w[:-1], float(w[-1])

    def _regression_views(self, X):
        """The matrix the regression is fitted on: each row of ``X`` as its two views (see the module
        docstring), the plain view in columns ``[0, k)`` and the NB-weighted one in ``[k, 2k)``, for
        the ``k`` seen columns, each scaled by its inverse norm (entries of unseen columns dropped).
        Built straight into CSR, instead of slicing, scaling and stacking scipy matrices, which took
        longer than the regression. (Without the C extension only: it fits on the rows themselves.)"""
        import scipy.sparse as sp

        k = len(self.columns)
        slot = np.full(X.shape[1], -1, dtype=np.int32)
        slot[self.columns] = np.arange(k, dtype=np.int32)
        r = self.sparse_weights()
        n_rows = X.shape[0]
        cols = slot[X.indices]
        row_ids = np.repeat(np.arange(n_rows), np.diff(X.indptr))
        indptr, data = X.indptr, X.data
        if (cols < 0).any():
            keep = cols >= 0
            cols, data, row_ids = cols[keep], data[keep], row_ids[keep]
            indptr = np.concatenate([[0], np.cumsum(np.bincount(row_ids, minlength=n_rows))])
        plain = data.astype(np.float64)
        weighted = plain * r[cols]
        inv_plain = _inverse_norms(np.bincount(row_ids, plain * plain, minlength=n_rows), self.floor_plain)
        inv_nb = _inverse_norms(np.bincount(row_ids, weighted * weighted, minlength=n_rows), self.floor_nb)
        # Entry j of a row holding entries start..end goes to j + start (plain) and j + end (NB view).
        entry = np.arange(len(cols), dtype=np.int64)
        to_plain = entry + np.asarray(indptr[:-1])[row_ids]
        to_nb = entry + np.asarray(indptr[1:])[row_ids]
        out_indices = np.empty(2 * len(cols), dtype=np.int32)
        out_data = np.empty(2 * len(cols), dtype=np.float64)
        out_indices[to_plain], out_indices[to_nb] = cols, cols + k
        out_data[to_plain], out_data[to_nb] = plain * inv_plain[row_ids], weighted * inv_nb[row_ids]
        return sp.csr_matrix((out_data, out_indices, 2 * np.asarray(indptr, dtype=np.int64)), shape=(n_rows, 2 * k))

    @classmethod
    def from_counts(
        cls, n_features: int, alpha: float, feature_count: np.ndarray, class_count: np.ndarray
    ) -> NaiveBayesModel:
        """From dense per-class feature counts of shape (2, n_features)."""
        columns = np.flatnonzero(feature_count.sum(axis=0)).astype(np.int32)
        return cls(
            n_features=n_features,
            alpha=float(alpha),
            columns=columns,
            counts=np.asarray(feature_count[:, columns], dtype=np.float64),
            doc_counts=np.asarray(class_count, dtype=np.float64),
        )

    # ---- weights --------------------------------------------------------------------------
    def _log_denominators(self) -> tuple[float, float]:
        found = self._dense.get("denominators")
        if found is None:
            ham_total, spam_total = self.counts.sum(axis=1)
            found = self._dense["denominators"] = (
                float(np.log(ham_total + self.alpha * self.n_features)),
                float(np.log(spam_total + self.alpha * self.n_features)),
            )
        return found

    @property
    def default_weight(self) -> float:
        """The NB log-count ratio of every column not seen in training."""
        log_ham, log_spam = self._log_denominators()
        return log_ham - log_spam

    def sparse_weights(self, at: np.ndarray | None = None) -> np.ndarray:
        """The NB log-count ratios ``r`` of the seen columns (aligned with ``columns``); ``at``: of
        those at these positions only (the same values)."""
        log_ham, log_spam = self._log_denominators()
        counts = self.counts if at is None else self.counts[:, at]
        return (np.log(counts[1] + self.alpha) - log_spam) - (np.log(counts[0] + self.alpha) - log_ham)

    def _lookup(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(slot, table)`` with ``table[slot[j]]`` the value of vector ``name`` at column ``j``:
        ``r`` (NB log-count ratios), ``u`` or ``v`` (regression weights). ``slot`` (int32 per
        feature, 4 MB at 2^20) maps seen columns to their position and unseen ones to -1, the last
        entry of each table (``default_weight`` for ``r``, 0 for ``u``/``v``). The same float64
        values as a dense vector per name, built once per loaded model, at a sixth of the memory."""
        found = self._dense.get(name)
        if found is None:
            slot = self._dense.get("slot")
            if slot is None:
                slot = np.full(self.n_features, -1, dtype=np.int32)
                slot[self.columns] = np.arange(len(self.columns), dtype=np.int32)
                self._dense["slot"] = slot
            if name == "r":
                values, default = self.sparse_weights(), self.default_weight
            else:
                values, default = (self.coef_plain if name == "u" else self.coef_nb), 0.0
            found = self._dense[name] = (slot, _table(values, default))
        return found

    def _batch_tables(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """``(indices, slot, (r, u, v))`` as :meth:`_lookup` has them, for only the distinct
        ``columns`` of one batch, renumbered 0, 1, ... (``indices``: ``columns`` so renumbered):
        the same values, without building the tables over every feature (~20 ms for the shipped
        model, more than a short message takes to score)."""
        wanted, indices = np.unique(columns, return_inverse=True)
        pos = np.searchsorted(self.columns, wanted)
        seen = pos < len(self.columns)
        seen[seen] = self.columns[pos[seen]] == wanted[seen]
        at = pos[seen]
        slot = np.full(len(wanted), -1, dtype=np.int32)
        slot[seen] = np.arange(len(at), dtype=np.int32)
        r = _table(self.sparse_weights(at), self.default_weight)
        return indices.astype(np.int32).ravel(), slot, (r, _table(self.coef_plain[at]), _table(self.coef_nb[at]))

    def _values(self, name: str, columns: np.ndarray) -> np.ndarray:
        """Vector ``name`` (see :meth:`_lookup`) at ``columns``, float64."""
        slot, table = self._lookup(name)
        return table[slot[columns]]

    def _dense_vector(self, name: str) -> np.ndarray:
        """Vector ``name`` (see :meth:`_lookup`) as a dense float64 array over all columns."""
        return self._values(name, np.arange(self.n_features))

    @property
    def weights(self) -> np.ndarray:
        """Dense NB log-count ratio per column."""
        return self._dense_vector("r")

    def invalidate(self) -> None:
        self._dense.clear()

    def prepare(self) -> None:
        """Build the lookup tables now (the first batch of more than :data:`SMALL_BATCH` features
        would): see :meth:`spamcli.router.ContextModel.prepare`."""
        for name in ("r", "u", "v") if self.kind == "nblr" else ("r",):
            self._lookup(name)

    # ---- scoring --------------------------------------------------------------------------
    def _gather(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``r``, ``u`` and ``v`` at ``columns`` (nblr): the same values as three :meth:`_values`
        calls, mapping the columns to table slots once."""
        slots = self._lookup("r")[0][columns]
        return tuple(np.take(self._lookup(name)[1], slots) for name in ("r", "u", "v"))

    def _terms(self, rows: SparseRows) -> tuple[np.ndarray, ...]:
        """Per stored entry: NB-weighted value; per row: the two inverse norms (nblr)."""
        r = self._values("r", rows.indices)
        weighted = rows.data * r
        if self.kind == "nb":
            return (weighted,)
        inv_plain = _inverse_norms(row_sums(rows, rows.data.astype(np.float64) ** 2), self.floor_plain)
        inv_nb = _inverse_norms(row_sums(rows, weighted**2), self.floor_nb)
        return weighted, inv_plain, inv_nb

    def decision_function(self, rows: SparseRows) -> np.ndarray:
        """The uncalibrated score ``z`` of each row (see module docstring)."""
        if self.kind == "nb":
            return row_sums(rows, self._terms(rows)[0])
        if _text._C is not None and rows.n_features == self.n_features:  # the C extension, same numbers
            if "slot" not in self._dense and len(rows.indices) <= SMALL_BATCH:
                indices, slot, tables = self._batch_tables(rows.indices)
            else:
                indices, (slot, _) = rows.indices, self._lookup("r")
                tables = tuple(self._lookup(name)[1] for name in ("r", "u", "v"))
            out = np.empty(rows.n_rows, dtype=np.float64)
            _text._C.nblr_scores(
                np.ascontiguousarray(rows.indptr, dtype=np.int64),
                np.ascontiguousarray(indices, dtype=np.int32),
                np.ascontiguousarray(rows.data, dtype=np.float32),
                slot,
                *tables,
                out,
                self.floor_plain,
                self.floor_nb,
                self.intercept,
            )
            return out
        r, u, v = self._gather(rows.indices)
        row_ids = np.repeat(np.arange(rows.n_rows), np.diff(rows.indptr))

        def sums(values: np.ndarray) -> np.ndarray:  # row_sums(rows, values), row ids computed once
            return np.bincount(row_ids, weights=values, minlength=rows.n_rows)

        weighted = rows.data * r
        inv_plain = _inverse_norms(sums(rows.data.astype(np.float64) ** 2), self.floor_plain)
        inv_nb = _inverse_norms(sums(weighted**2), self.floor_nb)
        plain = sums(rows.data * u) * inv_plain
        nb = sums(weighted * v) * inv_nb
        return self.intercept + plain + nb

    def calibrate(self, z: np.ndarray) -> np.ndarray:
        return sigmoid(self.calib_a * np.asarray(z, dtype=np.float64) + self.calib_b)

    def predict_proba(self, rows: SparseRows) -> np.ndarray:
        """Calibrated P(spam) per row."""
        return self.calibrate(self.decision_function(rows))

    def contributions(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Signed contribution of each feature of one message to ``calib_a * z``."""
        rows = SparseRows(
            np.array([0, len(columns)]), np.asarray(columns), np.asarray(values, dtype=np.float64), self.n_features
        )
        terms = self._terms(rows)
        if self.kind == "nb":
            return terms[0] * self.calib_a
        weighted, inv_plain, inv_nb = terms
        plain = values * self._values("u", columns) * inv_plain[0]
        nb = weighted * self._values("v", columns) * inv_nb[0]
        return (plain + nb) * self.calib_a

    # ---- incremental learning --------------------------------------------------------------
    def add(self, columns: np.ndarray, values: np.ndarray, label: int, sign: float = 1.0) -> None:
        """Add (sign=+1) or remove (sign=-1) one document's features to class ``label``.

        Only the NB counts change (so ``r`` does); regression weights of columns first seen here
        are zero. Adding then removing the same document restores the counts exactly.
        """
        merged = np.union1d(self.columns, columns).astype(np.int32)
        if len(merged) != len(self.columns):
            old_pos = np.searchsorted(merged, self.columns)
            grown = np.zeros((2, len(merged)))
            grown[:, old_pos] = self.counts
            self.counts = grown
            if self.coef_plain is not None and self.coef_nb is not None:
                for name in ("coef_plain", "coef_nb"):
                    coef = np.zeros(len(merged))
                    coef[old_pos] = getattr(self, name)
                    setattr(self, name, coef)
            self.columns = merged
        pos = np.searchsorted(self.columns, columns)
        self.counts[label, pos] += sign * np.asarray(values, dtype=np.float64)
        np.maximum(self.counts, 0.0, out=self.counts)
        self.doc_counts[label] = max(0.0, self.doc_counts[label] + sign)
        self.invalidate()


def _has_c_fit() -> bool:
    return _text._C is not None and hasattr(_text._C, "nblr_fit")


def _class_feature_counts(X, y: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-class column totals of ``X`` (of its ``rows``), shape (2, n_features): what
    MultinomialNB counts."""
    import scipy.sparse as sp

    rows = np.arange(len(y)) if rows is None else rows
    if _has_c_fit():  # in place: the product below copies X
        out = np.zeros((2, X.shape[1]), dtype=np.float64)
        _text._C.class_counts(
            np.ascontiguousarray(X.indptr, dtype=np.int64),
            np.ascontiguousarray(X.indices, dtype=np.int32),
            np.ascontiguousarray(X.data, dtype=np.float32),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(y, dtype=np.int64),
            out,
        )
        return out
    classes = sp.csr_matrix((np.ones(len(y)), (y, rows)), shape=(2, X.shape[0]))
    return np.asarray((classes @ X).todense(), dtype=np.float64)


def _logistic_regression(views, y: np.ndarray, C: float, sample_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Weights and intercept of an L2-regularised logistic regression of ``y`` (1 spam, 0 ham) on
    ``views``: classes balanced (or ``sample_weight``, already balanced), intercept as a feature of
    value 1, at most :data:`REGRESSION_PASSES` passes of liblinear's dual coordinate descent.

    The dual solver is the fastest here (features >> messages); 20 passes measured the same
    held-out AUC as 150 (within 0.002 on every test set of benchmarks/quality.py, 0.0001 on most)
    and as lbfgs run to convergence. This is scikit-learn's liblinear, used without the C extension (whose
    :meth:`NaiveBayesModel._fit_regression_c` runs the same algorithm); liblinear's generator is
    shared by the process, so fits on several threads at once may each differ from a fit alone."""
    from sklearn.linear_model import LogisticRegression

    balance = "balanced" if sample_weight is None else None
    lr = LogisticRegression(
        C=C,
        class_weight=balance,
        solver="liblinear",
        dual=True,
        max_iter=REGRESSION_PASSES,
        tol=LIBLINEAR_TOLERANCE,
        random_state=0,
    )  # seeded: liblinear shuffles, and a model must not depend on the run
    with quiet_convergence():
        lr.fit(views, y, sample_weight=sample_weight)
    return lr.coef_.ravel(), float(lr.intercept_[0])


def _balanced_class_weights(y: np.ndarray) -> np.ndarray:
    """Per row, scikit-learn's ``class_weight="balanced"``: n / (2 * rows of its class)."""
    y = np.asarray(y)
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return (len(y) / (2.0 * counts))[y]


def quiet_convergence():
    """A context in which scikit-learn's ConvergenceWarning (the capped passes) is not shown.

    ``warnings.catch_warnings`` swaps process-wide state and is not thread-safe: two threads
    entering and leaving it in turn can leave the filters changed for good. So it is entered only on
    the main thread; threads doing fits run inside one context their starter entered (see
    ``spamcli.training._FitPool``)."""
    import contextlib
    import threading

    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    context = warnings.catch_warnings()

    @contextlib.contextmanager
    def quiet():
        with context:  # by message: matching the class would import scikit-learn (a second)
            warnings.filterwarnings("ignore", message="Liblinear failed to converge")
            yield

    return quiet()


def fit_platt(z: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> tuple[float, float]:
    """Platt scaling ``P(spam) = sigmoid(a*z + b)`` with both classes weighted equally.

    Balanced weights make the score mean "P(spam) if spam and ham were equally common", so a
    training set that is 90% spam cannot push genuine messages over the line. Newton's method on
    the weighted log-loss with a small L2 penalty (the data is 1-D, so this is exact and fast).
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    if n_pos == 0 or n_neg == 0:
        return 1.0, 0.0
    # Platt's target smoothing avoids infinite slopes on separable data; symmetric here, since the
    # classes weigh the same (smoothing by each class's own count would tilt towards the larger).
    eps = 1.0 / (len(y) + 2)
    target = np.where(y == 1, 1 - eps, eps)
    w = np.where(y == 1, 0.5 / n_pos, 0.5 / n_neg) * len(y)  # balanced, summing to n
    scale = max(float(np.std(z)), 1e-6)
    x = z / scale
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = sigmoid(a * x + b)
        g = p - target
        grad = np.array([np.sum(w * g * x) + l2 * a, np.sum(w * g)])
        h = w * p * (1 - p)
        hess = np.array([[np.sum(h * x * x) + l2, np.sum(h * x)], [np.sum(h * x), np.sum(h) + 1e-12]])
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    if a <= 0:  # held-out scores ranked worse than chance (tiny data): never invert the model
        return 1.0 / scale, 0.0
    return float(a / scale), float(b)
