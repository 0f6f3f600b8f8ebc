"""The site layer's gain and offset, fitted on a moderation export's decisions.

A moderator's corrections are a biased sample of a site: by construction each one is a message the
model got wrong, and how many it got right is not in them. So corrections alone never move the
site's calibration (see ``benchmarks/README.md``, "Learning a community", for what that did). A
moderation export is different: what moderators hid *and* what they kept, every message of a
period, the sample a cut can honestly be chosen on. When ``spamcli learn`` takes one, each decision
is kept with the base model's log-odds for it (table ``decisions``), and the site's

    logit(score) = logit(base score) + gain * layer sum + offset

is fitted on every decision kept so far: a logistic regression of the decisions' labels on their
*leave-one-out* layer sums (each decision scored by the layer without its own counts, as an unseen
message would be, and its taught classes weighed alike, as a calibrated layer weighs them: see
:attr:`site.SiteLayer.class_weights`), with the base log-odds as a fixed offset and a ridge pulling ``gain`` to 1 and
``offset`` to 0, so a small export moves them little. ``offset`` is how the site's cut follows its
own decisions: a site whose genuine messages the layer pushes up gets a negative one. Each context
is fitted apart: an account export (``--context profile``) calibrates the bios' text scores, which
the profile scoring then combines with the account signals as always.

Refitted after each export learned and whenever the decisions kept no longer match those the
calibration was fitted on (a decision forgotten or relearned otherwise, even by a run that stopped
before its refit), deterministically: forgetting the only export returns every score to what it was
before it, and forgetting a later export returns the earlier calibration exactly if nothing else was
taught in between (corrections change the counts the fit reads). With fewer than :data:`MIN_EACH`
spam or ham decisions there is no calibration (gain 1, offset 0). The base log-odds kept are the base
model's of the day: after ``train --out`` over the same directory, learn the exports again.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from . import site, site_regression
from .errors import ModelError

MIN_EACH = 20  # spam and ham decisions needed before a site is calibrated
RIDGE = 1.0  # pull of gain to 1 and offset to 0, in decisions' worth of log-loss
_CHUNK = 2_000  # decisions whose leave-one-out sums are computed at once


def stale(con: sqlite3.Connection, context: str) -> bool:
    """Whether the stored calibration of ``context`` was not fitted on the decisions kept now (one
    was forgotten or relearned otherwise since, perhaps by a run that stopped before its refit), or
    was fitted by an older spamcli (raw counts, no regression: scored as then until refitted)."""
    counts = dict(
        con.execute(
            "SELECT m.label, COUNT(*) FROM decisions d JOIN messages m USING (key) "
            "WHERE d.context = ? GROUP BY m.label",
            (context,),
        ).fetchall()
    )
    spam, ham = counts.get("spam", 0), counts.get("ham", 0)
    row = con.execute("SELECT spam, ham FROM calibration WHERE context = ?", (context,)).fetchone()
    if row is None:
        return min(spam, ham) >= MIN_EACH
    if tuple(row) != (spam, ham):
        return True
    try:
        return site.fit_version_of(con, context) != site.FIT_VERSION
    except ValueError:  # a version spamcli never writes, or a newer one's: the refit replaces it
        return True


def refit(con: sqlite3.Connection, ctx, context: str) -> dict:
    """Fit and store the ``gain`` and ``offset`` of ``context`` on its decisions (``ctx``: its
    :class:`~spamcli.router.ContextModel`, for the base rates). Returns them with the decisions'
    counts (``spam``, ``ham``); with too few decisions, gain and offset are None and none is stored.

    The fit (seconds for thousands of decisions) runs outside the write lock, so other writers
    (``serve``'s learns) do not wait for it (:func:`site.refit_outside_lock`): it is stored if what
    it read (the context's journal and decisions) is unchanged, else fitted again."""

    def fit(_read) -> dict:
        try:
            with site_regression.one_thread():
                return _fit(con, ctx, context)
        except (ValueError, TypeError) as exc:  # a damaged site database: say so, fit nothing
            raise ModelError(f"site database damaged: {exc}") from None

    def store(_read, fitted: dict) -> None:
        _store(con, context, fitted)

    return site.refit_outside_lock(con, lambda: _what_the_fit_reads(con, context), fit, store)


def _what_the_fit_reads(con: sqlite3.Connection, context: str) -> tuple:
    """What a refit of ``context`` depends on, cheaply: every lesson taught or forgotten there
    moves its newest journal entry (another context's do not), and every decision kept is counted
    and summed here."""
    journal = con.execute("SELECT COALESCE(MAX(seq), 0) FROM changes WHERE context = ?", (context,)).fetchone()
    decisions = con.execute(
        "SELECT COUNT(*), TOTAL(base_logit) FROM decisions WHERE context = ?", (context,)
    ).fetchone()
    return *journal, *decisions


def _store(con: sqlite3.Connection, context: str, fitted: dict) -> None:
    """Replace the stored calibration of ``context`` with ``fitted`` (its regression popped)."""
    # the regression on the lessons too: site_lessons fits it again if no calibration is stored
    for table in ("calibration", "fit_versions", "lesson_fits"):
        con.execute(f"DELETE FROM {table} WHERE context = ?", (context,))  # noqa: S608 - our names
    if fitted["gain"] is not None:
        row = {"context": context, **fitted}
        con.execute("INSERT INTO calibration VALUES (:context, :gain, :offset, :spam, :ham)", row)
        con.execute("INSERT INTO fit_versions VALUES (?, ?)", (context, site.FIT_VERSION))
    site.store_regression(con, context, fitted.pop("regression"))


def _fit(con: sqlite3.Connection, ctx, context: str) -> dict:
    rows = con.execute(
        "SELECT d.base_logit, m.label, c.columns FROM decisions d JOIN messages m USING (key) "
        "JOIN message_columns c USING (key) WHERE d.context = ? ORDER BY d.key",
        (context,),
    ).fetchall()
    y = np.array([label == "spam" for _z, label, _c in rows], dtype=np.float64)
    fitted = {"gain": None, "offset": None, "spam": int(y.sum()), "ham": int(len(y) - y.sum())}
    fitted.update(regression_gain=None, regression=None)
    if min(fitted["spam"], fitted["ham"]) < MIN_EACH:
        return fitted
    layer = site.SiteLayer.read(con, context, raw=True)
    if layer is None:
        raise ValueError("decisions kept but nothing taught")
    base = np.array([z for z, _l, _c in rows], dtype=np.float64)  # ValueError if not numbers
    if not np.isfinite(base).all():
        raise ValueError("a decision's base log-odds is not a finite number")
    columns = [site.stored_columns(r[2]) for r in rows]  # ValueError if misshapen
    sums = np.concatenate(
        [
            _leave_one_out_sums(layer, ctx, columns[i : i + _CHUNK], y[i : i + _CHUNK], y)
            for i in range(0, len(rows), _CHUNK)
        ]
    )
    weights, held_out = site_regression.fit(columns, y)
    if weights is not None:  # the layer, the regression and the offset, weighed together
        gain, reg_gain, offset = _logistic_fit(base, np.column_stack([sums, held_out]), y)
        if reg_gain > site.REGRESSION_GAIN_RANGE[0]:
            fitted.update(gain=gain, offset=offset, regression_gain=reg_gain)
            fitted["regression"] = site.SiteRegression(*weights, reg_gain)
    if fitted["regression"] is None:  # none, or one that would count against its own evidence
        fitted["gain"], fitted["offset"] = _logistic_fit(base, sums[:, None], y)
    if not np.isfinite([fitted["gain"], fitted["offset"], fitted["regression_gain"] or 0.0]).all():
        raise ValueError("the site calibration did not converge")
    return fitted


def _leave_one_out_sums(
    layer: site.SiteLayer, ctx, columns: list[np.ndarray], y: np.ndarray, all_y: np.ndarray
) -> np.ndarray:
    """The layer sum of each decision (its distinct feature ``columns``, label ``y``) with its own
    counts taken out, before gain and offset, with the class weights of a calibrated layer
    (:attr:`site.SiteLayer.class_weights`) over ``all_y``, the labels of every decision."""
    from .router import sorted_positions

    lengths = np.array([len(c) for c in columns], dtype=np.int64)
    cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    pos, found = sorted_positions(layer.columns, cols)  # every column of a taught message is in the layer...
    own = np.repeat(y, lengths)
    if not found.all():
        raise ValueError("a decision's features are missing from the taught counts")
    spam, ham = layer.spam[pos] - own, layer.ham[pos] - (1.0 - own)
    if (spam < 0).any() or (ham < 0).any():  # ...and counted there at least once
        raise ValueError("a decision's features are counted less than once")
    q_ham, q_spam = ctx.base_rates(layer.columns)
    n_spam = all_y.sum() - own  # the decisions' classes, each decision's own one without it
    spam_weight, ham_weight = site.balancing(n_spam, len(all_y) - 1 - n_spam)  # as the calibrated layer weighs them
    deltas = site.evidence(spam_weight * spam, ham_weight * ham, (q_ham[pos], q_spam[pos]))
    totals = site._row_sums(np.concatenate([[0], np.cumsum(lengths)]), deltas)
    return site.weight_of(layer.n_messages - 1) * totals / np.sqrt(np.maximum(lengths, site.FLOOR))


def _logistic_fit(base: np.ndarray, sums: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    """Newton's method, with a backtracking line search, for ``min sum logloss(y, base + gain *
    sums[:, 0] + reg_gain * sums[:, 1] + offset) + RIDGE/2 * ((gain - 1)^2 + reg_gain^2 + offset^2)``
    (convex; ``sums`` the layer's, and the regression's if it has a second column); ``(gain,
    [reg_gain,] offset)`` clipped to the allowed ranges."""
    x = np.column_stack([sums, np.ones(len(base))])  # the inputs, the offset's last
    centre = np.zeros(x.shape[1])
    centre[0] = 1.0

    def loss(w: np.ndarray) -> float:
        z = base + x @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * RIDGE * np.sum((w - centre) ** 2))

    w = centre.copy()
    current = loss(w)
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * (base + x @ w)))  # the logistic, without overflow
        grad = x.T @ (p - y) + RIDGE * (w - centre)
        hess = (x.T * (p * (1.0 - p))) @ x + RIDGE * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and loss(w - t * step) > current:  # a full Newton step can overshoot far
            t *= 0.5
        w = w - t * step
        previous, current = current, loss(w)
        if previous - current < 1e-10:
            break
    middle = [float(np.clip(v, *site.REGRESSION_GAIN_RANGE)) for v in w[1:-1]]
    return float(np.clip(w[0], *site.GAIN_RANGE)), *middle, float(np.clip(w[-1], *site.OFFSET_RANGE))
