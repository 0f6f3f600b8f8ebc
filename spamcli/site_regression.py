"""The site regression: a logistic regression on a moderation export's decisions, beside the layer.

The site layer is a naive-Bayes sum of what moderators taught: right for a few corrections, each a
message the model got wrong, but taught a whole export it ranks a new community well below a plain
regression fitted on those decisions alone (e-mail, a week of 400 decisions: 0.889 AUC against
0.996 in ``benchmarks/adapt.py``). A regression needs an honest sample of the site, which
corrections are not and an export is. So when :mod:`spamcli.site_calibration` refits a context on
its export decisions, it also fits this regression on them and weighs it with the layer::

    logit(score) = logit(base score) + gain * layer sum + reg_gain * sum_j w_j / sqrt(k) + offset

over the ``k`` distinct feature columns of a message (the layer's own columns, each 1, the row
scaled by ``1/sqrt(k)``). ``reg_gain`` is fitted, like ``gain`` and ``offset``, on scores the
decisions did not make themselves: each decision's regression score comes from a fit without it
(:data:`FOLDS`-fold cross-validation). A site whose decisions the layer already explains gets a
``reg_gain`` near 0; one that is never above 0 (the regression only restating the layer) means no
regression at all.

Deterministic, so forgetting an export returns the scores of before exactly: the decisions are read
in key order (a sha256: a fixed, effectively random order), folds are every :data:`FOLDS`-th of
them, the solver (L-BFGS, no random start) is given the same matrix, and the fits run on one
thread (:func:`one_thread`): summed by two threads, the same fit differed in its last bits from one
process to the next. Above
:data:`MAX_DECISIONS` decisions, the first of them in that order are the sample it is fitted on
(the others are scored by the fit, which never saw them); a refit stays a few seconds.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .site import balancing

FOLDS = 5
MAX_DECISIONS = 4_000
C = 10.0  # inverse strength of the regression's l2 penalty (scikit-learn's C)


def fit(columns: list[np.ndarray], y: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray]:
    """``((columns, weights), held_out)``: the regression fitted on decisions with feature
    ``columns`` and labels ``y`` (1 spam), and each decision's score by a fit that did not see it;
    ``(None, zeros)`` when a fold or the sample holds one class only."""
    n = len(columns)
    held_out = np.zeros(n)
    sample = min(n, MAX_DECISIONS)
    keys = np.unique(np.concatenate(columns[:sample])) if sample else np.zeros(0, np.int64)
    x = _matrix(columns, keys)
    y_sample = y[:sample]
    folds = np.arange(sample) % FOLDS
    for fold in range(FOLDS):
        train = folds != fold
        if len(np.unique(y_sample[train])) < 2:
            return None, held_out
        held_out[:sample][~train] = x[:sample][~train] @ _weights(x[:sample][train], y_sample[train])
    weights = _weights(x[:sample], y_sample)
    held_out[sample:] = x[sample:] @ weights
    used = weights != 0.0
    return (keys[used], weights[used]), held_out


@contextlib.contextmanager
def one_thread():
    """Run BLAS on one thread, as fits that must repeat bit for bit need: summed by two threads, a
    dot product differs in its last bits from one process to the next."""
    import scipy.optimize  # noqa: F401 - loads scipy's own BLAS, so that the limit reaches it too
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _weights(x, y: np.ndarray, balanced: bool = False) -> np.ndarray:
    """The weights of an l2-regularised logistic regression of ``y`` (1 spam) on the rows of ``x``,
    with an intercept (not returned), both classes weighed alike if ``balanced``: scikit-learn's
    ``LogisticRegression(C=C[, class_weight="balanced"])``, whose objective this minimises with
    the same solver (L-BFGS) and options (its weights to 1e-13, as fast), without importing
    scikit-learn (a second of every ``spamcli learn`` that refits). Run it under :func:`one_thread`."""
    from scipy.optimize import minimize

    n_spam = int(y.sum())
    spam_weight, ham_weight = balancing(n_spam, len(y) - n_spam) if balanced else (1.0, 1.0)
    weight = np.where(y == 1, spam_weight, ham_weight)
    sign = np.where(y == 1, 1.0, -1.0)
    xt = x.T.tocsr()
    scale = 1.0 / (C * weight.sum())  # scikit-learn's scaling: the same optimum, gradients of order 1

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        w = v[:-1]
        margin = sign * (x @ w + v[-1])
        # d/dz of log(1 + exp(-sign * z)) is -sign / (1 + exp(sign * z))
        dz = C * weight * -sign * np.exp(-np.logaddexp(0.0, margin))
        value = C * float(weight @ np.logaddexp(0.0, -margin)) + 0.5 * float(w @ w)
        return value * scale, np.append(xt @ dz + w, dz.sum()) * scale

    options = {"maxiter": 1000, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps}  # scikit-learn's
    found = minimize(objective, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options=options)
    return found.x[:-1]


def _matrix(columns: list[np.ndarray], keys: np.ndarray):
    """Rows of ``columns`` over ``keys`` (each distinct column 1, a row scaled by ``1/sqrt(k)``)."""
    from scipy.sparse import csr_matrix

    from .router import sorted_positions

    lengths = np.array([len(c) for c in columns], dtype=np.int64)
    flat = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    pos, hit = sorted_positions(keys, flat)
    rows = np.repeat(np.arange(len(columns)), lengths)
    values = 1.0 / np.sqrt(np.maximum(lengths, 1))[rows]
    return csr_matrix((values[hit], (rows[hit], pos[hit])), shape=(len(columns), len(keys)))
