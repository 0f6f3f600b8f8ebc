"""Training from input files: what ``spamcli train`` does, as one library call.

:func:`train_from_inputs` assembles the labeled records (labeled files, a moderation export whose
moderators' decisions are the labels, plain ``--spam``/``--ham`` files, or partitions read on a
Dask cluster) and trains one context on them, in memory, out of core or with Dask. Writing the
result into a model directory, next to the contexts it already has, is
:func:`spamcli.bundle.merge_context`::

    result = train_from_inputs(["messages.csv"])
    merge_context(Path("my-model"), result.context)
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from .errors import UsageError
from .records import ReadOptions, Source, read_records
from .router import ContextModel
from .training import TrainOptions, TrainReport, train_context, train_out_of_core

KINDS = ("nb", "nblr")
LANG_BACKENDS = ("fasttext", "langdetect")


@dataclass
class TrainResult:
    """A trained context, its training report and, for a moderation export, how many rows became
    spam, ham, or were skipped (no moderation decision)."""

    context: ContextModel
    report: TrainReport
    moderation: dict | None = None


def train_from_inputs(
    inputs: Sequence[Source] = (),
    spam: Sequence[Source] = (),
    ham: Sequence[Source] = (),
    read_options: ReadOptions | None = None,
    train_options: TrainOptions | None = None,
    moderation: Mapping[str, str | None] | None = None,
    out_of_core: bool = False,
    chunk_size: int = 20_000,
    engine: str = "local",
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``train_options.context`` on labeled ``inputs`` (read with ``read_options``) and on
    ``spam`` and ``ham``, files of one message per line.

    ``moderation``: the :class:`~spamcli.moderation.ModerationLabeler` fields (``hidden_col``,
    ``blocked_col``, ``label_rule``, ``reviewed_col``, ``ham_rule``) when ``inputs`` are a moderation
    export, labeled by its moderators' decisions instead of a label column. ``out_of_core``: one
    Naive Bayes model trained in one pass over inputs of any size, ``chunk_size`` records at a time.
    ``engine="dask"``: the inputs are partitions, read and hashed on a Dask cluster (``scheduler``,
    or a local one). ``progress(message)`` is told what is being done. Bad combinations are a
    UsageError, raised before anything is read."""
    read_options = read_options or ReadOptions()
    train_options = train_options or TrainOptions()
    if not inputs and not spam and not ham:
        raise UsageError("give labeled files, or --spam and --ham files")
    if train_options.kind not in KINDS:
        raise UsageError("--kind must be nb or nblr")
    from .classifying import use_dask

    dask = use_dask(engine, scheduler)
    if out_of_core and (dask or train_options.kind != "nb"):
        raise UsageError("--out-of-core trains --kind nb, with the local engine")
    if chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    if train_options.max_rows is not None and train_options.max_rows < 1:
        raise UsageError("--max-rows must be 0 (all records) or more")
    if train_options.lang_backend not in LANG_BACKENDS:
        raise UsageError("--lang-backend must be fasttext or langdetect")
    labeler = None
    if moderation and any(moderation.values()):
        from .moderation import ModerationLabeler

        if read_options.label_field:
            raise UsageError("--label-col cannot be combined with the moderation-export options")
        labeler = ModerationLabeler(**moderation)
    opts = replace(read_options, need_label=labeler is None)
    sources = [read_records(p, opts) for p in ([] if dask else inputs)]
    if labeler is not None and sources:
        sources = [labeler.apply(itertools.chain.from_iterable(sources))]
    for paths, label in ((spam, 1), (ham, 0)):
        for p in paths:
            sources.append(read_records(p, ReadOptions(format="text", default_label=label)))
    if train_options.context == "profile" and (out_of_core or dask):
        raise UsageError("--out-of-core and --engine dask train the content context")
    with contextlib.ExitStack() as stack:
        transform = None
        if dask:
            from .dask_engine import expand_inputs, read_partitions, session, transformer

            files = expand_inputs(list(inputs))
            client = stack.enter_context(session(scheduler))
            partitions = read_partitions(client, files, opts)
            sources.insert(0, labeler.apply(partitions) if labeler is not None else partitions)
            transform = transformer(client)
        records = itertools.chain.from_iterable(sources)
        if out_of_core:
            ctx, report = train_out_of_core(records, train_options, chunk_size, progress=progress)
        elif train_options.context == "profile":
            from .profiles import train_profile

            ctx, report = train_profile(records, train_options, progress=progress)
        else:
            ctx, report = train_context(records, train_options, progress=progress, transform=transform)
    counts = None
    if labeler is not None:
        counts = {**labeler.counts, "skipped": labeler.skipped}
    return TrainResult(ctx, report, counts)
