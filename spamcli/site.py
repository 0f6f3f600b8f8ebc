"""The site layer: what a community's moderators taught with ``spamcli learn``, on top of the base model.

Why a layer of its own: the base model is trained on tens of thousands of messages from other
places. Adding a few hundred local corrections to its counts changes nothing (they drown), and the
regression on top of the counts gives no weight to words it never saw, which is most of a new
community's vocabulary. So learned messages are counted apart, per context, and their evidence is
added to the base model's calibrated log-odds::

    logit(score) = logit(base score) + weight(n) * sum_j delta_j / sqrt(max(k, FLOOR))

over the ``k`` distinct features ``j`` of the message, where, with ``s_j``/``h_j`` the number of
taught spam/ham messages holding feature ``j`` and ``q_s``/``q_h`` the share of the base model's
training spam/ham holding it (the fallback's counts)::

    delta_j = log(1 + s_j / (PRIOR * q_s[j])) - log(1 + h_j / (PRIOR * q_h[j]))

with each rate ``q`` at least :data:`RATE_FLOOR`.

- A feature no moderator has seen adds nothing (``delta = 0``), whatever the balance of what was
  taught: moderators teach only mistakes (flagged genuine messages, missed spam), a very lopsided
  sample, and a class prior taken from it would shift every score.
- A feature is evidence in proportion to how surprising it is *against the base data*: a word in
  every second base message ("the", "you") moves little, a name or a shop's URL never seen in
  training moves a lot. That is what makes a correction reach *similar* messages, not just the one.
- ...but no feature is taken as rarer than :data:`RATE_FLOOR` (one base message in 200). Without the
  floor, a feature the base data never held (the base model had almost no Russian, say) counted as
  held by one message in 30,000, so a single taught Russian spam moved *every* Russian message by
  several log-odds, genuine ones included, and the ranking of a new community collapsed after its
  first few lessons (measured in ``benchmarks/adapt.py``: Telegram 0.91 -> 0.59 AUC after 50
  reviewed messages with neither the floor nor the weight below, 0.83 with both).
- ...but without an export's calibration, the larger taught class counts as at most
  ``min(CLASS_RATIO * b + CLASS_SLACK, b + CLASS_GAP)`` messages, for ``b`` taught of the smaller
  (:func:`lesson_class_weights`, as :attr:`SiteLayer.class_weights`). A week of corrections is
  left as taught, but a team that teaches every spam it hides and no genuine message was teaching
  every word common to its site as spam: 98% of a Telegram group's genuine messages flagged after a
  week of hides, 3.6% with the cap (``benchmarks/replay.py --teaching hidden-only``).
- ``weight(n) = n / (n + HALF_WEIGHT)`` grows with the number ``n`` of taught messages: the first
  correction has half the layer's strength (enough to move a near-duplicate of it across a label,
  not enough for one lesson to swing the whole site), the tenth 90%.

**Calibration from a moderation export** (:mod:`spamcli.site_calibration`): the layer's sum above is
a naive-Bayes sum, and its scale suits a few corrections, not hundreds of decisions (taught every
decision of a week, the layer pushed Turkish SMS to 15% false positives at an AUC of 0.999). When
``learn`` takes a moderation export, whose hides *and* keeps are an honest sample of the site (not
its mistakes alone), the site's ``gain`` and ``offset`` are fitted on those decisions' leave-one-out
scores::

    logit(score) = logit(base score) + gain * layer sum + offset

and the offset is how the site's cut follows its own decisions. Without an export: gain 1, offset 0.
A calibrated layer also weighs its taught classes alike (:attr:`SiteLayer.class_weights`: ``s_j`` and
``h_j`` above times ``n / 2n_spam`` and ``n / 2n_ham``, for the ``n`` export decisions the calibration
was fitted on, fixed until the next refit). An export holds the site's own share of spam
(three quarters of a Telegram group's week): counted raw, every feature common to the site's messages,
a space or a digit, became spam evidence, and taught one such week the layer cost the other test sets
0.11 AUC (0.993 -> 0.877 in ``benchmarks/adapt.py``). The site's share of spam is the offset's to
carry, not the features'. Corrections alone keep their counts (the larger class capped, above)
rather than balanced: they are the model's mistakes, and their balance says nothing about the site.
The same refit adds a regression on the export's decisions, weighed with the layer
(:mod:`spamcli.site_regression`). Without an export, a regression on the lessons themselves, once
both classes hold a few, with a fixed gain schedule (:mod:`spamcli.site_lessons`).

Counts are integers in an SQLite database (``MODEL_DIR/site.sqlite``): learning or forgetting a
batch of messages is one small transaction (durable when it returns, safe with concurrent writers), and
forgetting subtracts exactly what learning added, so every score returns bit for bit.

Each transaction also appends to a journal (``changes``, the last :data:`JOURNAL_KEEP` kept), so a
long-running reader (``spamcli serve``'s workers) follows what others taught by applying only the
new entries (:class:`SiteFollower`) instead of reloading the whole layer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import sqlite3

from .bundle import SITE_DB
from .errors import ModelError
from .router import sorted_positions

log = logging.getLogger("spamcli.site")

PRIOR = 100.0  # pseudo-messages of base evidence behind each feature's rate
RATE_FLOOR = 0.005  # no feature's base rate is taken as lower than this
HALF_WEIGHT = 1.0  # taught messages at which the layer has half its full weight
# Without an export's calibration, the larger taught class counts as at most
# min(CLASS_RATIO * smaller + CLASS_SLACK, smaller + CLASS_GAP) lessons (lesson_class_weights)
CLASS_RATIO, CLASS_SLACK, CLASS_GAP = 3.0, 10.0, 20.0
FLOOR = 100.0  # a message is normalised as if it had at least this many features
GAIN_RANGE = (0.05, 4.0)  # a site calibration's allowed gain and offset (site_calibration clips its fit to them)
OFFSET_RANGE = (-8.0, 8.0)
# A calibration fitted with both classes weighed alike, and perhaps a regression (2), or by a spamcli
# before (1: raw counts, no regression): scored as it was fitted, refitted at the next export or forget.
FIT_VERSION = 2
REGRESSION_GAIN_RANGE = (0.0, 4.0)  # a site regression's allowed gain (site_calibration fits none below 0)
LABELS = {"ham": 0, "spam": 1}
JOURNAL_KEEP = 100_000  # journal entries kept for followers; one that falls further behind reloads

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    key TEXT PRIMARY KEY,          -- context ':' sha256 of the normalised text
    context TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('spam', 'ham'))
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_columns (
    key TEXT PRIMARY KEY,
    columns BLOB NOT NULL          -- the message's distinct feature columns, int32, as counted
);
CREATE TABLE IF NOT EXISTS counts (
    context TEXT NOT NULL,
    col INTEGER NOT NULL,
    spam INTEGER NOT NULL,
    ham INTEGER NOT NULL,
    PRIMARY KEY (context, col)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    context TEXT NOT NULL,
    key TEXT NOT NULL,
    before TEXT,                   -- the label it had (NULL: not taught)
    after TEXT,                    -- the label it has now (NULL: forgotten)
    columns BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    key TEXT PRIMARY KEY,          -- a message taught from a moderation export (its label: messages)
    context TEXT NOT NULL,
    base_logit REAL NOT NULL       -- the base model's log-odds for it, without the site layer
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calibration (
    context TEXT PRIMARY KEY,
    gain REAL NOT NULL,
    offset REAL NOT NULL,
    spam INTEGER NOT NULL,         -- the decisions it was fitted on
    ham INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fit_versions (
    context TEXT PRIMARY KEY,      -- how its calibration was fitted (no row: version 1)
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS regression (
    context TEXT PRIMARY KEY,      -- fitted with the calibration, on the same decisions, or without
                                   -- one on the lessons (site_lessons)
    gain REAL NOT NULL,
    columns BLOB NOT NULL,         -- int64, sorted
    weights BLOB NOT NULL          -- float64, one per column
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lesson_fits (
    context TEXT PRIMARY KEY,      -- the sample its lesson regression was fitted on (site_lessons)
    digest TEXT NOT NULL,
    fitted INTEGER NOT NULL        -- whether that fit stored a regression
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_label ON messages (context, label, key);
CREATE INDEX IF NOT EXISTS decisions_by_context ON decisions (context);
CREATE TABLE IF NOT EXISTS totals (
    context TEXT NOT NULL,
    label TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (context, label)
) WITHOUT ROWID;
"""


