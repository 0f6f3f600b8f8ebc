"""Incremental learning with sa-learn semantics: ``spamcli learn --spam|--ham|--forget``.

A taught message goes to the model directory's **site layer** (``site.sqlite``, see
:mod:`spamcli.site`): counts of the features of what this site's moderators taught, whose evidence
is added to the base model's score. So a correction moves the scores of *similar* messages at
once, not only of the very message, and needs no retrain. Every message is remembered by the
sha256 of its normalised text (:func:`message_hash`), keyed ``<context>:<sha256>``. Hence:

- learning a message already learned as the same class does nothing;
- learning it as the other class moves it (its counts leave the old class, join the new one);
- ``forget`` removes exactly the counts it added, so every score returns to what it was before
  (the counts are integers, so this is exact, not approximately so).

Concurrency and crashes: a call's messages are taught in SQLite transactions of up to
:data:`TRANSACTION_MESSAGES` each, durable when it returns; concurrent ``learn`` runs (and
readers) are serialised by SQLite, so nothing is lost. The input is
read (and hashed into features) before anything is written, so a slow producer (``sleep | learn``)
blocks no one. Models written by older spamcli versions kept learned messages in the base counts
(``learned-*.json``); forgetting or moving one of those still works, under :func:`spamcli.bundle.model_lock`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import site, site_calibration, site_lessons, tempfiles
from .bundle import MANIFEST, default_model_dir, load_bundle, model_lock, read_teaching_view, save_bundle
from .errors import InputError, ModelError, UsageError
from .records import ReadOptions, Source
from .router import ContextModel
from .text import Vectoriser, message_hash

ACTIONS = ("spam", "ham", "forget")
# Messages taught per SQLite transaction: one disk sync each, and a writer lock held well under a second.
TRANSACTION_MESSAGES = 500
_LABELS = {"ham": 0, "spam": 1}


@dataclass
class LearnReport:
    """What one ``learn`` run did, message by message counted."""

    learned: int = 0  # newly added
    moved: int = 0  # relearned as the other class
    unchanged: int = 0  # already learned as this class
    forgotten: int = 0
    not_learned: int = 0  # --forget of a message never learned
    total_learned: int = 0  # messages the model remembers afterwards
    created_from: str | None = None  # the model a new site model was copied from
    # a moderation export's: the site calibration refit on every decision kept (site_calibration.refit)
    calibration: dict | None = None
    empty: int = 0  # records with nothing to teach: a blank line, an account without a bio
    # without an export's calibration: the regression on the lessons (site_lessons), its gain (None:
    # not yet), the context's taught spam and ham, and the layer's class weights for them (below 1:
    # the larger class capped, site.lesson_class_weights)
    lesson_regression: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ensure_site_model(directory: Path, base: Path | None = None) -> bool:
    """Make ``directory`` a writable copy of ``base`` (the shipped model) if it does not exist.

    Returns whether it was created. The copy is made beside it and renamed into place, so a
    concurrent first ``learn`` finds either nothing or a whole model."""
    directory = Path(directory)
    if directory.exists() or directory.is_symlink():
        return False
    parent = directory.parent
    if not parent.is_dir():
        raise ModelError(f"model directory not found, and its parent does not exist: {directory}")
    source = Path(base) if base else default_model_dir()
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.", suffix=".new"))
    try:
        for item in source.iterdir():
            if item.is_file() and (item.name == MANIFEST or item.suffix in (".npz", ".json")):
                shutil.copyfile(item, tmp / item.name)
        os.chmod(tmp, tempfiles.mode(0o777))
        try:
            os.rename(tmp, directory)
        except OSError:
            if directory.is_dir():  # another learn created it first: use theirs
                return False
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def _apply_legacy(ctx: ContextModel, text: str, models: list[str], label: int, sign: float) -> None:
    row = ctx.vectoriser.row(text)
    columns = np.fromiter(row, dtype=np.int64, count=len(row))
    values = np.fromiter(row.values(), dtype=np.float64, count=len(row))
    order = np.argsort(columns)
    for name in models:
        ctx.models[name].add(columns[order], values[order], label, sign=sign)


class Teacher:
    """Teaches messages to the site layer of the model at ``directory``, again and again.

    Holds the model's feature settings and an SQLite connection, so each call costs one
    transaction per message, not a model load (``spamcli serve`` teaches through one of these per
    worker). The model directory must exist; see :func:`ensure_site_model`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.model = read_teaching_view(self.directory)
        self._vectorisers: dict[str, Vectoriser] = {}
        self._con = None

    def _vectoriser(self, context: str) -> Vectoriser:
        settings = self.model.context_settings(context)
        vectoriser = self._vectorisers.get(context)
        if vectoriser is None or vectoriser.settings != settings:
            vectoriser = self._vectorisers[context] = Vectoriser(settings)
        return vectoriser

    def _connection(self, create: bool):
        if self._con is None:
            import sqlite3

            path = self.directory / site.SITE_DB
            try:
                self._con = site.connect(self.directory, create=create or path.is_file())
            except sqlite3.Error as exc:  # read-only for this user, damaged, not a database
                raise ModelError(f"cannot teach the site database: {path}: {exc}") from None
        return self._con

    def teach(self, texts: Iterable[str], action: str, context: str = "content") -> LearnReport:
        """Learn (``spam``/``ham``) or ``forget`` each text; what changed, counted. A forget or a
        move that left the site's calibration stale (an export's decision gone) refits it, and so
        does any learn when a calibration is due but missing (an export's run stopped before its
        refit); otherwise the regression on the lessons is refitted if its sample changed."""
        report = self._teach(texts, action, context)
        if self._con is None:
            return report
        if action == "forget" or report.moved:  # an export's decision may be gone
            with site.reading(self.directory):
                if site_calibration.stale(self._con, context):
                    self._refit_calibration(context)
            problem = None
        else:  # the lessons are saved: what stops a refit now is said, not raised
            problem = self._guarded(lambda: self._refit_missing_calibration(context))
        problem = problem or self._guarded(lambda: site_lessons.refit(self._con, context))
        report.lesson_regression = self._lesson_regression(context, problem)
        return report

    def _refit_missing_calibration(self, context: str) -> None:
        """Refit the calibration of ``context`` if one is due but none is stored (an export's run
        stopped before its refit)."""
        if not site.has_calibration(self._con, context) and site_calibration.stale(self._con, context):
            self._refit_calibration(context)

    @staticmethod
    def _guarded(step) -> str | None:
        """Run ``step``; what a damaged site database made it raise, as one line (None if nothing)."""
        try:
            step()
        except ModelError as exc:
            return str(exc)
        except site.damage_errors() as exc:
            return f"site database damaged: {exc}"
        return None

    def _lesson_regression(self, context: str, problem: str | None = None) -> dict | None:
        """:attr:`LearnReport.lesson_regression` of ``context`` (None when an export calibrates it);
        ``problem``: why it was not refitted."""
        con = self._con
        report: dict = {"gain": None, "spam": 0, "ham": 0, "class_weights": {"spam": 1.0, "ham": 1.0}}
        try:
            if site.has_calibration(con, context):
                return None  # an export's calibration, and its regression
            report.update(site.taught(con).get(context, {}))
            spam_weight, ham_weight = site.lesson_class_weights(report["spam"], report["ham"])
            report["class_weights"] = {"spam": spam_weight, "ham": ham_weight}
            gain = con.execute("SELECT gain FROM regression WHERE context = ?", (context,)).fetchone()
            report["gain"] = float(gain[0]) if gain is not None else None
        except site.damage_errors() as exc:
            problem = problem or f"site database damaged: {exc}"
        return {**report, "not_refitted": problem} if problem else report

    def _teach(
        self,
        texts: Iterable[str],
        action: str,
        context: str,
        decisions: dict[str, float] | None = None,
        legacy_labels: dict[str, str] | None = None,
    ) -> LearnReport:
        """Apply ``action`` to each text. ``decisions``: the texts are a moderation export's, kept
        with these base log-odds (by key) in the same transactions as their lessons;
        ``legacy_labels``: what :meth:`_take_out_legacy` took out of the base counts already. What a
        damaged site database raises is a ModelError."""
        if action not in ACTIONS:
            raise UsageError(f"unknown learn action {action!r}; choose from {', '.join(ACTIONS)}")
        vectoriser = self._vectoriser(context)
        # Read everything first: no lock and no transaction waits on a slow producer.
        todo = [(f"{context}:{message_hash(text)}", text) for text in texts]
        todo = [(key, text, np.fromiter(vectoriser.row(text), dtype=np.int64)) for key, text in todo]
        legacy_labels = {**(legacy_labels or {}), **self._take_out_legacy([(k, t) for k, t, _ in todo], context)}
        report = LearnReport()
        label = None if action == "forget" else action
        with site.reading(self.directory):
            con = self._connection(create=label is not None)
            befores: list[str | None] = []
            for i in range(0, len(todo), TRANSACTION_MESSAGES):
                chunk = [(key, label, columns) for key, _text, columns in todo[i : i + TRANSACTION_MESSAGES]]
                befores += site.apply_many(con, context, chunk, decisions) if con is not None else [None] * len(chunk)
            report.total_learned = sum(sum(by.values()) for by in site.taught(con).values()) if con else 0
        for (key, _text, _columns), before in zip(todo, befores):
            was_legacy = key in legacy_labels
            before = before or legacy_labels.get(key)
            if label is None:
                report.forgotten += before is not None
                report.not_learned += before is None
            elif before == label and not was_legacy:
                report.unchanged += 1
            elif before is None:
                report.learned += 1
            else:
                report.moved += 1
        return report

    def _take_out_legacy(self, entries: list[tuple[str, str]], context: str) -> dict[str, str]:
        """Take the ``(key, text)`` entries an older spamcli learned into the base counts out of
        them (they go to the site layer instead); their labels, by key."""
        learned = self.model.learned
        legacy = [(key, text) for key, text in dict(entries).items() if key in learned]
        if not legacy:
            return {}
        labels = {key: learned[key]["label"] for key, _text in legacy}
        _forget_legacy(self.directory, context, legacy)
        self.model = read_teaching_view(self.directory)
        return labels

    def _refit_calibration(self, context: str) -> None:
        """Fit the site's calibration of ``context`` on the decisions kept (loads the model)."""
        ctx = load_bundle(self.directory, with_site=False).context(context)
        site_calibration.refit(self._connection(create=True), ctx, context)

    def teach_decisions(
        self, texts: list[str], labels: list[int], context: str = "content", langs: list[str | None] | None = None
    ) -> LearnReport:
        """Teach a moderation export's decisions (``labels``: 1 spam, 0 ham; ``langs``: each
        record's given language, if any, routed as ``classify`` routes it), keep them with the base
        model's log-odds and refit the site's calibration on every decision kept
        (:mod:`spamcli.site_calibration`). For ``profile``, a decision is an account and the text is
        its bio. A blank text has nothing to teach: it is counted (``empty``) and left out."""
        report = LearnReport()
        kept = [i for i, text in enumerate(texts) if text.strip()]  # a blank text has nothing to teach
        report.empty = len(texts) - len(kept)
        texts, labels = [texts[i] for i in kept], [labels[i] for i in kept]
        langs = [langs[i] for i in kept] if langs else None
        keys = [f"{context}:{message_hash(t)}" for t in texts]
        # the base model's log-odds once every older lesson of the export has left its counts
        legacy_labels = self._take_out_legacy(list(zip(keys, texts)), context)
        ctx = load_bundle(self.directory, with_site=False).context(context)
        decisions = dict(zip(keys, ctx.pipeline().base_logits(texts, langs).tolist())) if texts else None
        for action, label in (("spam", 1), ("ham", 0)):
            chosen = [t for t, y in zip(texts, labels) if y == label]
            if chosen:  # no refit per class: one at the end, on every decision
                done = self._teach(chosen, action, context, decisions, legacy_labels)
                for name in ("learned", "moved", "unchanged"):
                    setattr(report, name, getattr(report, name) + getattr(done, name))
                report.total_learned = done.total_learned
        with site.reading(self.directory):
            report.calibration = site_calibration.refit(self._connection(create=True), ctx, context)
        # too few decisions to calibrate: the lessons' regression
        problem = self._guarded(lambda: site_lessons.refit(self._con, context))
        report.lesson_regression = self._lesson_regression(context, problem)
        return report

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def learn_messages(directory: Path, texts: Iterable[str], action: str, context: str = "content") -> LearnReport:
    """Learn (``spam``/``ham``) or ``forget`` messages in the site layer of the model at ``directory``."""
    if action not in ACTIONS:
        raise UsageError(f"unknown learn action {action!r}; choose from {', '.join(ACTIONS)}")
    teacher = Teacher(directory)
    try:
        return teacher.teach(texts, action, context)
    finally:
        teacher.close()


