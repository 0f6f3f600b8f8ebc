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

Deterministic, as a function of what is taught: the sample is the first ``MAX_LESSONS / 2`` lessons
of each class in key order (a sha256: a fixed, effectively random order; per class, so a site of
5,000 taught spam keeps its 40 taught genuine messages in it), fitted on one thread. So forgetting a
lesson returns every score bit for bit, and above that many lessons of a class most ``learn`` calls
leave the sample (and the fit) as it was: a lesson enters it with probability ``250 / n`` for
``n`` lessons of its class. The sample's digest is stored with the fit (table ``lesson_fits``),
and a ``learn`` whose sample is unchanged fits nothing. A site taught by an older spamcli gets its
lesson regression at its first ``learn`` after the upgrade (forgetting that lesson then keeps it:
the older scores were made without one).

Measured in ``benchmarks/replay.py`` and ``benchmarks/adapt.py``; why these constants, in
``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np

from . import site, site_regression

MIN_EACH = 3  # taught spam and ham in the sample before a lesson regression is fitted
SCALE, GATE = 4.0, 5.0  # its gain: SCALE * b / (b + GATE)
MAX_LESSONS = 500  # lessons in its sample, half of each class: a fit costs 20-300 ms (SMS to long e-mails)


def gain(n_spam: int, n_ham: int) -> float:
    """The lesson regression's gain with ``n_spam``/``n_ham`` lessons in its sample."""
    b = min(n_spam, n_ham)
    return SCALE * b / (b + GATE)


def fit(columns: list[np.ndarray], y: np.ndarray) -> site.SiteRegression | None:
    """The lesson regression on lessons with feature ``columns`` and labels ``y`` (1 spam), or None
    with fewer than :data:`MIN_EACH` of either class (or no feature at all)."""
    n_spam = int(y.sum())
    if min(n_spam, len(y) - n_spam) < MIN_EACH:
        return None
    keys = np.unique(np.concatenate(columns))
    if not len(keys):  # lessons without a feature (punctuation only)
        return None
    with site_regression.one_thread():
        weights = site_regression._weights(site_regression._matrix(columns, keys), y, balanced=True)
    used = weights != 0.0
    if not used.any():
        return None
    return site.SiteRegression(keys[used], weights[used], gain(n_spam, len(y) - n_spam), on_lessons=True)


def refit(con: sqlite3.Connection, context: str) -> bool:
    """Refit and store the lesson regression of ``context`` if its sample changed (nothing when a
    moderation export calibrates the context: its regression is the export's). Returns whether it
    fitted. ValueError if a stored lesson is not one spamcli writes.

    The fit runs outside the write lock (it can take a second, the first in a process mostly
    importing scipy): stored only if the sample is still the sample under the lock, else fitted
    again (:func:`site.refit_outside_lock`)."""

    def fit_sample(digest: str | None):
        if digest is None or _fitted_on(con, context) == digest:
            return site.UNCHANGED
        return fit(*_sample(con, context))

    def store(digest: str, regression: site.SiteRegression | None) -> None:
        _store(con, context, digest, regression)

    return site.refit_outside_lock(con, lambda: _sample_digest(con, context), fit_sample, store) is not site.UNCHANGED


_SAMPLE = "SELECT {} FROM messages m {} WHERE m.context = ? AND m.label = ? ORDER BY m.key LIMIT ?"


def _sample_digest(con: sqlite3.Connection, context: str) -> str | None:
    """The digest of the sample of ``context``: the first :data:`MAX_LESSONS` / 2 lessons of each
    class in key order (so lopsided lessons keep both classes); None when an export calibrates it."""
    if site.has_calibration(con, context):
        return None
    h = hashlib.sha256()
    for label in ("spam", "ham"):
        for (key,) in con.execute(_SAMPLE.format("m.key", ""), (context, label, MAX_LESSONS // 2)):
            h.update(f"{key} {label}\n".encode())
    return h.hexdigest()


def _fitted_on(con: sqlite3.Connection, context: str) -> str | None:
    """The digest of the sample the stored fit was made on, if that fit is still stored whole and
    sound (a regression row exactly when one was fitted: an older spamcli's refit deletes it)."""
    row = con.execute("SELECT digest, fitted FROM lesson_fits WHERE context = ?", (context,)).fetchone()
    if row is None:
        return None
    stored = con.execute(
        "SELECT gain, length(columns), length(weights) FROM regression WHERE context = ?", (context,)
    ).fetchone()
    if stored is not None and not _sound(*stored):  # damaged: fitted again, which replaces it
        return None
    return row[0] if bool(row[1]) == (stored is not None) else None


def _sound(gain, columns_bytes, weights_bytes) -> bool:
    """Whether a stored regression's gain and sizes are ones spamcli writes (checked at every
    ``learn`` without reading its arrays; a reader checks those)."""
    low, high = site.REGRESSION_GAIN_RANGE
    ok_gain = type(gain) is float and low < gain <= high
    return ok_gain and type(columns_bytes) is int and columns_bytes == weights_bytes and columns_bytes % 8 == 0


def _sample(con: sqlite3.Connection, context: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The feature columns and labels (1 spam) of the sample's lessons; a lesson whose columns are
    missing (a damaged database) is left out, not fatal: the lesson is taught all the same."""
    columns, labels = [], []
    for label in ("spam", "ham"):
        query = _SAMPLE.format("c.columns", "LEFT JOIN message_columns c USING (key)")
        for (blob,) in con.execute(query, (context, label, MAX_LESSONS // 2)):
            if isinstance(blob, bytes) and len(blob) % 4 == 0:
                columns.append(site.stored_columns(blob))
                labels.append(label == "spam")
    return columns, np.array(labels, dtype=np.int64)


def _store(con: sqlite3.Connection, context: str, digest: str, regression: site.SiteRegression | None) -> None:
    site.store_regression(con, context, regression)
    con.execute(
        "INSERT INTO lesson_fits VALUES (?, ?, ?) ON CONFLICT (context) DO UPDATE "
        "SET digest = excluded.digest, fitted = excluded.fitted",
        (context, digest, int(regression is not None)),
    )