def connect(directory: Path, create: bool = False, reader: bool = False) -> sqlite3.Connection | None:
    """The site database of a model directory (None if it has none and ``create`` is false).

    SQLite needs write access to read a database in WAL mode (its shared-memory index). When it
    is refused that, a ``reader`` opens the database as an immutable file if nobody can change it
    (see :func:`_unchangeable`: a model deployed read-only); otherwise an OperationalError says
    what to do."""
    path = Path(directory) / SITE_DB
    if not create and not path.is_file():
        return None
    import sqlite3  # here: a model without a site database never needs it

    try:
        return _open(path)
    except sqlite3.OperationalError as exc:
        refused = "readonly" in str(exc) or "unable to open" in str(exc)
        if not (reader and refused and path.is_file()):
            raise
        if _unchangeable(path):
            return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None)
        if _pending_log(path):
            raise sqlite3.OperationalError(
                f"{exc}; {path.name}-wal holds taught messages not yet written into {path.name}: open the "
                "model once with write access (spamcli info --model DIR) before deploying it read-only"
            ) from None
        raise sqlite3.OperationalError(
            f"{exc}: this user may not write it, and others may change it (SQLite then needs write access "
            "to read it): run as its owner, give this user write access, or make the model directory and "
            "site.sqlite read-only for all (chmod -R a-w) to use them as they are"
        ) from None


