"""Scoring micro-batches in worker processes (``spamcli classify --jobs N``).

The parent reads and parses the input and writes the output; ``N`` forked workers score batches.
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
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .records import RawLine, ReadOptions, Record, parse_line
from .stream import micro_batches

if TYPE_CHECKING:
    from .api import SpamFilter

_worker_filter: SpamFilter | None = None  # set in the parent just before the workers are forked


def _score(slim: list[tuple], explain: int, opts: ReadOptions | None) -> list[dict]:
    """In a worker: score a batch sent as ``(id, text, lang, error)`` tuples (cheaper to pickle than
    records, and without the records' raw input fields) or as unparsed :class:`RawLine` items,
    parsed here so that the reading process only reads."""
    assert _worker_filter is not None
    opts = opts or ReadOptions()
    records = [
        parse_line(item, opts)
        if isinstance(item, RawLine)
        else Record(id=item[0], text=item[1], lang=item[2], error=item[3])
        for item in slim
    ]
    return _worker_filter.score_records(records, explain=explain)


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
    # parent's KeyboardInterrupt leaves the with-block, which terminates them
    ignore_sigint = (signal.SIGINT, signal.SIG_IGN)
    with multiprocessing.get_context("fork").Pool(jobs, initializer=signal.signal, initargs=ignore_sigint) as pool:
        pending: deque = deque()
        for batch in micro_batches(records, max_batch=max_batch, max_wait=max_wait, idle=max_wait):
            if batch:
                slim = [r if isinstance(r, RawLine) else (r.id, r.text, r.lang, r.error) for r in batch]
                pending.append(pool.apply_async(_score, (slim, explain, read_options)))
            while pending and (not batch or len(pending) > 2 * jobs or pending[0].ready()):
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
