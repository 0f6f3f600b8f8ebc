"""Helpers for the tests: paths, CLI runners (in this process, or a real ``python -m spamcli``), error checks."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "datasets" / "samples"
DEFAULT_MODEL = REPO / "models" / "default"


@dataclass
class Result:
    """What a finished ``spamcli`` run left behind: its exit code, stdout and stderr."""

    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a spamcli run: no debug tracebacks, no colour, wide terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPAMCLI_DEBUG", "SPAMCLI_MODEL")}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"})
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike, stdin: bytes | str = b"", env: dict | None = None, timeout: float = 120
) -> Result:
    """``spamcli ARGS`` in this process: :func:`spamcli.cli.main` with ``stdin`` and captured
    stdout/stderr, as :func:`run_cli_process` runs it in a subprocess (see :func:`in_process`).

    What needs a real process (signals, killed workers, pipes that stay open, a terminal, a locale,
    environment variables read at import) takes :func:`run_cli_process` instead."""
    from spamcli.cli import main

    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    with in_process(data, env or cli_env(), timeout) as (out, err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = _exit_status(exc.code)
        else:
            code = 0
    return Result(code, out.text(), err.text())


def run_cli_process(
    *args: str | os.PathLike, stdin: bytes | str = b"", env: dict | None = None, timeout: float = 120, **popen
) -> Result:
    """Run ``python -m spamcli ARGS`` in a subprocess with ``stdin`` and capture everything
    (``popen``: more arguments for :func:`subprocess.run`, e.g. ``preexec_fn``)."""
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [sys.executable, "-m", "spamcli", *map(str, args)],
        input=data,
        capture_output=True,
        env=env or cli_env(),
        cwd=REPO,
        timeout=timeout,
        **popen,
    )
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


# ---- the in-process runner --------------------------------------------------------------------
class _PipeBytes(io.BytesIO):
    """stdin's bytes, read as from a pipe: not seekable (a seekable stdin would be sniffed as a
    file is) and no file descriptor (so the CLI never takes it for a real stdin, see cli._leave)."""

    def seekable(self) -> bool:
        return False

    def seek(self, *_args):
        raise io.UnsupportedOperation("seek")

    def tell(self):
        raise io.UnsupportedOperation("tell")


class _Captured(io.BytesIO):
    """What was written to stdout or stderr, also after the stream was closed."""

    closed_value: bytes | None = None

    def close(self) -> None:
        if not self.closed:
            self.closed_value = self.getvalue()
        super().close()

    def text(self) -> str:
        value = self.closed_value if self.closed else self.getvalue()
        return value.decode("utf-8", "replace")


class _ExitedProcess(BaseException):
    """The CLI called ``os._exit`` in the test process."""


class _TimedOut(BaseException):
    """An in-process run took longer than its timeout."""


# Python's own warning filters (``python -W`` unset): what a spamcli process prints, pytest's aside.
_PYTHON_WARNING_FILTERS = [
    ("ignore", ResourceWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", DeprecationWarning, None),
    ("default", DeprecationWarning, "__main__"),
]
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGALRM)


def _exit_status(code) -> int:
    """The status a process exiting with ``sys.exit(code)`` has."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _logger_state() -> dict:
    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    return {logger: (list(logger.handlers), logger.level, logger.propagate) for logger in loggers}


def _restore_loggers(saved: dict) -> None:
    for logger in _logger_state():
        logger.handlers[:], logger.level, logger.propagate = saved.get(logger, ([], logging.NOTSET, True))