def damage_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged or foreign site database raises: SQLite's errors, and ours on a row
    spamcli never writes (a count or calibration not a number, a ragged column list)."""
    import sqlite3

    return (sqlite3.Error, ValueError, TypeError, OverflowError)


@contextlib.contextmanager
def reading(directory: Path):
    """Turn what reading ``directory``'s site database raises into a ModelError (exit 4) naming it."""
    try:
        yield
    except damage_errors() as exc:
        raise ModelError(f"site database unreadable: {Path(directory) / SITE_DB}: {exc}") from None


def _open(path: Path):
    import sqlite3

    con = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    # Two first learns at once: switching a new database to WAL (and creating its tables) can be
    # refused with "database is locked" without SQLite's busy wait; retry, as the wait would.
    deadline = time.monotonic() + 60.0
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
            return con
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                con.close()
                raise
            time.sleep(0.01)


def _pending_log(path: Path) -> bool:
    """Whether a write-ahead log with changes not yet in the database file lies beside it."""
    wal = path.with_name(path.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _unchangeable(path: Path) -> bool:
    """Whether nobody can change the site database at ``path``: it is on a read-only file system,
    or neither it nor its directory has a write bit; and no write-ahead log with changes not yet in
    the file lies beside it (an immutable reader would not see them)."""
    try:
        if _pending_log(path):
            return False
        if hasattr(os, "statvfs") and os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
        return not (path.stat().st_mode | path.parent.stat().st_mode) & 0o222
    except OSError:
        return False


@dataclass
class SiteLayer:
    """The taught counts of one context, ready to score (see module docstring)."""

    columns: np.ndarray  # int64, sorted: features held by at least one taught message
    spam: np.ndarray  # float64: taught spam messages holding each column
    ham: np.ndarray  # float64: taught ham messages holding each column
    n_messages: int
    gain: float = 1.0  # fitted on a moderation export's decisions (site_calibration), else 1 and 0
    offset: float = 0.0
    regression: SiteRegression | None = None  # fitted on an export's decisions with gain and offset, or on the lessons
    # weights of the taught spam and ham counts: under a calibration fitted with the classes weighed
    # alike (FIT_VERSION 2), those that make its decisions' two classes count alike; without one,
    # the larger class capped (lesson_class_weights); 1 and 1 under an older spamcli's calibration
    class_weights: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def read(cls, con: sqlite3.Connection, context: str, raw: bool = False) -> SiteLayer | None:
        """The layer of ``context``, or None when nothing is taught there; ``raw``: its counts only,
        without the site's calibration (which a refit replaces, damaged or not)."""
        n = sum(taught(con).get(context, {}).values())
        if not n:
            return None
        rows = con.execute(
            "SELECT col, spam, ham FROM counts WHERE context = ? AND (spam != 0 OR ham != 0) ORDER BY col", (context,)
        ).fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 3)
        if (table[:, 1:] < 0).any():
            raise ValueError(f"negative taught counts in context {context!r}")
        if not rows and _has_featured_lesson(con, context):
            raise ValueError(f"context {context!r} has taught messages with features but no counts")
        layer = cls(table[:, 0], table[:, 1].astype(np.float64), table[:, 2].astype(np.float64), int(n))
        return layer if raw else layer.calibrated(fit_of(con, context))

    def calibrated(self, fit: SiteFit) -> SiteLayer:
        """This layer with the site's ``fit`` (itself if it is unchanged)."""
        regression = fit.regression
        same = regression is self.regression or (
            regression is not None and self.regression is not None and regression.same_as(self.regression)
        )
        if (fit.gain, fit.offset, fit.class_weights) == (self.gain, self.offset, self.class_weights) and same:
            return self
        return replace(self, gain=fit.gain, offset=fit.offset, regression=regression, class_weights=fit.class_weights)

    @property
    def weight(self) -> float:
        return weight_of(self.n_messages)

    @property
    def is_calibrated(self) -> bool:
        """Whether a moderation export's fit changed the gain or offset from 1 and 0, or a regression
        (an export's, or the lessons') is added."""
        return (self.gain, self.offset) != (1.0, 0.0) or self.regression is not None

    def deltas(self, base_rates: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``delta_j`` per taught column, from the base rates ``(q_h, q_s)`` at those columns."""
        spam_weight, ham_weight = self.class_weights
        return evidence(spam_weight * self.spam, ham_weight * self.ham, base_rates)

    def contributions(self, columns: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """The log-odds each of one message's distinct ``columns`` gets from the layer and its
        regression (they add up to its :meth:`shift` less the site's ``offset``, which no word
        carries), for ``--explain``."""
        columns = np.asarray(columns, dtype=np.int64)
        per_column = _looked_up(self.columns, deltas, columns)
        out = self.gain * self.weight * per_column / np.sqrt(max(len(columns), FLOOR))
        if self.regression is not None:
            out = out + self.regression.contributions(columns)
        return out

    def shift(self, indptr: np.ndarray, indices: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """The log-odds each row (CSR ``indptr``/``indices``, distinct columns) gets from the layer."""
        if not len(self.columns):  # only messages without features were taught
            shifts = np.full(len(indptr) - 1, self.offset)
            return shifts if self.regression is None else shifts + self.regression.shift(indptr, indices)
        pos, hit = sorted_positions(self.columns, indices)
        sums = _row_sums(indptr, np.where(hit, deltas[pos], 0.0))
        shifts = self.weight * sums / np.sqrt(np.maximum(np.diff(indptr), FLOOR))
        if self.is_calibrated:
            shifts = self.gain * shifts + self.offset
        if self.regression is not None:
            aligned = self._regression_weights
            if aligned is None:  # a regression column the layer does not hold (not one spamcli fits)
                return shifts + self.regression.shift(indptr, indices)
            shifts = shifts + self.regression.scaled(indptr, np.where(hit, aligned[pos], 0.0))  # one lookup for both
        return shifts

    @functools.cached_property
    def _regression_weights(self) -> np.ndarray | None:
        """The regression's weights at this layer's columns (0 off its own), or None if it holds a
        column the layer does not: a regression is fitted on taught decisions, whose columns the
        layer counts, so :meth:`shift` looks a message's columns up once for both."""
        reg = self.regression
        pos, found = sorted_positions(self.columns, reg.columns)
        if not found.all():
            return None
        aligned = np.zeros(len(self.columns))
        aligned[pos] = reg.weights
        return aligned


@dataclass(frozen=True, eq=False)
class SiteRegression:
    """A logistic regression on a context's moderation-export decisions, weighed by the gain the
    site calibration fitted for it (:mod:`spamcli.site_calibration`), or on its lessons, weighed by
    :func:`spamcli.site_lessons.gain`: a message with ``k`` distinct columns gets
    ``gain * sum_j weights_j / sqrt(k)`` (``weights_j`` 0 off ``columns``)."""

    columns: np.ndarray  # int64, sorted
    weights: np.ndarray  # float64
    gain: float
    on_lessons: bool = False  # fitted on the lessons (site_lessons), not on an export's decisions

    def same_as(self, other: SiteRegression) -> bool:
        return (
            self.gain == other.gain
            and self.on_lessons == other.on_lessons
            and np.array_equal(self.columns, other.columns)
            and np.array_equal(self.weights, other.weights)
        )

    def contributions(self, columns: np.ndarray) -> np.ndarray:
        """The log-odds each of one message's distinct ``columns`` gets from the regression."""
        return self.gain * _looked_up(self.columns, self.weights, columns) / np.sqrt(max(len(columns), 1))

    def shift(self, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """The log-odds each row (CSR ``indptr``/``indices``, distinct columns) gets from the regression."""
        return self.scaled(indptr, _looked_up(self.columns, self.weights, indices))

    def scaled(self, indptr: np.ndarray, per_entry: np.ndarray) -> np.ndarray:
        """Each row's sum of its entries' weights ``per_entry``, weighed: its log-odds from the regression."""
        return self.gain * _row_sums(indptr, per_entry) / np.sqrt(np.maximum(np.diff(indptr), 1))


def _has_featured_lesson(con: sqlite3.Connection, context: str) -> bool:
    """Whether a message taught in ``context`` has a feature (so the counts cannot all be 0)."""
    query = (
        "SELECT 1 FROM messages m JOIN message_columns c USING (key) "
        "WHERE m.context = ? AND length(c.columns) > 0 LIMIT 1"
    )
    return con.execute(query, (context,)).fetchone() is not None


def _looked_up(keys: np.ndarray, values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``values`` at ``columns`` in the sorted ``keys`` (0 where a column is not a key)."""
    pos, found = sorted_positions(keys, columns)
    return np.where(found, values[pos], 0.0) if len(keys) else np.zeros(len(found))


def _row_sums(indptr: np.ndarray, per_entry: np.ndarray) -> np.ndarray:
    """The sum of ``per_entry`` over each row of a CSR ``indptr``."""
    counts = np.diff(indptr)
    return np.bincount(np.repeat(np.arange(len(counts)), counts), weights=per_entry, minlength=len(counts))


def evidence(spam: np.ndarray, ham: np.ndarray, base_rates: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``delta_j`` of features held by ``spam``/``ham`` taught messages, against base rates ``(q_h, q_s)``."""
    q_ham, q_spam = (np.maximum(q, RATE_FLOOR) for q in base_rates)
    return np.log1p(spam / (PRIOR * q_spam)) - np.log1p(ham / (PRIOR * q_ham))


def balancing(n_spam: int | np.ndarray, n_ham: int | np.ndarray) -> tuple:
    """The weights that make ``n_spam`` taught spam and ``n_ham`` taught ham count alike (1 for a
    class with none taught, whose counts are all zero anyway)."""
    n_spam, n_ham = np.asarray(n_spam, dtype=np.float64), np.asarray(n_ham, dtype=np.float64)
    total = n_spam + n_ham
    spam_weight = np.where(n_spam > 0, total / (2.0 * np.maximum(n_spam, 1.0)), 1.0)
    ham_weight = np.where(n_ham > 0, total / (2.0 * np.maximum(n_ham, 1.0)), 1.0)
    if spam_weight.ndim == 0:
        return float(spam_weight), float(ham_weight)
    return spam_weight, ham_weight


def lesson_class_weights(n_spam: int, n_ham: int) -> tuple[float, float]:
    """The weights of a layer's taught spam and ham counts without an export's calibration: the
    larger class counts as at most ``min(CLASS_RATIO * smaller + CLASS_SLACK, smaller + CLASS_GAP)``
    lessons (1 and 1 until it outgrows that). See the module docstring."""

    def cap(n_other: int) -> float:
        return min(CLASS_RATIO * n_other + CLASS_SLACK, n_other + CLASS_GAP)

    spam = min(1.0, cap(n_ham) / n_spam) if n_spam else 1.0
    ham = min(1.0, cap(n_spam) / n_ham) if n_ham else 1.0
    return spam, ham


def weight_of(n_messages: int) -> float:
    """The layer's weight with ``n_messages`` taught."""
    return n_messages / (n_messages + HALF_WEIGHT)


@dataclass(frozen=True)
class SiteFit:
    """What a moderation export's refit stored for a context (site_calibration): its gain and offset,
    the class weights they were fitted with, and the regression (None when there is none); without
    an export, the lessons' class weights (:func:`lesson_class_weights`) and their regression
    (site_lessons)."""

    gain: float = 1.0
    offset: float = 0.0
    class_weights: tuple[float, float] = (1.0, 1.0)
    regression: SiteRegression | None = field(default=None, compare=False)


def fit_of(con: sqlite3.Connection, context: str) -> SiteFit:
    """The stored :class:`SiteFit` of ``context`` (gain 1, offset 0, the lessons' class weights and
    their regression, if any, until an export is fitted; a calibration of an older spamcli as it
    was fitted: raw counts, no regression); ValueError or TypeError if a row is not one spamcli
    writes."""
    row = _calibration_row(con, context)
    if row is None:  # lessons: the classes kept near each other, and perhaps their regression (site_lessons)
        n = taught(con).get(context, {})
        weights = lesson_class_weights(n.get("spam", 0), n.get("ham", 0))
        return SiteFit(class_weights=weights, regression=regression_of(con, context, on_lessons=True))
    gain, offset, spam, ham, version = row
    gain, offset = float(gain), float(offset)  # ValueError/TypeError if not numbers
    if not (GAIN_RANGE[0] <= gain <= GAIN_RANGE[1] and OFFSET_RANGE[0] <= offset <= OFFSET_RANGE[1]):
        raise ValueError(f"site calibration of context {context!r} out of range: gain {gain}, offset {offset}")
    if _version(context, version) < FIT_VERSION:
        return SiteFit(gain, offset)
    if not (type(spam) is int and type(ham) is int and spam > 0 and ham > 0):
        raise ValueError(f"site calibration of context {context!r}: decisions {spam!r} spam, {ham!r} ham")
    return SiteFit(gain, offset, balancing(spam, ham), regression_of(con, context))


def fit_version_of(con: sqlite3.Connection, context: str) -> int:
    """How the calibration of ``context`` was fitted: :data:`FIT_VERSION`, or 1 (by an older spamcli,
    or none stored). ValueError for a version spamcli never writes, or one of a newer spamcli."""
    row = _calibration_row(con, context)
    return 1 if row is None else _version(context, row[4])


def _calibration_row(con: sqlite3.Connection, context: str) -> tuple | None:
    """``(gain, offset, spam, ham, version)`` of the stored calibration of ``context`` (version None:
    fitted by an older spamcli), or None."""
    query = "SELECT c.gain, c.offset, c.spam, c.ham, {} FROM calibration c {} WHERE c.context = ?"
    try:
        return con.execute(query.format("f.version", "LEFT JOIN fit_versions f USING (context)"), (context,)).fetchone()
    except Exception as exc:  # a read-only database of an older spamcli has no such table
        if "no such table" not in str(exc):
            raise
    try:
        return con.execute(query.format("NULL", ""), (context,)).fetchone()
    except Exception as exc:  # ...or not even the calibration table
        if "no such table" not in str(exc):
            raise
        return None


def _version(context: str, version) -> int:
    """A stored fit version, checked (None: 1, an older spamcli's fit)."""
    if version is None:
        return 1
    if type(version) is not int or not 1 <= version <= FIT_VERSION:
        newer = type(version) is int and version > FIT_VERSION
        raise ValueError(
            f"site fit of context {context!r} is version {version!r}"
            + (f", newer than this spamcli's {FIT_VERSION}: upgrade spamcli" if newer else ": not one spamcli writes")
        )
    return version


def regression_of(con: sqlite3.Connection, context: str, on_lessons: bool = False) -> SiteRegression | None:
    """The site regression of ``context`` (``on_lessons``: the context has no export calibration, so
    it is the lessons'): None until fitted on an export or on the lessons (or in a database of an
    older spamcli). ValueError if the stored one is not one spamcli writes."""
    try:
        row = con.execute("SELECT gain, columns, weights FROM regression WHERE context = ?", (context,)).fetchone()
    except Exception as exc:  # a read-only database of an older spamcli has no such table
        if "no such table" not in str(exc):
            raise
        return None
    if row is None:
        return None
    gain = float(row[0])  # ValueError/TypeError if not a number
    columns = np.frombuffer(row[1], dtype=np.int64)  # ValueError if misshapen, TypeError if not a blob
    weights = np.frombuffer(row[2], dtype=np.float64)
    ok_gain = REGRESSION_GAIN_RANGE[0] < gain <= REGRESSION_GAIN_RANGE[1]
    if not ok_gain or len(columns) != len(weights) or (np.diff(columns) <= 0).any() or not np.isfinite(weights).all():
        raise ValueError(f"site regression of context {context!r} damaged")
    return SiteRegression(columns, weights, gain, on_lessons)


def store_regression(con: sqlite3.Connection, context: str, regression: SiteRegression | None) -> None:
    """Replace the stored site regression of ``context`` by ``regression`` (None: none), inside the
    caller's transaction."""
    con.execute("DELETE FROM regression WHERE context = ?", (context,))
    if regression is not None:
        con.execute(
            "INSERT INTO regression VALUES (?, ?, ?, ?)",
            (context, regression.gain, regression.columns.tobytes(), regression.weights.tobytes()),
        )


UNCHANGED = object()  # what a refit's fit returns when there is nothing to store (refit_outside_lock)


def refit_outside_lock(con: sqlite3.Connection, version, fit, store, attempts: int = 3):
    """How the site's refits (a calibration, a lesson regression: up to seconds) run without making
    other writers wait: ``version()`` says cheaply what the fit depends on; ``fit(version)`` runs on
    one read snapshot, outside the write lock, and returns what to store (or :data:`UNCHANGED`:
    nothing); ``store(version, result)`` runs under the lock, only if ``version()`` still says the
    same there, else the fit runs again on what was taught meanwhile, and the last attempt fits
    under the lock. Returns the result stored (or UNCHANGED); what ``fit`` or ``store`` raise leaves
    no transaction open."""
    for attempt in range(attempts):
        locked = attempt == attempts - 1
        con.execute("BEGIN IMMEDIATE" if locked else "BEGIN")
        try:
            seen = version()
            result = fit(seen)
            if result is UNCHANGED:
                con.execute("COMMIT")
                return result
            if not locked:
                con.execute("COMMIT")
                con.execute("BEGIN IMMEDIATE")
                if version() != seen:  # taught meanwhile: fit that
                    con.execute("COMMIT")
                    continue
            store(seen, result)
            con.execute("COMMIT")
            return result
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    raise AssertionError("not reached: the last attempt holds the lock")


def has_calibration(con: sqlite3.Connection, context: str) -> bool:
    """Whether a moderation export's calibration of ``context`` is stored (its regression, if any, is
    then the export's, not the lessons')."""
    return con.execute("SELECT 1 FROM calibration WHERE context = ?", (context,)).fetchone() is not None


def stored_columns(blob) -> np.ndarray:
    """A taught message's distinct feature columns as stored (int32), as int64; ValueError if misshapen."""
    return np.frombuffer(blob, dtype=np.int32).astype(np.int64)


def apply(con: sqlite3.Connection, key: str, context: str, label: str | None, columns: np.ndarray) -> str | None:
    """Teach (``label`` spam/ham) or forget (``label`` None) one message, in one transaction.

    Returns the label it had before (None if it was not taught). Relearning as the other class
    moves its counts; relearning as the same class changes nothing."""
    return apply_many(con, context, [(key, label, columns)])[0]


def apply_many(
    con: sqlite3.Connection, context: str, entries: list[tuple], decisions: dict[str, float] | None = None
) -> list[str | None]:
    """:func:`apply` for each ``(key, label, columns)``, all in one transaction (one disk sync, not
    one per message: what a moderation export's thousands of rows need). ``decisions``: the base
    log-odds of those that are a moderation export's decisions, kept in the same transaction (so a
    run stopped between two leaves each taught decision recorded, and its calibration due)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        befores = [_apply_one(con, key, context, label, columns) for key, label, columns in entries]
        if decisions:
            con.executemany(
                "INSERT INTO decisions VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET base_logit = excluded.base_logit",
                [(key, context, decisions[key]) for key, _label, _columns in entries if key in decisions],
            )
        con.execute("COMMIT")
        return befores
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _apply_one(con: sqlite3.Connection, key: str, context: str, label: str | None, columns: np.ndarray) -> str | None:
    found = con.execute(
        "SELECT label, columns FROM messages JOIN message_columns USING (key) WHERE key = ?", (key,)
    ).fetchone()
    before = found[0] if found else None
    if before == label:
        return before
    if found:
        old_cols = np.frombuffer(found[1], dtype=np.int32)
        _count(con, context, before, old_cols, -1)
        con.execute("DELETE FROM messages WHERE key = ?", (key,))
        con.execute("DELETE FROM message_columns WHERE key = ?", (key,))
        con.execute("DELETE FROM decisions WHERE key = ?", (key,))  # no longer the export's decision
        if label is None:
            _journal(con, context, key, before, None, old_cols)
    if label is not None:
        cols = np.unique(np.asarray(columns, dtype=np.int32))
        _count(con, context, label, cols, +1)
        con.execute("INSERT INTO messages VALUES (?, ?, ?)", (key, context, label))
        con.execute("INSERT INTO message_columns VALUES (?, ?)", (key, cols.tobytes()))
        if found:  # moved: its old counts go with the old label, its new with the new
            _journal(con, context, key, before, None, old_cols)
        _journal(con, context, key, None, label, cols)
    return before


def _journal(con: sqlite3.Connection, context: str, key: str, before, after, columns: np.ndarray) -> None:
    seq = con.execute(
        "INSERT INTO changes (context, key, before, after, columns) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        (context, key, before, after, np.asarray(columns, dtype=np.int32).tobytes()),
    ).fetchone()[0]
    if seq % 1000 == 0:
        con.execute("DELETE FROM changes WHERE seq <= ?", (seq - JOURNAL_KEEP,))


def _count(con: sqlite3.Connection, context: str, label: str, columns: np.ndarray, sign: int) -> None:
    spam, ham = (sign, 0) if label == "spam" else (0, sign)
    con.execute(
        "INSERT INTO totals VALUES (?, ?, ?) ON CONFLICT (context, label) DO UPDATE SET n = n + excluded.n",
        (context, label, sign),
    )
    con.executemany(
        "INSERT INTO counts VALUES (?, ?, ?, ?) ON CONFLICT (context, col) DO UPDATE "
        "SET spam = spam + excluded.spam, ham = ham + excluded.ham",
        [(context, int(c), spam, ham) for c in columns.tolist()],
    )
    if sign < 0:
        con.executemany(
            "DELETE FROM counts WHERE context = ? AND col = ? AND spam <= 0 AND ham <= 0",
            [(context, int(c)) for c in columns.tolist()],
        )


def taught(con: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Taught messages per context and label; ValueError if a total is not one spamcli writes."""
    out: dict[str, dict[str, int]] = {}
    for context, label, n in con.execute("SELECT context, label, n FROM totals WHERE n != 0"):
        if type(n) is not int or n < 0 or label not in LABELS:
            raise ValueError(f"taught totals of context {context!r} damaged: {label!r} {n!r}")
        out.setdefault(context, {"spam": 0, "ham": 0})[label] = n
    return out


def labels_of(con: sqlite3.Connection, context: str) -> dict[str, str]:
    """sha256 -> label of every message taught in ``context``."""
    prefix = f"{context}:"
    rows = con.execute("SELECT key, label FROM messages WHERE context = ?", (context,))
    return {key[len(prefix) :]: label for key, label in rows}


def last_change(con: sqlite3.Connection) -> int:
    """The sequence number of the newest journal entry (0: none)."""
    return con.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]


# what a journal entry (before, after) may say: a message learned, or forgotten (a move is both)
_JOURNAL_MOVES = {(None, "spam"), (None, "ham"), ("spam", None), ("ham", None)}


def merged(layer: SiteLayer | None, entries: list[tuple]) -> SiteLayer | None:
    """``layer`` with journal entries ``(before, after, columns)`` applied (a new object)."""
    cols, spam, ham = [], [], []
    n = layer.n_messages if layer is not None else 0
    for before, after, blob in entries:
        if (before, after) not in _JOURNAL_MOVES:
            raise ValueError(f"a journal entry from {before!r} to {after!r}: not one spamcli writes")
        c = stored_columns(blob)
        sign, label = (-1.0, before) if after is None else (1.0, after)
        n += int(sign)
        cols.append(c)
        spam.append(np.full(len(c), sign if label == "spam" else 0.0))
        ham.append(np.full(len(c), sign if label == "ham" else 0.0))
    if layer is not None:
        cols.append(layer.columns)
        spam.append(layer.spam)
        ham.append(layer.ham)
    if not cols or n <= 0:
        return None
    all_cols = np.concatenate(cols)
    unique, inverse = np.unique(all_cols, return_inverse=True)
    new_spam = np.bincount(inverse, weights=np.concatenate(spam), minlength=len(unique))
    new_ham = np.bincount(inverse, weights=np.concatenate(ham), minlength=len(unique))
    if n < 0 or (new_spam < 0).any() or (new_ham < 0).any():  # a message forgotten that was never taught
        raise ValueError("the journal takes taught counts below zero")
    keep = (new_spam > 0) | (new_ham > 0)
    if layer is None:
        return SiteLayer(unique[keep], new_spam[keep], new_ham[keep], n)
    return replace(layer, columns=unique[keep], spam=new_spam[keep], ham=new_ham[keep], n_messages=n)


class SiteFollower:
    """Keeps loaded contexts up to date with a model directory's site database.

    :meth:`poll` is cheap when nothing changed (SQLite's ``data_version``); otherwise it applies
    the journal entries written since the last poll to each context's layer and learned labels.
    """

    def __init__(self, directory: Path, contexts: dict):
        self.directory = Path(directory)
        self.contexts = contexts
        self.con = connect(self.directory, create=True, reader=True)
        self.seq = 0
        self.damage: str | None = None  # what the last poll found wrong with the database, if anything
        self._damaged_version: int | None = None  # the data_version it was found at (not read again)
        self.version = self._data_version()
        self._reload()

    def _data_version(self) -> int:
        return self.con.execute("PRAGMA data_version").fetchone()[0]

    def poll(self) -> int:
        """Apply what was taught since the last poll; the number of journal entries applied.

        A damaged database (a row not of ours, a negative count, a broken file) changes nothing:
        every context keeps its last good layer, one line is logged, and the next poll tries again."""

        version = None
        try:
            version = self._data_version()
            if version in (self.version, self._damaged_version):  # unchanged, or still as found damaged
                return 0
            self.con.execute("BEGIN")  # the journal and the fits of one moment
            try:
                rows = self.con.execute(
                    "SELECT seq, context, key, before, after, columns FROM changes WHERE seq > ? ORDER BY seq",
                    (self.seq,),
                ).fetchall()
                # a refit (after an export was learned) is not in the journal; read first, as
                # _apply changes nothing unless all is well
                fits = {name: fit_of(self.con, name) for name in self.contexts}
            finally:
                if self.con.in_transaction:
                    self.con.execute("COMMIT")
            applied = self._apply(rows, fits)
        except damage_errors() as exc:
            if str(exc) != self.damage:  # once, not at every poll until it is mended
                log.error(
                    "site database unreadable, keeping what was taught before: %s: %s", self.directory / SITE_DB, exc
                )
            self.damage, self._damaged_version = str(exc), version
            return 0
        self.damage = self._damaged_version = None
        self.version = version
        return applied

    def _apply(self, rows: list, fits: dict[str, SiteFit]) -> int:
        """Apply journal ``rows`` and the ``fits`` read with them, each context's layer replaced once
        (a scoring thread never sees new counts with an old fit); raises before changing any context
        if one is damaged."""
        if rows:
            oldest = self.con.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
            if oldest > self.seq + 1:  # entries this follower has not seen were pruned: read it all again
                self._reload()
                return len(rows)
        by_context: dict[str, list] = {}
        for _seq, context, key, before, after, blob in rows:
            if context in self.contexts:
                by_context.setdefault(context, []).append((key, before, after, blob))
        layers = {name: ctx.site for name, ctx in self.contexts.items()}
        for name, entries in by_context.items():
            layers[name] = merged(layers[name], [(b, a, blob) for _k, b, a, blob in entries])
        for name, ctx in self.contexts.items():  # nothing raises from here on
            layer = layers[name] if layers[name] is None else layers[name].calibrated(fits[name])
            if layer is not ctx.site:
                ctx.set_site(layer)
        for name, entries in by_context.items():
            ctx = self.contexts[name]
            prefix = len(name) + 1
            for key, _before, after, _blob in entries:
                if after is None:
                    ctx.learned_labels.pop(key[prefix:], None)
                else:
                    ctx.learned_labels[key[prefix:]] = after
        if rows:
            self.seq = rows[-1][0]
        return len(rows)

    def _reload(self) -> None:
        """Read every context's layer and the journal position in one snapshot."""
        self.con.execute("BEGIN")
        try:
            seq = last_change(self.con)
            layers = {name: (SiteLayer.read(self.con, name), labels_of(self.con, name)) for name in self.contexts}
        finally:
            self.con.execute("COMMIT")
        for name, (layer, labels) in layers.items():
            ctx = self.contexts[name]
            ctx.set_site(layer)
            ctx.learned_labels.clear()
            ctx.learned_labels.update(labels)
        self.seq = seq

    def close(self) -> None:
        self.con.close()