def learn_from_inputs(
    directory: Path, inputs: Iterable[Source], action: str, opts: ReadOptions | None = None, context: str = "content"
) -> tuple[LearnReport, int]:
    """What ``spamcli learn`` does: :func:`learn_messages` over the readable records of ``inputs``
    (files, ``-`` for stdin, or open binary streams), into ``directory``, made a copy of the shipped
    model first if it does not exist (``report.created_from``). Returns the report and how many
    records could not be read; InputError (exit code 3), with nothing created, if the inputs held no
    message at all."""
    records, empty, unreadable = _teachable(_records(inputs, opts, context))
    texts = [rec.text for rec in records]
    if not texts:
        detail = [f"{n} {what}" for n, what in ((empty, "with no text"), (unreadable, "unreadable")) if n]
        raise InputError("no messages in the input" + (f" ({', '.join(detail)})" if detail else ""))
    created_from = _ensure(directory)
    report = learn_messages(directory, texts, action, context=context)
    report.empty, report.created_from = empty, created_from
    return report, unreadable


def learn_from_export(
    directory: Path, inputs: Iterable[Source], labeler, opts: ReadOptions | None = None, context: str = "content"
) -> tuple[LearnReport, int]:
    """``spamcli learn`` on a moderation export (a
    :class:`~spamcli.moderation.ModerationLabeler` decides each row): what moderators hid or blocked
    is learned as spam, what they reviewed and kept as ham, rows without a decision are skipped
    (``labeler.skipped``). For ``context="profile"`` a row is an account and its bio is what is
    taught, so blocking an account moves the scores of accounts with similar bios. As
    :func:`learn_from_inputs`, ``directory`` is created if need be; InputError if no row had a
    decision to teach."""
    records, empty, unreadable = _teachable(labeler.apply(_records(inputs, opts, context)))
    if not records:
        raise InputError(
            f"no moderation decision to teach in the input ({labeler.skipped} rows not reviewed, "
            f"{empty} with no text, {unreadable} unreadable)"
        )
    created_from = _ensure(directory)
    teacher = Teacher(directory)
    try:
        texts, labels, langs = [r.text for r in records], [int(r.label) for r in records], [r.lang for r in records]
        report = teacher.teach_decisions(texts, labels, context, langs)
    finally:
        teacher.close()
    report.empty, report.created_from = empty, created_from
    return report, unreadable


