"""One language's Naive Bayes model, stored as counts, scored with numpy alone.

Training uses scikit-learn's :class:`~sklearn.naive_bayes.MultinomialNB` with uniform class
priors (``fit_prior=False``: the class balance of the training data must not decide the verdict;
for two classes this is also exactly what Complement NB computes). What we keep of it are the
additive counts (documents per class, per-feature totals per class), so that a model can learn or
forget one message later without retraining, and so that the model file is plain numbers.

Scoring is the NB log-odds, a sparse dot product::

    z(x) = sum_j x_j * (log P(j | spam) - log P(j | ham))
    P(j | c) = (count_c[j] + alpha) / (total_c + alpha * n_features)

Columns never seen in training all share one weight, ``default_weight``. The calibrated score is
Platt scaling of z, fitted on out-of-fold predictions with balanced classes:
``score = 1 / (1 + exp(-(calib_a * z + calib_b)))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .text import SparseRows


def row_sums(rows: SparseRows, values: np.ndarray) -> np.ndarray:
    """Per-row sums of ``values`` (one value per stored entry of ``rows``), float64."""
    counts = np.diff(rows.indptr)
    row_ids = np.repeat(np.arange(rows.n_rows), counts)
    return np.bincount(row_ids, weights=values, minlength=rows.n_rows)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class NaiveBayesModel:
    """Counts of a binary (ham=0, spam=1) multinomial NB over hashed features."""

    n_features: int
    alpha: float
    columns: np.ndarray  # int32, sorted: the columns seen in training
    counts: np.ndarray  # float64, shape (2, len(columns)): ham row 0, spam row 1
    doc_counts: np.ndarray  # float64, shape (2,): documents of ham and spam
    calib_a: float = 1.0
    calib_b: float = 0.0
    _weights: np.ndarray | None = field(default=None, repr=False, compare=False)

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def fit(cls, X, y: np.ndarray, alpha: float = 0.1) -> NaiveBayesModel:
        """Fit scikit-learn's MultinomialNB on a scipy CSR matrix and keep its counts."""
        from sklearn.naive_bayes import MultinomialNB

        nb = MultinomialNB(alpha=alpha, fit_prior=False)
        nb.fit(X, y)
        if list(nb.classes_) != [0, 1]:
            raise ValueError("training data needs both classes (0 = ham, 1 = spam)")
        return cls.from_counts(X.shape[1], alpha, nb.feature_count_, nb.class_count_)

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
    def _totals(self) -> np.ndarray:
        return self.counts.sum(axis=1)

    @property
    def default_weight(self) -> float:
        """The weight of every column not seen in training."""
        ham_total, spam_total = self._totals()
        denom_ham = ham_total + self.alpha * self.n_features
        denom_spam = spam_total + self.alpha * self.n_features
        return float(np.log(denom_ham) - np.log(denom_spam))

    def sparse_weights(self) -> np.ndarray:
        """The log-ratio weights of the seen columns (aligned with ``columns``)."""
        ham_total, spam_total = self._totals()
        log_ham = np.log(self.counts[0] + self.alpha) - np.log(ham_total + self.alpha * self.n_features)
        log_spam = np.log(self.counts[1] + self.alpha) - np.log(spam_total + self.alpha * self.n_features)
        return log_spam - log_ham

    @property
    def weights(self) -> np.ndarray:
        """Dense float64 weight per column, built once per loaded model (8 MB at 2^20)."""
        if self._weights is None:
            dense = np.full(self.n_features, self.default_weight, dtype=np.float64)
            dense[self.columns] = self.sparse_weights()
            self._weights = dense
        return self._weights

    def invalidate(self) -> None:
        self._weights = None

    # ---- scoring --------------------------------------------------------------------------
    def decision_function(self, rows: SparseRows) -> np.ndarray:
        """NB log-odds of spam vs ham for each row (uniform priors)."""
        return row_sums(rows, rows.data * self.weights[rows.indices])

    def calibrate(self, z: np.ndarray) -> np.ndarray:
        return sigmoid(self.calib_a * np.asarray(z, dtype=np.float64) + self.calib_b)

    def predict_proba(self, rows: SparseRows) -> np.ndarray:
        """Calibrated P(spam) per row."""
        return self.calibrate(self.decision_function(rows))

    def contributions(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Signed log-odds contribution of each feature of one row (before calibration)."""
        return values * self.weights[columns] * self.calib_a

    # ---- incremental learning --------------------------------------------------------------
    def add(self, columns: np.ndarray, values: np.ndarray, label: int, sign: float = 1.0) -> None:
        """Add (sign=+1) or remove (sign=-1) one document's features to class ``label``."""
        merged = np.union1d(self.columns, columns).astype(np.int32)
        if len(merged) != len(self.columns):
            grown = np.zeros((2, len(merged)))
            grown[:, np.searchsorted(merged, self.columns)] = self.counts
            self.columns, self.counts = merged, grown
        pos = np.searchsorted(self.columns, columns)
        self.counts[label, pos] += sign * values
        np.maximum(self.counts, 0.0, out=self.counts)
        self.doc_counts[label] = max(0.0, self.doc_counts[label] + sign)
        keep = self.counts.sum(axis=0) > 0
        if not keep.all():
            self.columns, self.counts = self.columns[keep], self.counts[:, keep]
        self.invalidate()


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
    # Platt's target smoothing avoids infinite slopes on separable data.
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    w = np.where(y == 1, 0.5 / n_pos, 0.5 / n_neg)
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
    return float(a / scale), float(b)
