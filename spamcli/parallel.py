"""Scoring micro-batches in worker processes (``spamcli classify --jobs N``).

The parent reads the input and writes the output; ``N`` forked workers parse and score batches (a
regular file goes to them in blocks of bytes, split into lines there).
Results come back in input order. At most ``2 * N`` batches are in flight, so memory stays bounded
on endless input, and whatever is in flight is finished as soon as the input goes quiet for a few
milliseconds, so a trickle of lines (``tail -f``) keeps its latency.

Workers are forked after the model, its lookup tables and the language-id model are loaded, so
they share that memory copy-on-write and start at once. Each gets the scorer (and its
:class:`~spamcli.router.Pipeline`) from the pool's initializer, inherited by the fork, not pickled:
pools of different scorers may run side by side in one process. Where processes cannot be forked
(Windows) or should not be (macOS) ``jobs`` falls back to 1 (:func:`~spamcli.stream.available_jobs`).

A worker that dies (SIGKILL, the OOM killer, a crash in C) ends the run with
:class:`~spamcli.errors.WorkerError` (exit code 5) instead of a wait for its batch that never
ends; what was handed out before stays a whole, in-order prefix of the output. Workers die with
a killed parent (Linux).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from .errors import WorkerError
from .records import ReadOptions, Record
from .stream import micro_batches
from .transport import RawBlock, RawLine, parse_items

if TYPE_CHECKING:
    from .api import SpamFilter
    from .profiles import ProfileScorer

# In a worker process: the scorer its pool was made for, set by _init_worker (never in the parent).
_worker_scorer: SpamFilter | ProfileScorer | None = None


def _score(slim: list, explain: int, opts: ReadOptions | None, max_batch: int) -> list[dict]:
    """In a worker: score a batch sent as ``(id, text, lang, error)`` tuples (cheaper to pickle than
    records, and without the records' raw input fields), as unparsed :class:`RawLine` items, or as
    one :class:`RawBlock` of a file's lines: these are split and parsed here, so that the reading
    process only reads. A block is scored ``max_batch`` records at a time."""
    assert _worker_scorer is not None
    opts = opts or ReadOptions()
    items = (
        item
        if isinstance(item, (RawLine, RawBlock, Record))
        else Record(id=item[0], text=item[1], lang=item[2], error=item[3])
        for item in slim
    )
    records = list(parse_items(items, opts))
    out: list[dict] = []
    for start in range(0, len(records), max_batch):
        out += _worker_scorer.score_records(records[start : start + max_batch], explain=explain)
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


IN_FLIGHT_GRACE = 30.0  # seconds an early stop waits for the batches in flight before killing workers


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _init_worker(scorer: SpamFilter | ProfileScorer, parent_pid: int, forked_by_main_thread: bool) -> None:
    """In each worker, once: keep ``scorer`` for the batches; ignore Ctrl-C, take SIGTERM and SIGHUP
    by default, die with the parent (``parent_pid``; the signal comes when the forking thread ends,
    so only when that was the main thread).

    Ctrl-C goes to the whole process group: the parent's KeyboardInterrupt stops the workers, and
    no worker prints a traceback of its own. The CLI's own SIGTERM handler (see process.py) is not for
    the workers: the pool stops the remaining ones with SIGTERM when one has died. The workers are
    forked with these signals blocked, so none arrives before this has run. If the parent is
    killed (SIGKILL, the OOM killer), Linux kills the workers too (``PR_SET_PDEATHSIG``): each
    worker holds the write end of its own task queue, so it would otherwise wait for work forever."""
    global _worker_scorer
    _worker_scorer = scorer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if forked_by_main_thread and sys.platform.startswith("linux"):  # the signal comes when that thread ends
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl in this libc: workers may outlive a killed parent
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


_PR_SET_PDEATHSIG = 1


def _worker_pid() -> int:
    return os.getpid()


def _died(workers: list, timeout: float = 0.0) -> str | None:
    """How a worker that has exited went (``"was killed by SIGKILL"``), or None while all run
    (``timeout``: how long to wait for one to end).

    When the pool has noticed first, it has already stopped the other workers with SIGTERM: the
    first death that is not one of those is the one to report."""
    ended = set(multiprocessing.connection.wait([p.sentinel for p in workers], timeout=timeout))
    if not ended:
        return None
    codes = [_exitcode(process) for process in workers if process.sentinel in ended]
    codes.sort(key=lambda code: (code is None, code == -signal.SIGTERM))
    return _how(codes[0])


def _exitcode(process, timeout: float = 1.0) -> int | None:
    """``process.exitcode`` once known: the pool's manager thread may be reaping it at the same
    moment, and until it has recorded the code, asking gives None."""
    deadline = time.monotonic() + timeout
    process.join(timeout)
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.exitcode


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    if exitcode is not None:
        return f"exited with code {exitcode}"
    return "died"


def _worker_error(how: str | None, written: int) -> WorkerError:
    return WorkerError(
        f"a worker process {how or 'died'}; the output holds the first {written} records, in order, "
        "and the rest of the input was not scored"
    )


def score_in_workers(
    spam_filter: SpamFilter | ProfileScorer,
    records: Iterable[Record],
    explain: int,
    jobs: int,
    max_batch: int,
    max_wait: float | None,
    read_options: ReadOptions | None = None,
) -> Iterator[list[dict]]:
    """Output dicts per micro-batch of ``records``, in order, scored by ``jobs`` forked processes.

    If a worker dies (SIGKILL, the OOM killer, a crash in C), this raises :class:`WorkerError`
    instead of waiting forever for the dead worker's batch: the pool is a
    :class:`~concurrent.futures.ProcessPoolExecutor`, which watches its workers and fails every
    pending batch when one dies (``BrokenProcessPool``), so the batches yielded before are an
    in-order prefix of the output, and the error says how many records they held.
    While the input is quiet, the workers are also checked on each idle tick, so a ``tail -f``
    learns of a death at once, not at its next line."""
    # load the language-id model and lookup tables before forking
    spam_filter.prepare()
    spam_filter.score_records([Record(id=0, text="warm up")])
    # profiles need every input field; messages only these four (cheaper to send)
    whole = getattr(spam_filter, "needs_fields", False)
    by_main_thread = threading.current_thread() is threading.main_thread()
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(spam_filter, os.getpid(), by_main_thread),  # inherited by the fork, not pickled
    )
    pending: deque = deque()
    workers: list = []
    written = 0
    try:
        # The first task forks all the workers ("fork" pools start them all at once): now, before
        # the input's reader thread starts, not in the middle of reading.
        # With the stop signals blocked meanwhile: the workers start with them blocked (see
        # _init_worker), and so do the pool's threads, started here too, so that a Ctrl-C or
        # SIGTERM always reaches this thread.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            started = pool.submit(_worker_pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        started.result()
        workers = list((getattr(pool, "_processes", None) or {}).values())  # for the idle-tick check only
        for batch in _tasks(records, max_batch, max_wait):
            if batch:
                slim = [
                    r if whole or isinstance(r, (RawLine, RawBlock)) else (r.id, r.text, r.lang, r.error) for r in batch
                ]
                pending.append(pool.submit(_score, slim, explain, read_options, max_batch))
            elif not pending and workers and (how := _died(workers)):
                raise _worker_error(how, written)
            while pending and (not batch or len(pending) > 2 * jobs or pending[0].done()):
                out = pending.popleft().result()
                written += len(out)
                yield out
        while pending:
            out = pending.popleft().result()
            written += len(out)
            yield out
    except BrokenProcessPool:
        raise _worker_error(_died(workers, timeout=1.0) if workers else None, written) from None
    finally:
        _stop(pool, pending)


def _stop(pool: ProcessPoolExecutor, pending: deque) -> None:
    """Shut the pool down, also when the consumer stops early (``classify | head -1``, Ctrl-C):
    batches not yet started are cancelled, the workers finish those they hold (at most
    ``jobs + 1``) and exit on their own. Only a batch that does not finish within
    :data:`IN_FLIGHT_GRACE` seconds (a hung worker) gets the workers killed."""
    for future in pending:
        future.cancel()
    if pending:
        concurrent.futures.wait(pending, timeout=IN_FLIGHT_GRACE)
    if all(future.done() for future in pending):
        pool.shutdown(wait=True)
        return
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
    else:  # before shutdown(), which forgets the processes
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
