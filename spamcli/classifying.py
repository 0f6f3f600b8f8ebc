"""Classifying whole inputs: what ``spamcli classify`` does, for a web app, a bot or a cron job.

:func:`load_scorer` builds the scorer for a context from a model and the threshold options;
:func:`classify_inputs` reads and scores inputs (files, stdin, open binary streams), each the way
that suits it; :func:`write_classified` writes the results to a sink and commits or aborts it.

How an input is read (the I/O strategy): in one process, records are parsed as they are read;
with worker processes (``jobs``, see :mod:`spamcli.parallel`) the reading process only reads,
a regular file in blocks of bytes and a pipe in lines (:mod:`spamcli.transport`), and the
workers parse and score. A regular file never makes its reader wait, so it is read in full
batches; a pipe or terminal in micro-batches of at most 10 ms, so that ``tail -f`` gets each
line's answer at once. The output is the same in every case.

>>> from spamcli.classifying import classify_inputs, load_scorer   # doctest: +SKIP
>>> scorer = load_scorer(max_fpr=0.01)                             # doctest: +SKIP
>>> for batches in classify_inputs(scorer, ["comments.jsonl"]):    # doctest: +SKIP
...     for batch in batches:
...         print(batch)
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .batch import LabelCounts, label_of
from .bundle import Bundle
from .errors import UsageError
from .records import ReadOptions, Source, is_stream, read_records

MESSAGE_WAIT = 0.01  # seconds a micro-batch of a pipe waits for more lines


def load_scorer(
    model: Path | Bundle | None = None,
    context: str = "content",
    ham: float | None = None,
    spam: float | None = None,
    max_fpr: float | None = None,
    trusted_domains: Path | None = None,
    trusted_ids: Path | None = None,
    scoring: Path | None = None,
    engine: str = "local",
):
    """The scorer of ``context`` for the model at ``model`` (a directory, a loaded
    :class:`~spamcli.bundle.Bundle`, or None for the shipped model): a
    :class:`~spamcli.api.SpamFilter` (see :func:`~spamcli.api.load_filter`), or for ``profile`` a
    :class:`~spamcli.profiles.ProfileScorer` (see :func:`~spamcli.profiles.load_profile_scorer`).
    Options that do not apply to the context are a UsageError; ``engine``: the one it will run on
    (Dask scores messages only)."""
    if context == "profile":
        if engine != "local":  # the Dask engine scores messages only
            raise UsageError("--engine dask scores messages; not with --context profile")
        from .profiles import load_profile_scorer

        return load_profile_scorer(model, ham, spam, trusted_domains, trusted_ids, scoring, max_fpr)
    if trusted_domains or trusted_ids or scoring:
        raise UsageError("--trusted-domains, --trusted-ids and --scoring need --context profile")
    from .api import load_filter

    return load_filter(model, context, ham, spam, max_fpr)


def use_dask(engine: str, scheduler: str | None) -> bool:
    """Whether the Dask engine is chosen (checks the two options)."""
    if engine not in ("local", "dask"):
        raise UsageError("--engine must be local or dask")
    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    return engine == "dask"


def is_regular_file(source: Source) -> bool:
    """Whether ``source`` (``-``/None: stdin) is a regular file, which a reader never waits on."""
    try:
        if is_stream(source):
            mode = os.fstat(source.fileno()).st_mode
        elif source in (None, "-"):
            mode = os.fstat(sys.stdin.fileno()).st_mode
        else:
            mode = os.stat(source).st_mode
    except (OSError, ValueError, AttributeError):  # no such file (read_records says so), no real stdin
        return False
    return stat.S_ISREG(mode)


def classify_source(
    scorer, source: Source, opts: ReadOptions, explain: int = 0, max_batch: int = 1024, jobs: int = 0
) -> Iterator[list[dict]]:
    """Output dicts of one input, in input order, a batch at a time, read the way that suits it
    (see module docstring). ``jobs``: worker processes (0: one per CPU; 1: none)."""
    from .stream import available_jobs, small_input

    short = jobs == 0 and not is_stream(source) and small_input("-" if source in (None, "-") else os.fspath(source))
    workers = available_jobs(1 if short else jobs)  # by default, no workers for a few lines
    regular = is_regular_file(source)
    wait = None if regular else MESSAGE_WAIT
    if workers > 1:  # workers parse plain and JSON lines: the reader only reads
        from .parallel import score_in_workers
        from .transport import read_raw

        items = read_raw(source, opts, blocks=regular)
        return score_in_workers(scorer, items, explain, workers, max_batch, wait, opts)
    return scorer.classify_batches(read_records(source, opts), explain=explain, max_batch=max_batch, max_wait=wait)


def classify_inputs(
    scorer,
    inputs: Iterable[Source] = ("-",),
    opts: ReadOptions | None = None,
    explain: int = 0,
    max_batch: int = 1024,
    jobs: int = 0,
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[Iterator[list[dict]]]:
    """Per input, an iterator of its output batches (see :func:`classify_source`); with
    ``engine="dask"`` one iterator over the files of the inputs, scored as partitions on a Dask
    cluster (``scheduler``, or a local one), in the same order. ``explain``: reasons listed per
    record (0: none). Each batch iterator should be closed when left early: its workers stop
    there. Nothing is read before the first ``next``."""
    opts = opts or ReadOptions()
    if not use_dask(engine, scheduler):
        for source in inputs:
            yield classify_source(scorer, source, opts, explain, max_batch, jobs)
        return
    from .dask_engine import classify_partitions, expand_inputs, session

    files = expand_inputs(list(inputs))
    with session(scheduler) as client:
        yield classify_partitions(client, scorer, files, opts, explain=explain, batch=max_batch)


def write_classified(
    sources: Iterable[Iterator[list[dict]]],
    sink,
    only: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LabelCounts:
    """Write the output dicts of ``sources`` (as :func:`classify_inputs` gives them) to ``sink``,
    those whose label is in ``only`` if given; the labels of all of them, counted.

    ``progress(n)`` is told of every ``n`` records scored. The sink is committed when at least
    one record could be scored, else aborted (a previous output file stays); also aborted when
    scoring fails or is interrupted, except by a closed stdout (BrokenPipeError), which there is
    nothing to report to. :meth:`~spamcli.batch.LabelCounts.check` then says whether the input
    held a usable record."""
    counts = LabelCounts()
    advance = progress or (lambda _n: None)
    try:
        for batches in sources:
            with contextlib.closing(batches):  # on an early exit too: workers stop here, not at teardown
                for batch in batches:
                    counts.add(batch)
                    advance(len(batch))
                    sink.write([item for item in batch if only is None or label_of(item) in only])
    except BrokenPipeError:
        raise
    except BaseException:
        sink.abort()
        raise
    if counts.usable:
        sink.commit()
    else:
        sink.abort()  # keep the previous output file when nothing could be scored
    return counts
