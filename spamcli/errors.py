"""Errors with the exit codes of the CLI contract (see README, "Exit codes").

0 success, 1 unexpected (a bug), 2 usage error, 3 bad input data, 4 model missing/corrupt/incompatible,
5 a worker process died (``classify --jobs N``: killed, out of memory). The library raises these;
the CLI prints ``spamcli: error: <message>`` on one line and exits. Stopped by a signal, the CLI
exits ``128 + the signal's number`` after cleaning up: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_WORKER = 5
EXIT_SIGNAL_BASE = 128  # + the signal's number: 130 SIGINT, 143 SIGTERM, 129 SIGHUP


class SpamcliError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_BUG


class UsageError(SpamcliError):
    exit_code = EXIT_USAGE


class InputError(SpamcliError):
    """The input data is unusable: unreadable file, no usable records, one class only, ..."""

    exit_code = EXIT_INPUT


class ModelError(SpamcliError):
    """The model is missing, corrupt, tampered with, or from an incompatible format version."""

    exit_code = EXIT_MODEL


class WorkerError(SpamcliError):
    """A worker process of ``classify --jobs N`` died (killed, out of memory, crashed)."""

    exit_code = EXIT_WORKER
