"""Errors with the exit codes of the CLI contract (see README, "Exit codes").

0 success, 1 unexpected (a bug), 2 usage error, 3 bad input data, 4 model missing/corrupt/incompatible.
The library raises these; the CLI prints ``spamcli: error: <message>`` on one line and exits.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4


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