def _records(inputs: Iterable[Source], opts: ReadOptions | None, context: str):
    """The records of ``inputs``; a profile without a bio is a record (with nothing to teach), as
    ``classify`` reads it, not an error."""
    import itertools
    from dataclasses import replace

    from .records import read_records

    opts = replace(opts or ReadOptions(), allow_empty_text=context == "profile")
    return itertools.chain.from_iterable(read_records(p, opts) for p in inputs)


def _teachable(records: Iterable) -> tuple[list, int, int]:
    """Read ``records`` in full (before anything is created or taught): those with something to
    teach, how many had nothing (a blank line or text, a profile without a bio) and how many could
    not be read."""
    from .records import EMPTY_LINE, EMPTY_TEXT

    kept, empty, unreadable = [], 0, 0
    for rec in records:
        if rec.error in (EMPTY_LINE, EMPTY_TEXT) or (not rec.error and not rec.text.strip()):
            empty += 1
        elif rec.error:
            unreadable += 1
        else:
            kept.append(rec)
    return kept, empty, unreadable


def _ensure(directory: Path) -> str | None:
    """:func:`ensure_site_model`; the model it was copied from, if it made one."""
    return str(default_model_dir()) if ensure_site_model(directory) else None


def _forget_legacy(directory: Path, context: str, entries: list[tuple[str, str]]) -> None:
    """Take messages learned by an older spamcli out of the base counts (they go to the site
    layer instead, if they are being relearned)."""
    with model_lock(directory):
        bundle = load_bundle(directory, with_site=False)
        ctx = bundle.context(context)
        for key, text in entries:
            entry = bundle.learned.pop(key, None)
            if entry is not None:
                _apply_legacy(ctx, text, entry["models"], _LABELS[entry["label"]], -1.0)
        save_bundle(bundle, directory)
