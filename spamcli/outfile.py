"""Writing to a path the user gave (``classify --output``, ``export --out``) without harming it.

A regular file is replaced atomically: the data goes to a temporary file beside it, which is
renamed over it when complete (an interrupted run leaves the old file). But a rename replaces
whatever the path is, so it is only ever done over a regular file or a new name:

- a symbolic link is followed to its final target, and that target is what gets written (the
  link stays a link);
- a character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is opened and
  written directly, never replaced;
- a directory, a socket or a block device is refused with a usage error (exit code 2).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import IO

from . import tempfiles
from .errors import UsageError


class OutputFile:
    """An output path opened for writing: :meth:`commit` makes the data its content, :meth:`abort`
    leaves the path as it was (for a device or FIFO, what was written is written)."""

    def __init__(self, path: str | os.PathLike, what: str = "--output", binary: bool = False):
        self.path = Path(path)
        target = Path(os.path.realpath(self.path))  # the final target of any chain of links
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise UsageError(f"{what} {path}: {exc.strerror}") from None
        if mode is not None and stat.S_ISDIR(mode):
            raise UsageError(f"{what} is a directory, not a file: {path}")
        if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise UsageError(f"{what} is not a regular file, a device or a pipe: {path}")
        if mode is None and not target.parent.is_dir():
            raise UsageError(f"{what} directory does not exist: {target.parent}")
        self.target = target
        self.direct = mode is not None and not stat.S_ISREG(mode)
        text = {} if binary else {"encoding": "utf-8", "newline": ""}
        flags = "wb" if binary else "w"
        try:
            if self.direct:
                self.tmp = None
                self.stream: IO = open(target, flags, **text)  # noqa: SIM115 - closed in commit/abort
            else:  # a locked temporary file: one a killed run (SIGKILL) left is removed here
                tempfiles.remove_stale(target.parent, re.compile(re.escape(target.name)))
                fd, self.tmp = tempfiles.create(target)
                self.stream = os.fdopen(fd, flags, **text)
        except OSError as exc:
            raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from None

    def commit(self) -> None:
        if self.direct:
            self.stream.close()
            return
        self.stream.flush()
        os.fsync(self.stream.fileno())
        os.chmod(self.tmp, tempfiles.mode())
        os.replace(self.tmp, self.target)  # before close, which releases the temporary file's lock
        self.stream.close()

    def abort(self) -> None:
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        self.stream.close()


def write_output(path: str | os.PathLike, data: bytes, what: str = "--out") -> Path:
    """Write ``data`` to a user's path by the rules above; the path that was written."""
    out = OutputFile(path, what, binary=True)
    try:
        out.stream.write(data)
    except BaseException:
        out.abort()
        raise
    out.commit()
    return out.target
