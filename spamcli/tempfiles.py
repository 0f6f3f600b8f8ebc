"""Temporary files that become real ones with ``os.replace``, and the removal of those a killed
process left behind.

A temporary file is created beside its target as ``.<target name>.<random>.tmp`` and its writer
holds an exclusive ``flock`` on it until it is renamed into place (or removed). An exception,
Ctrl-C or SIGTERM removes it on the way out; SIGKILL, the OOM killer or a power cut cannot, but
they release the lock with the process. :func:`remove_stale` deletes the temporary files nobody
holds: the next save or load of a model does so in its directory, the next ``classify
--output FILE`` for ``FILE``'s. A live writer's file is never removed: its lock is held.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; temporary files are still removed on the way out
    fcntl = None


def mode(base: int = 0o666) -> int:
    """``base`` less the process's umask: the mode a plain ``open`` would have given a new file
    (``mkstemp`` creates 0600, which a file renamed into place should not keep)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def create(target: Path) -> tuple[int, str]:
    """A new temporary file for ``target``, locked: its open descriptor and its path."""
    import tempfile  # here: loading a model does not write

    target = Path(target)
    while True:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            now = os.stat(tmp)
            if (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino):
                return fd, tmp
        except FileNotFoundError:  # a cleaner took it for stale in the instant before it was locked
            pass
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)


def remove_stale(directory: Path, names: re.Pattern | None = None) -> None:
    """Delete the temporary files in ``directory`` whose writers are gone (see module docstring);
    ``names``: the targets (a pattern matching the whole name) whose temporary files to look at,
    all by default. Best effort: a directory that cannot be read or written is left as it is
    (and without ``flock``, on Windows, nothing is removed: a live writer could not be told apart)."""
    if fcntl is None:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None or (names is not None and names.fullmatch(match.group(1)) is None):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its writer is alive
            held = os.fstat(fd)
            now = os.stat(entry.path, follow_symlinks=False)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):  # not renamed into place meanwhile
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)


_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]+\.tmp")  # what tempfile.mkstemp makes of create()'s prefix


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
