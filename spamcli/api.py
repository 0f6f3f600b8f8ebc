"""The public Python API: :class:`SpamFilter` and :func:`load_filter`, for web apps and bots as well
as the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from .bundle import Bundle, load_bundle
from .errors import UsageError
from .records import Record
from .router import ContextModel, Pipeline, Thresholds, Verdict, check_fp_budget


class SpamFilter:
    """A loaded model bundle, ready to score texts of one context (``content`` or ``profile``).

    >>> spam_filter = SpamFilter.load()                 # doctest: +SKIP
    >>> spam_filter.score(["WIN a FREE iPhone"])[0].label  # doctest: +SKIP
    'spam'
    """

    def __init__(
        self,
        bundle: Bundle,
        context: str = "content",
        thresholds: Thresholds | None = None,
        pipeline: Pipeline | None = None,
    ):
        self.bundle = bundle
        self.context_name = context
        self.model: ContextModel = bundle.context(context)
        # everything scoring needs (model, vectoriser, language detector): built here, at load,
        # unless given (a copy at other thresholds shares its original's)
        self.pipeline = pipeline if pipeline is not None else Pipeline(self.model)
        self.override = thresholds  # None: each model's own thresholds from training

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds in force: the override, else the context's default (models may refine)."""
        return self.override or self.model.thresholds

    @classmethod
    def load(cls, path: str | Path | None = None, context: str = "content") -> SpamFilter:
        """Load a model directory (default: the model shipped with spamcli)."""
        return cls(load_bundle(Path(path) if path else None), context=context)

    def with_thresholds(self, ham: float | None = None, spam: float | None = None) -> SpamFilter:
        """A copy whose spam/ham thresholds are overridden where given."""
        current = self.thresholds
        return SpamFilter(
            self.bundle,
            self.context_name,
            Thresholds(ham=current.ham if ham is None else ham, spam=current.spam if spam is None else spam),
            self.pipeline,
        )

    def with_fp_budget(self, budget: float) -> SpamFilter:
        """A copy that labels spam at the thresholds chosen in training for a held-out
        false-positive rate of ``budget`` (one of :data:`~spamcli.router.FP_BUDGETS`): a comment
        section may accept 3% where an SMS gateway accepts 0.5%. ValueError if the model has none."""
        if self.override is not None:
            raise ValueError("this filter's thresholds are set explicitly (with_thresholds): no budget applies")
        context = self.model.with_fp_budget(budget)
        bundle = replace(self.bundle, contexts={**self.bundle.contexts, self.context_name: context})
        return SpamFilter(bundle, self.context_name, self.override, self.pipeline.with_model(context))

    def prepare(self) -> None:
        """Load and build everything scoring needs now (see :meth:`Pipeline.prepare`)."""
        self.pipeline.prepare()

    def score(self, texts: list[str], langs: list[str | None] | None = None, explain: int = 0) -> list[Verdict]:
        """Score texts; ``langs`` may give known languages (None entries are detected)."""
        return self.pipeline.score(texts, langs, explain=explain, thresholds=self.override)

    def score_records(self, records: list[Record], explain: int = 0) -> list[dict]:
        """Output dicts (the JSON-lines contract) for a batch of records, in order."""
        good = [r for r in records if not r.error]
        verdicts = iter(self.score([r.text for r in good], [r.lang for r in good], explain)) if good else iter(())
        out = []
        for rec in records:
            if rec.error:
                out.append({"id": rec.id, "error": rec.error})
                continue
            verdict = next(verdicts)
            item = {
                "id": rec.id,
                "score": round(verdict.score, 4),
                "label": verdict.label,
                "lang": verdict.lang,
                "model": verdict.model,
            }
            if verdict.learned:
                item["learned"] = verdict.learned
            if explain:
                item["lang_confidence"] = verdict.lang_confidence
                item["reasons"] = [{"token": tok, "weight": w} for tok, w in verdict.reasons or []]
            out.append(item)
        return out

    def classify_batches(
        self,
        records: Iterable[Record],
        explain: int = 0,
        max_batch: int = 1024,
        max_wait: float | None = 0.01,
        jobs: int = 1,
    ) -> Iterator[list[dict]]:
        """Output dicts for a (possibly endless) stream of records, in input order, a micro-batch
        at a time, in ``jobs`` forked worker processes if > 1: see :func:`spamcli.stream.classify_batches`."""
        from .stream import classify_batches

        yield from classify_batches(self, records, explain, max_batch, max_wait, jobs)

    def classify_stream(self, records: Iterable[Record], explain: int = 0) -> Iterator[dict]:
        """Like :meth:`classify_batches`, one output dict at a time."""
        for batch in self.classify_batches(records, explain=explain):
            yield from batch


def load_filter(
    model: str | Path | Bundle | None = None,
    context: str = "content",
    ham: float | None = None,
    spam: float | None = None,
    max_fpr: float | None = None,
) -> SpamFilter:
    """A :class:`SpamFilter` for ``context`` of ``model`` (a directory, a loaded bundle, or None
    for the shipped model), at the ``ham``/``spam`` thresholds where given, or at those chosen in
    training for the false-positive budget ``max_fpr`` (one of :data:`~spamcli.router.FP_BUDGETS`);
    not both. A bad combination is a UsageError, raised after the model has loaded."""
    spam_filter = SpamFilter(model, context=context) if isinstance(model, Bundle) else SpamFilter.load(model, context)
    if max_fpr is not None:
        try:
            check_fp_budget(max_fpr, ham, spam)
            spam_filter = spam_filter.with_fp_budget(max_fpr)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if ham is not None or spam is not None:
        spam_filter = spam_filter.with_thresholds(ham=ham, spam=spam)
        if spam_filter.thresholds.ham > spam_filter.thresholds.spam:
            raise UsageError("--ham-threshold must not be above --spam-threshold")
    return spam_filter
