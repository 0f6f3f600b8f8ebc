"""Users' regular expressions (``--label-rule``'s ``~``, ``--trusted-domains``), run on RE2.

Python's ``re`` backtracks: ``(a+)+$`` against forty ``a`` and a ``!`` runs for hours, so a pattern
from a command line, a list file or a model's scoring could stall a job. RE2 (``google-re2``) runs
in time linear in the input, whatever the pattern, and refuses what it cannot run that way
(backreferences, lookahead and lookbehind): such a pattern is a :class:`UsageError` (exit 2), as
is one whose compiled program would need more than RE2's memory budget (``pattern too large``).
Matching is case-insensitive, as it was with ``re.I``.
"""

from __future__ import annotations

from functools import lru_cache

from .errors import UsageError

MAX_PATTERN_CHARS = 10_000


class PatternError(UsageError):
    """A pattern that does not compile on RE2 (the message says why)."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str):
    """``pattern`` compiled by RE2, case-insensitive; :class:`PatternError` if RE2 cannot run it."""
    import re2

    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would log each refused pattern to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise PatternError(_explain(reason)) from None


def _explain(reason: str) -> str:
    """RE2's reason, with what to do about the two refusals a Python user will not expect."""
    if any(f"invalid perl operator: {op}" in reason for op in ("(?=", "(?!", "(?<")):
        return f"{reason} (lookahead and lookbehind are not supported: patterns run on RE2, in linear time)"
    if "invalid escape sequence: \\" in reason and reason[-1:].isdigit():
        return f"{reason} (backreferences are not supported: patterns run on RE2, in linear time)"
    return reason
