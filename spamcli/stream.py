"""Micro-batching of a record stream.

A reader thread pulls records from the input into a bounded queue; the consumer takes what is
there, up to ``max_batch``, waiting at most ``max_wait`` seconds for more once it has one. Bulk
input thus gets large batches (throughput), while a line written to ``tail -f`` is scored within
``max_wait`` plus the scoring time (latency). The bounded queue keeps memory flat on endless input.
Input that never blocks (a regular file, ``max_wait=None``) skips the thread and is read in full
batches.
"""

from __future__ import annotations

import itertools
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
READER_THREAD = "spamcli-reader"  # the name of the thread that reads the input (see process.leave)


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def micro_batches(
    items: Iterable[T], max_batch: int = 1024, max_wait: float | None = 0.01, idle: float | None = None
) -> Iterator[list[T]]:
    """Group ``items`` into lists, in order; exceptions of the producer are re-raised here.

    With ``idle`` set, an empty list is yielded whenever no item arrived for ``idle`` seconds, so
    a consumer with work in flight (:mod:`spamcli.parallel`) can finish it while input is quiet.

    ``max_wait=None`` is for input that never makes a reader wait (a regular file): lists of
    ``max_batch`` items are read in this thread, with no reader thread (whose hand-overs cost a
    quarter of a single process's time on such input).

    The queue is a C-level :class:`queue.SimpleQueue` (a put/get costs a fraction of
    :class:`queue.Queue`'s locking); the reader pauses while ``4 * max_batch`` items are waiting,
    which bounds memory on endless input."""
    max_batch = max(1, max_batch)
    if max_wait is None:
        iterator = iter(items)
        while batch := list(itertools.islice(iterator, max_batch)):
            yield batch
        return
    buffer: queue.SimpleQueue = queue.SimpleQueue()
    limit = max_batch * 4
    room = threading.Event()  # set by the consumer whenever it has taken items
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
                while buffer.qsize() >= limit and not stop.is_set():
                    room.clear()
                    if buffer.qsize() >= limit:
                        room.wait(0.1)
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(_Failure(exc))

    thread = threading.Thread(target=produce, name=READER_THREAD, daemon=True)
    thread.start()
    try:
        done = False
        while not done:
            try:
                first = buffer.get(timeout=idle)
            except queue.Empty:
                yield []
                continue
            if first is _END:
                return
            if isinstance(first, _Failure):
                raise first.exc
            batch = [first]
            deadline = time.monotonic() + max_wait
            while len(batch) < max_batch:
                try:
                    item = buffer.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = buffer.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _END:
                    done = True
                    break
                if isinstance(item, _Failure):
                    if batch:
                        yield batch
                    raise item.exc
                batch.append(item)
            room.set()
            yield batch
    finally:
        stop.set()
        room.set()


MAX_DEFAULT_JOBS = 4  # beyond this the parent (reading, writing) is the bottleneck, and each worker holds its caches


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_jobs(jobs: int) -> int:
    """``jobs`` itself; for 0, one per usable CPU up to :data:`MAX_DEFAULT_JOBS`; 1 where processes
    cannot be forked (Windows) or should not be (macOS: its system libraries are not safe to use in
    a forked child, which is why Python's default there is ``spawn``)."""
    if jobs == 1:  # one process: nothing to ask the multiprocessing module
        return 1
    import multiprocessing

    if sys.platform == "darwin" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if jobs > 0:
        return jobs
    return max(1, min(usable_cpus(), MAX_DEFAULT_JOBS))


# Input known to be no larger than this, all of it there already, is scored without worker processes
# by default (``--jobs 0``): one process scores it sooner than workers could be started (~3,000 short
# messages; on 2 CPUs two workers first caught up at ~800 kB of SMS). A pipe holds 64 kB unless its
# writer enlarged it.
SMALL_INPUT = 256 * 1024


def small_input(path: str) -> bool:
    """Whether the input ``path`` (``-``: stdin) is known to be whole and at most :data:`SMALL_INPUT`
    bytes: a regular file that small, or a pipe that its writer has closed with that much left in
    it (``echo hi | spamcli classify``). Nothing is read: a pipe is only polled."""
    try:
        if path != "-":
            info = os.stat(path)
            return stat.S_ISREG(info.st_mode) and info.st_size <= SMALL_INPUT
        fd = sys.stdin.fileno()
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return info.st_size - os.lseek(fd, 0, os.SEEK_CUR) <= SMALL_INPUT
        if not stat.S_ISFIFO(info.st_mode):
            return False
        import fcntl
        import select
        import termios

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        events = dict(poller.poll(0)).get(fd, 0)
        if not events & select.POLLHUP:  # a writer may still add to it
            return False
        waiting = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(waiting, sys.byteorder) <= SMALL_INPUT
    except (OSError, ValueError, AttributeError, ImportError):  # no real stdin, no poll (Windows)
        return False


def classify_batches(
    scorer,
    records: Iterable,
    explain: int = 0,
    max_batch: int = 1024,
    max_wait: float | None = 0.01,
    jobs: int = 1,
) -> Iterator[list[dict]]:
    """What both scorers' ``classify_batches`` do (``scorer``: anything with ``score_records``).

    Output dicts for a (possibly endless) stream of records, in input order, a micro-batch at a
    time: big batches for bulk input, immediate answers for a slow trickle. ``jobs`` > 1 scores
    batches in that many forked worker processes (0: one per CPU; see :mod:`spamcli.parallel`);
    the output is the same. ``max_wait=None`` when reading never blocks (a regular file): full
    batches, without a reader thread."""
    if jobs != 1:
        jobs = available_jobs(jobs)
        if jobs > 1:
            from .parallel import score_in_workers  # not imported for one process

            yield from score_in_workers(scorer, records, explain, jobs, max_batch, max_wait)
            return
    for batch in micro_batches(records, max_batch=max_batch, max_wait=max_wait):
        yield scorer.score_records(batch, explain=explain)