@contextlib.contextmanager
def in_process(stdin: bytes, env: dict, timeout: float):
    """Run the body as a ``spamcli`` process would run: its own stdin, stdout and stderr (yielded
    as the two captured outputs), exactly ``env`` as the environment, the repository as working
    directory, Python's default warning filters and hooks (a warning or an exception in a thread
    goes to stderr), and SIGALRM after ``timeout`` seconds. Put back afterwards, whatever happened:
    streams, environment, working directory, umask, signal handlers and mask, loggers' handlers.
    ``os._exit`` fails the test instead of ending it (in forked worker processes it exits). Fails
    if the run leaves its input's reader thread or a worker process behind."""
    from spamcli.stream import READER_THREAD

    out, err = _Captured(), _Captured()
    streams = (
        io.TextIOWrapper(_PipeBytes(stdin), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", errors="strict"),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", line_buffering=True),
    )
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    main_thread = threading.current_thread() is threading.main_thread()
    saved_signals = {signum: signal.getsignal(signum) for signum in _SIGNALS} if main_thread else {}
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    saved_loggers = _logger_state()
    saved_hooks = (threading.excepthook, sys.unraisablehook)
    real_exit, parent = os._exit, os.getpid()

    def exit_in_process(code: int) -> None:
        if os.getpid() != parent:  # a forked worker ends as usual
            real_exit(code)
        raise _ExitedProcess(code)

    def on_alarm(_signum, _frame) -> None:
        raise _TimedOut()

    children = {p.pid for p in multiprocessing.active_children()}
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in _PYTHON_WARNING_FILTERS:
                warnings.filterwarnings(action, category=category, module=module or "")
            warnings.showwarning = _print_warning
            threading.excepthook, sys.unraisablehook = threading.__excepthook__, sys.__unraisablehook__
            os.environ.clear()
            os.environ.update(env)
            os.chdir(REPO)
            os._exit = exit_in_process
            sys.stdin, sys.stdout, sys.stderr = streams
            if main_thread:
                signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                yield out, err
            except _ExitedProcess as exc:
                raise AssertionError(f"spamcli called os._exit({exc.args[0]}) in the test process") from None
            except _TimedOut:
                raise AssertionError(f"spamcli did not finish within {timeout} s in the test process") from None
            finally:
                if main_thread:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                for stream in streams[1:]:
                    with contextlib.suppress(ValueError, OSError):
                        stream.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os._exit = real_exit
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        os.umask(saved_umask)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        threading.excepthook, sys.unraisablehook = saved_hooks
        _restore_loggers(saved_loggers)
    for thread in threading.enumerate():
        if thread.name == READER_THREAD:
            thread.join(10)
            assert not thread.is_alive(), "the run left its input's reader thread running"
    deadline = time.monotonic() + 10
    while left := [p for p in multiprocessing.active_children() if p.pid not in children]:
        assert time.monotonic() < deadline, f"the run left worker processes running: {left}"
        left[0].join(0.1)


def killed_at(point: str, victim, timeout: float = 120) -> int:
    """Run ``victim()`` in a forked process that kills itself with SIGKILL at ``point``, as kill -9
    or a power cut at that moment would; its exit code (``-SIGKILL`` once ``point`` was reached).
    ``point`` is "MODULE.FUNCTION" (when that function is called) or "MODULE.FUNCTION:SUFFIX" (when
    it is called with a second argument ending in SUFFIX: "os.replace:manifest.json" is the moment
    the new manifest's temporary file is written and about to take its place)."""

    def run() -> None:
        where, _, suffix = point.partition(":")
        module_name, _, name = where.rpartition(".")
        module = importlib.import_module(module_name)
        real = getattr(module, name)

        def kill_or_call(*args, **kwargs):
            if not suffix or str(args[1]).endswith(suffix):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(module, name, kill_or_call)
        victim()

    process = multiprocessing.get_context("fork").Process(target=run, name="victim")
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise AssertionError(f"the victim did not reach {point} within {timeout} s")
    return process.exitcode


def outputs_by_thread_count(script: str, *args: str | os.PathLike) -> set[str]:
    """The distinct outputs of ``python -c script ARGS`` run with BLAS and OpenMP on 1 and on 2
    threads: one, for a computation that repeats bit for bit whatever the threads."""
    outputs = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        command = [sys.executable, "-c", script, *map(str, args)]
        outputs.add(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    return outputs


def assert_one_line_error(result: Result, code: int) -> None:
    """The error contract: the exit code, one line on stderr, no traceback, nothing on stdout."""
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spamcli: error: ")
    assert result.stdout == ""


def shared_datasets() -> Path | None:
    """``$SPAMCLI_DATASETS`` or ``../shared/datasets`` next to the repository, if present."""
    override = os.environ.get("SPAMCLI_DATASETS")
    candidates = [Path(override)] if override else []
    candidates.append(REPO.parent / "shared" / "datasets")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@functools.lru_cache(maxsize=2)
def shared_dataset_texts(root: Path) -> tuple[str, ...]:
    """Every text of the shared datasets present under ``root`` (registry order by name); read
    once per session (a few seconds), for the tests that run over all of them."""
    from spamcli import datasets

    texts: list[str] = []
    for name, info in sorted(datasets.REGISTRY.items()):
        if all((root / info.folder / f).is_file() for f in info.files):
            texts += [r.text for r in datasets.load(name, root)]
    return tuple(texts)


def new_module_object(name: str):
    """A new module object of the extension module ``name`` (multi-phase init makes one per call,
    each with its own state), apart from the one ``import`` gives."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
