"""Incremental learning with sa-learn semantics: ``spamcli learn --spam|--ham|--forget``.

Naive Bayes counts are additive (:meth:`~spamcli.model.NaiveBayesModel.add`), so one message can
be learned or forgotten without retraining. The bundle remembers every learned message as the
sha256 of its normalised text (:func:`message_hash`), with its class, context and the models it
was added to (``learned-<hash>.json``, keyed ``<context>:<sha256>``, listed in the manifest with its sha256). Hence:

- learning a message already learned as the same class does nothing;
- learning it as the other class moves it (its counts leave the old class, join the new one);
- ``forget`` removes it from exactly the models it was added to, so every score returns to what
  it was before (the counts are integers, so this is exact, not approximately so).

Which models learn: the model the message is routed to (its language's own model, when the
context has one and the language is detected confidently) and the multilingual fallback
``multi``, which is trained on everything. A message routed to the fallback updates only it.
The regression weights of the ``nblr`` kind are not refitted; a learned message moves the score
through the NB log-count ratios, which the regression reads. Retrain (``spamcli train``) now and
then to refit them (see the README's weekly routine).

Concurrency and crashes: :func:`learn_messages` holds an exclusive lock (``fcntl.flock`` on
``MODEL_DIR/.lock``) around load-modify-save, so concurrent runs queue instead of losing updates;
saving is atomic (:func:`spamcli.bundle.save_bundle`), so a crash leaves the previous model.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import load_bundle, save_bundle
from .errors import UsageError
from .router import FALLBACK, ContextModel
from .text import message_hash

ACTIONS = ("spam", "ham", "forget")
LOCK_FILE = ".lock"
_LABELS = {"ham": 0, "spam": 1}


@contextmanager
def model_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``directory/.lock`` (blocks until free; released on exit)."""
    directory = Path(directory)
    with open(directory / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass
class LearnReport:
    """What one ``learn`` run did, message by message counted."""

    learned: int = 0  # newly added
    moved: int = 0  # relearned as the other class
    unchanged: int = 0  # already learned as this class
    forgotten: int = 0
    not_learned: int = 0  # --forget of a message never learned
    total_learned: int = 0  # messages the bundle remembers afterwards

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _apply(ctx: ContextModel, text: str, models: list[str], label: int, sign: float) -> None:
    row = ctx.vectoriser.row(text)
    columns = np.fromiter(row, dtype=np.int64, count=len(row))
    values = np.fromiter(row.values(), dtype=np.float64, count=len(row))
    order = np.argsort(columns)
    for name in models:
        ctx.models[name].add(columns[order], values[order], label, sign=sign)


def _route_models(ctx: ContextModel, text: str) -> list[str]:
    lang, confidence = ctx.detect([text])[0]
    routed = ctx.route(lang, confidence)
    return [FALLBACK] if routed == FALLBACK else [routed, FALLBACK]


def learn_messages(directory: Path, texts: Iterable[str], action: str, context: str = "content") -> LearnReport:
    """Learn (``spam``/``ham``) or ``forget`` messages in the model at ``directory``, under its lock."""
    if action not in ACTIONS:
        raise UsageError(f"unknown learn action {action!r}; choose from {', '.join(ACTIONS)}")
    directory = Path(directory)
    report = LearnReport()
    with model_lock(directory):
        bundle = load_bundle(directory)
        ctx = bundle.context(context)
        learned = bundle.learned
        changed = False
        for text in texts:
            key = f"{context}:{message_hash(text)}"  # the same text may be learned once per context
            entry = learned.get(key)
            if entry is not None:
                if action == entry["label"]:
                    report.unchanged += 1
                    continue
                _apply(ctx, text, entry["models"], _LABELS[entry["label"]], -1.0)
                del learned[key]
                changed = True
                if action == "forget":
                    report.forgotten += 1
                    continue
                report.moved += 1
            elif action == "forget":
                report.not_learned += 1
                continue
            else:
                report.learned += 1
            models = _route_models(ctx, text)
            _apply(ctx, text, models, _LABELS[action], 1.0)
            learned[key] = {"label": action, "context": context, "models": models}
            changed = True
        if changed:
            save_bundle(bundle, directory)
        report.total_learned = len(learned)
    return report
