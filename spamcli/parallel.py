"""Scoring micro-batches in worker processes (``spamcli classify --jobs N``).

The parent reads the input and writes the output; ``N`` forked workers parse and score batches (a
regular file goes to them in blocks of bytes, split into lines there).
Results come back in input order. At most ``2 * N`` batches are in flight, so memory stays bounded
on endless input, and whatever is in flight is finished as soon as the input goes quiet for a few
milliseconds, so a trickle of lines (``tail -f``) keeps its latency.

Workers are forked after the model, its lookup tables and the language-id model are loaded, so
they share that memory copy-on-write and start at once. Where ``fork`` is not available (Windows,
macOS default) ``jobs`` falls back to 1.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .records import RawBlock, RawLine, ReadOptions, Record, parse_items
from .stream import micro_batches

if TYPE_CHECKING:
    from .api import SpamFilter

_worker_filter: SpamFilter | None = None  # set in the parent just before the workers are forked


def _score(slim: list, explain: int, opts: ReadOptions | None, max_batch: int) -> list[dict]:
    """In a worker: score a batch sent as ``(id, text, lang, error)`` tuples (cheaper to pickle than
    records, and without the records' raw input fields), as unparsed :class:`RawLine` items, or as
    one :class:`RawBlock` of a file's lines: these are split and parsed here, so that the reading
    process only reads. A block is scored ``max_batch`` records at a time."""
    assert _worker_filter is not None
    opts = opts or ReadOptions()
    items = (
        item if isinstance(item, (RawLine, RawBlock)) else Record(id=item[0], text=item[1], lang=item[2], error=item[3])
        for item in slim
    )
    records = list(parse_items(items, opts))
    out: list[dict] = []
    for start in range(0, len(records), max_batch):
        out += _worker_filter.score_records(records[start : start + max_batch], explain=explain)
    return out


def _tasks(records: Iterable, max_batch: int, max_wait: float | None) -> Iterator[list]:
    """What each task scores: a :class:`RawBlock` alone, other items in micro-batches."""
    if max_wait is not None:  # a pipe: blocks are never read from one
        yield from micro_batches(records, max_batch=max_batch, max_wait=max_wait, idle=max_wait)
        return
    group: list = []
    for item in records:
        if isinstance(item, RawBlock):
            if group:
                yield group
                group = []
            yield [item]
            continue
        group.append(item)
        if len(group) >= max_batch:
            yield group
            group = []
    if group:
        yield group


MAX_DEFAULT_JOBS = 4  # beyond this the parent (reading, writing) is the bottleneck, and each worker holds its caches


def available_jobs(jobs: int) -> int:
    """``jobs`` itself; for 0, one per usable CPU up to :data:`MAX_DEFAULT_JOBS`; 1 where processes
    cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if jobs > 0:
        return jobs
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_JOBS))


IN_FLIGHT_GRACE = 30.0  # seconds an early stop waits for the batches in flight before killing workers


def score_in_workers(
    spam_filter: SpamFilter,
    records: Iterable[Record],
    explain: int,
    jobs: int,
    max_batch: int,
    max_wait: float | None,
    read_options: ReadOptions | None = None,
) -> Iterator[list[dict]]:
    """Output dicts per micro-batch of ``records``, in order, scored by ``jobs`` forked processes."""
    global _worker_filter
    spam_filter.score(["warm up"])  # load the language-id model and lookup tables before forking
    _worker_filter = spam_filter
    # Ctrl-C goes to the whole process group: the workers ignore it (no traceback from each), the
    # parent's KeyboardInterrupt leaves the try-block, which stops them
    ignore_sigint = (signal.SIGINT, signal.SIG_IGN)
    pool = multiprocessing.get_context("fork").Pool(jobs, initializer=signal.signal, initargs=ignore_sigint)
    pending: deque = deque()
    try:
        for batch in _tasks(records, max_batch, max_wait):
            if batch:
                slim = [r if isinstance(r, (RawLine, RawBlock)) else (r.id, r.text, r.lang, r.error) for r in batch]
                pending.append(pool.apply_async(_score, (slim, explain, read_options, max_batch)))
            while pending and (not batch or len(pending) > 2 * jobs or pending[0].ready()):
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:
        # Also when the consumer stops early (classify | head -1, Ctrl-C): the workers finish the
        # batches in flight (at most 2 * jobs + 1) and exit. Not Pool.terminate() (the with-block's
        # exit): its SIGTERM may kill a worker that holds the lock of the results pipe, and the
        # pool's task-handler thread, which terminate() joins, then waits for that lock forever.
        # Only when a batch in flight never finishes (its worker died: killed, crashed) is
        # terminate() the way out, after IN_FLIGHT_GRACE seconds.
        pool.close()
        deadline = time.monotonic() + IN_FLIGHT_GRACE
        for result in pending:
            result.wait(max(0.0, deadline - time.monotonic()))
        if all(result.ready() for result in pending):
            pool.join()
        else:
            pool.terminate()
