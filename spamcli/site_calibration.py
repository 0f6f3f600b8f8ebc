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
message would be), with the base log-odds as a fixed offset and a ridge pulling ``gain`` to 1 and
``offset`` to 0, so a small export moves them little. ``offset`` is how the site's cut follows its
own decisions: a site whose genuine messages the layer pushes up gets a negative one.

Refitted after each export learned and after a decision is forgotten or relearned otherwise, on
the decisions then kept, deterministically: forgetting an export's messages returns the gain and
offset (and so every score) to what they were before it. With fewer than :data:`MIN_EACH` spam or
ham decisions there is no calibration (gain 1, offset 0).
"""

from __future__ import annotations

import sqlite3

import numpy as np

from . import site

MIN_EACH = 20  # spam and ham decisions needed before a site is calibrated
RIDGE = 1.0  # pull of gain to 1 and offset to 0, in decisions' worth of log-loss
GAIN_RANGE = (0.05, 4.0)  # as site.calibration_of checks on reading
OFFSET_RANGE = (-8.0, 8.0)
_CHUNK = 2_000  # decisions whose leave-one-out sums are computed at once


def record(con: sqlite3.Connection, context: str, keys: list[str], base_logits: np.ndarray) -> None:
    """Keep ``keys`` (``context:sha256``, already taught) as decisions of a moderation export."""
    con.execute("BEGIN IMMEDIATE")
    try:
        con.executemany(
            "INSERT INTO decisions VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET base_logit = excluded.base_logit",
            [(key, context, float(z)) for key, z in zip(keys, base_logits.tolist())],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def decided(con: sqlite3.Connection, keys: list[str]) -> set[str]:
    """Which of ``keys`` are kept as an export's decisions."""
    out: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        marks = ",".join("?" * len(chunk))
        out.update(k for (k,) in con.execute(f"SELECT key FROM decisions WHERE key IN ({marks})", chunk))
    return out


def refit(con: sqlite3.Connection, ctx, context: str) -> dict:
    """Fit and store the ``gain`` and ``offset`` of ``context`` on its decisions (``ctx``: its
    :class:`~spamcli.router.ContextModel`, for the base rates). Returns them with the decisions'
    counts (``spam``, ``ham``); with too few decisions, gain and offset are None and none is stored."""
    con.execute("BEGIN IMMEDIATE")  # one snapshot of counts and decisions, and no writer between
    try:
        fitted = _fit(con, ctx, context)
        con.execute("DELETE FROM calibration WHERE context = ?", (context,))
        if fitted["gain"] is not None:
            row = {"context": context, **fitted}
            con.execute("INSERT INTO calibration VALUES (:context, :gain, :offset, :spam, :ham)", row)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return fitted


def _fit(con: sqlite3.Connection, ctx, context: str) -> dict:
    rows = con.execute(
        "SELECT d.base_logit, m.label, c.columns FROM decisions d JOIN messages m USING (key) "
        "JOIN message_columns c USING (key) WHERE d.context = ? ORDER BY d.key",
        (context,),
    ).fetchall()
    y = np.array([label == "spam" for _z, label, _c in rows], dtype=np.float64)
    fitted = {"gain": None, "offset": None, "spam": int(y.sum()), "ham": int(len(y) - y.sum())}
    if min(fitted["spam"], fitted["ham"]) < MIN_EACH:
        return fitted
    layer = site.SiteLayer.read(con, context)
    base = np.array([z for z, _l, _c in rows])
    sums = np.concatenate(
        [
            _leave_one_out_sums(layer, ctx, [r[2] for r in rows[i : i + _CHUNK]], y[i : i + _CHUNK])
            for i in range(0, len(rows), _CHUNK)
        ]
    )
    fitted["gain"], fitted["offset"] = _logistic_fit(base, sums, y)
    return fitted


def _leave_one_out_sums(layer: site.SiteLayer, ctx, blobs: list[bytes], y: np.ndarray) -> np.ndarray:
    """The uncalibrated layer sum of each decision with its own counts taken out."""
    columns = [np.frombuffer(b, dtype=np.int32).astype(np.int64) for b in blobs]
    lengths = np.array([len(c) for c in columns])
    cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    pos = np.searchsorted(layer.columns, cols)  # every column of a taught message is in the layer
    own = np.repeat(y, lengths)
    spam, ham = layer.spam[pos] - own, layer.ham[pos] - (1.0 - own)
    q_ham, q_spam = ctx.base_rates(layer.columns)
    deltas = site.evidence(spam, ham, (q_ham[pos], q_spam[pos]))
    rows = np.repeat(np.arange(len(columns)), lengths)
    totals = np.bincount(rows, weights=deltas, minlength=len(columns))
    return site.weight_of(layer.n_messages - 1) * totals / np.sqrt(np.maximum(lengths, site.FLOOR))


def _logistic_fit(base: np.ndarray, sums: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Newton's method, with a backtracking line search, for ``min sum logloss(y, base + gain *
    sums + offset) + RIDGE/2 * ((gain - 1)^2 + offset^2)`` (convex); clipped to the allowed ranges."""

    def loss(w: np.ndarray) -> float:
        z = base + w[0] * sums + w[1]
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * RIDGE * ((w[0] - 1.0) ** 2 + w[1] ** 2))

    w = np.array([1.0, 0.0])
    current = loss(w)
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * (base + w[0] * sums + w[1])))  # the logistic, without overflow
        r = p - y
        grad = np.array([r @ sums + RIDGE * (w[0] - 1.0), r.sum() + RIDGE * w[1]])
        v = p * (1.0 - p)
        hess = np.array([[v @ (sums * sums) + RIDGE, v @ sums], [v @ sums, v.sum() + RIDGE]])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and loss(w - t * step) > current:  # a full Newton step can overshoot far
            t *= 0.5
        w = w - t * step
        previous, current = current, loss(w)
        if previous - current < 1e-10:
            break
    return float(np.clip(w[0], *GAIN_RANGE)), float(np.clip(w[1], *OFFSET_RANGE))
