"""The lesson regression: a logistic regression on a context's corrections, beside the layer.

The site layer (:mod:`spamcli.site`) is a naive-Bayes sum: each taught word moves the scores of the
messages holding it, by how surprising it is against the base data, whatever else the message says.
Taught a few dozen corrections of a new community, it moves too little where the base model is far
off (Thai SMS: recall 55% at the model's own ``spam`` label after a week's corrections in
``benchmarks/adapt.py``). A regression fitted on the same corrections weighs words *against each
other*: those that separate what moderators hid from what they kept. So once both classes hold
:data:`MIN_EACH` lessons, every ``learn`` refits one on the context's lessons and adds it::

    logit(score) = logit(base score) + layer + gain(b) * sum_j w_j / sqrt(k)

over the ``k`` distinct feature columns of a message (rows as :func:`site_regression._matrix`
builds them), with ``gain(b) = SCALE * b / (b + GATE)`` for ``b`` the smaller of the sample's taught
spam and ham: a regression on three genuine messages is weak evidence, one on fifty is not.

Corrections are a biased sample (the model's mistakes only), so, unlike an export's regression
(:mod:`spamcli.site_regression`), this one is not calibrated on them: its classes are weighed alike
(``class_weight="balanced"``), its intercept is dropped (the share of spam among mistakes says
nothing about the site) and its gain is the fixed schedule above. A context that a moderation
export calibrates uses the export's regression instead; forgetting the export brings this one back.

Deterministic, as a function of what is taught: the sample is the first :data:`MAX_LESSONS` lessons
in key order (a sha256: a fixed, effectively random order), fitted on one thread. So forgetting a
lesson returns every score bit for bit, and above :data:`MAX_LESSONS` lessons most ``learn`` calls
leave the sample (and the fit) as it was: a lesson enters it with probability
``MAX_LESSONS / n``. The sample's digest is stored with the fit (table ``lesson_samples``), and a
``learn`` whose sample is unchanged fits nothing.

Measured in ``benchmarks/replay.py`` and ``benchmarks/adapt.py``; why these constants, in
``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import warnings

import numpy as np

from . import site, site_regression

MIN_EACH = 3  # taught spam and ham in the sample before a lesson regression is fitted
SCALE, GATE = 4.0, 5.0  # its gain: SCALE * b / (b + GATE)
MAX_LESSONS = 500  # lessons in its sample: a refit costs 20-250 ms (short SMS to long e-mails)
C = 10.0  # inverse strength of its l2 penalty (scikit-learn's C)


def gain(n_spam: int, n_ham: int) -> float:
    """The lesson regression's gain with ``n_spam``/``n_ham`` lessons in its sample."""
    b = min(n_spam, n_ham)
    return SCALE * b / (b + GATE)


def fit(columns: list[np.ndarray], y: np.ndarray) -> site.SiteRegression | None:
    """The lesson regression on lessons with feature ``columns`` and labels ``y`` (1 spam), or None
    with fewer than :data:`MIN_EACH` of either class."""
    n_spam = int(y.sum())
    if min(n_spam, len(y) - n_spam) < MIN_EACH:
        return None
    from sklearn.linear_model import LogisticRegression

    keys = np.unique(np.concatenate(columns))
    with site_regression.one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fit that stops at max_iter is still a fit
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
        weights = model.fit(site_regression._matrix(columns, keys), y).coef_[0]
    used = weights != 0.0
    if not used.any():
        return None
    return site.SiteRegression(keys[used], weights[used], gain(n_spam, len(y) - n_spam), on_lessons=True)


def refit(con: sqlite3.Connection, context: str) -> bool:
    """Refit and store the lesson regression of ``context`` if its sample changed (nothing when a
    moderation export calibrates the context: its regression is the export's). Returns whether it
    fitted. ValueError if a stored lesson is not one spamcli writes."""
    con.execute("BEGIN IMMEDIATE")  # the lessons of one moment, and no writer between
    try:
        fitted = _refit(con, context)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return fitted


def _refit(con: sqlite3.Connection, context: str) -> bool:
    if con.execute("SELECT 1 FROM calibration WHERE context = ?", (context,)).fetchone():
        return False
    # the first lessons in key order; keys are 'context:sha256', so the range is the context's
    sample = con.execute(
        "SELECT key, label FROM messages WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
        (f"{context}:", f"{context};", MAX_LESSONS),
    ).fetchall()
    digest = hashlib.sha256("".join(f"{key} {label}\n" for key, label in sample).encode()).hexdigest()
    stored = con.execute("SELECT digest FROM lesson_samples WHERE context = ?", (context,)).fetchone()
    if stored is not None and stored[0] == digest:
        return False
    regression = None
    labels = np.array([label == "spam" for _key, label in sample], dtype=np.int64)
    if min(labels.sum(), len(labels) - labels.sum()) >= MIN_EACH:
        blobs = dict(
            con.execute(
                "SELECT key, columns FROM message_columns WHERE key >= ? AND key <= ?",
                (sample[0][0], sample[-1][0]),
            ).fetchall()
        )
        if len(blobs) != len(sample):
            raise ValueError(f"a lesson of context {context!r} without its feature columns")
        columns = [np.frombuffer(blobs[key], dtype=np.int32).astype(np.int64) for key, _label in sample]
        regression = fit(columns, labels)
    con.execute("DELETE FROM regression WHERE context = ?", (context,))
    if regression is not None:
        con.execute(
            "INSERT INTO regression VALUES (?, ?, ?, ?)",
            (context, regression.gain, regression.columns.tobytes(), regression.weights.tobytes()),
        )
    con.execute(
        "INSERT INTO lesson_samples VALUES (?, ?) ON CONFLICT (context) DO UPDATE SET digest = excluded.digest",
        (context, digest),
    )
    return True
