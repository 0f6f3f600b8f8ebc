"""How the ``spamcli`` command runs as a Unix process: termination signals, a closed stdout, and
leaving while the input's reader thread is blocked on stdin.

SIGTERM and SIGHUP unwind the stack as Ctrl-C does (:class:`Terminated`), so temporary files are
removed and worker processes stopped on the way out; the exit code is then 128 + the signal's
number (see :mod:`spamcli.errors`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

from .errors import EXIT_BUG, EXIT_INPUT, EXIT_OK, EXIT_SIGNAL_BASE, EXIT_USAGE, SpamcliError


def quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head -1``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds the stack like KeyboardInterrupt does for Ctrl-C, so that
    temporary files are removed and worker processes stopped on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_termination(signum: int, _frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # once: a second SIGTERM must not cut the clean-up short
    raise Terminated(signum)


def catch_termination():
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while the CLI runs (where they are not
    ignored already, as ``nohup`` does); returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _on_termination)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def leave(code: int):
    """``sys.exit(code)``, unless the input's reader thread is still blocked reading stdin (Ctrl-C
    or an error while a pipe is quiet). Then the interpreter's shutdown would close stdin under
    that thread, which holds stdin's lock: "Fatal Python error: _enter_buffered_busy" and SIGABRT
    instead of the exit code. Nothing is left to clean up by then (workers are stopped, temporary
    files removed on the way out), so the process flushes its output and leaves at once."""
    from .stream import READER_THREAD

    readers = [t for t in threading.enumerate() if t.name == READER_THREAD and t.is_alive()]
    for thread in readers:
        thread.join(0.1)  # a reader that is not blocked stops at its next record
    if any(t.is_alive() for t in readers) and has_real_stdin():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def has_real_stdin() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return True


def run_command(body: Callable[[], int]) -> None:
    """Run ``body`` (which returns the exit code) as the process's command, and exit with its code:
    SIGTERM and SIGHUP unwind it as :class:`Terminated`, Ctrl-C or a signal that arrives while an
    error is being reported still gives 128 + the signal's number (see :func:`leave`)."""
    # numpy's OpenBLAS starts a thread per CPU that spins after it wakes, taking CPU from classify's
    # workers (0.2-0.5 s of CPU on 50,000 messages, measured). Nothing here needs threaded BLAS: the
    # scoring and counting are sparse, in numpy or C. numpy is imported after this line.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    restore = catch_termination()
    try:
        code = body()
    except KeyboardInterrupt:  # arrived while an error was being reported
        code = EXIT_SIGNAL_BASE + signal.SIGINT
    except Terminated as exc:
        code = EXIT_SIGNAL_BASE + exc.signum
    finally:
        restore()
    leave(code)


class StdoutClosed(Exception):
    """stdout's reader went away; not an OSError, which click would turn into exit code 1."""


def exit_code_of(command: Callable[[], object]) -> int:
    """Run one CLI ``command`` (a click/typer app called with ``standalone_mode=False``) and return
    its exit code: errors are reported here as one line on stderr, with the codes of
    :mod:`spamcli.errors`; a closed stdout ends quietly with 0."""
    try:
        code = command()
        return code if isinstance(code, int) else EXIT_OK
    except SpamcliError as exc:
        print(f"spamcli: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (BrokenPipeError, StdoutClosed):
        quiet_broken_pipe()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except Terminated as exc:
        return EXIT_SIGNAL_BASE + exc.signum
    except OSError as exc:
        print(f"spamcli: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        if type(exc).__name__ == "Abort" and type(exc).__module__.startswith(("click", "typer")):  # Ctrl-C
            return EXIT_SIGNAL_BASE + signal.SIGINT
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's (typer >= 0.29 vendors it)
            if type(exc).__name__ == "NoArgsIsHelpError":
                print(exc.format_message(), file=sys.stderr)
                return EXIT_USAGE
            ctx = getattr(exc, "ctx", None)
            hint = f" (see 'spamcli {ctx.info_name} --help')" if ctx is not None and ctx.parent else ""
            print(f"spamcli: error: {exc.format_message()}{hint}", file=sys.stderr)
            return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
        if os.environ.get("SPAMCLI_DEBUG"):
            raise
        print(
            f"spamcli: internal error: {type(exc).__name__}: {exc} (set SPAMCLI_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_BUG
