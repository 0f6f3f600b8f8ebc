"""Labels from moderators' decisions: a moderation export becomes spam/ham training records.

A moderation export is a CSV or JSON-lines file of reported items, one per row, with whatever the
platform records about the decision (``hidden_at``, ``blocked``, ``reviewed_at``, ...). Mapping:

- **spam**: the item was hidden or its author blocked: ``--hidden-col COL`` or ``--blocked-col
  COL`` holds a true value, or the ``--label-rule EXPR`` expression is true;
- **ham**: otherwise, if moderators reviewed it and kept it: the ``--reviewed-col COL`` holds a true
  value (default: the first of ``reviewed``, ``reviewed_at``, ``kept``, ``moderated_at``,
  ``unhidden_at`` present), or the ``--ham-rule EXPR`` expression is true;
- **skipped** (counted): neither, i.e. not reviewed yet.

A value is *true* unless it is empty, ``0``, ``false``, ``no``, ``n``, ``f``, ``null``, ``none``
or ``nil`` (any case): a timestamp such as ``hidden_at=2024-05-01`` is true.

Rule expressions are parsed by a small recursive-descent parser (never ``eval``)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "~") value)?
    value      := NAME | 'string' | "string" | number | true | false | null | "(" expr ")"

``NAME`` is a column (letters, digits, ``_``, ``.``, ``-``; a missing column is empty). Alone, a
value means "is true". ``==``/``!=`` against ``true``/``false`` compare truthiness; between two
numbers they compare numerically; otherwise as text (case-insensitive). ``<``... need numbers (a
non-number makes the comparison false). ``~`` is a case-insensitive regular-expression search,
run on RE2 (see :mod:`spamcli.patterns`): linear in the field's length whatever the pattern, so no
backreferences or lookaround; a literal pattern is compiled with the rule, so a pattern RE2 refuses
is a usage error before any record is read. Parentheses and ``not`` nest at most
:data:`MAX_RULE_DEPTH` deep (a deeper rule is a usage error, not a stack overflow).
Example: ``hidden_at != '' or (report_count >= 3 and reason ~ 'spam|scam')``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .errors import InputError, UsageError
from .patterns import PatternError, compile_pattern
from .records import Record

FALSE_VALUES = {"", "0", "false", "no", "n", "f", "null", "none", "nil"}
REVIEWED_COLUMNS = ("reviewed", "reviewed_at", "kept", "moderated_at", "unhidden_at")
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>|~|\(|\))|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<num>-?\d+(?:\.\d+)?(?![\w.]))|(?P<name>[A-Za-z_][\w.-]*))"
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
MAX_RULE_DEPTH = 64  # parentheses and "not" nested in one another; each level is a few stack frames


def truthy(value: object) -> bool:
    """Whether a cell counts as true (see module docstring)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() not in FALSE_VALUES


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


# ---- the expression language ----------------------------------------------------------------
Node = Callable[[dict], object]


def _tokenise(source: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if not match or match.end() == pos:
            raise UsageError(f"cannot parse rule at column {pos + 1}: {source[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "name" and text.lower() in _KEYWORDS:
            kind, text = "kw", text.lower()
        tokens.append((kind, text))
        pos = match.end()
    return tokens


def _regex(pattern: object):
    try:
        return compile_pattern(str(pattern))
    except PatternError as exc:
        raise UsageError(f"bad regular expression {str(pattern)!r} in rule: {exc}") from None


def _compare(op: str, left: object, right: object) -> bool:
    if op == "~":
        return _regex(right).search("" if left is None else str(left)) is not None
    if op in ("==", "!="):
        if isinstance(left, bool) or isinstance(right, bool):
            same = truthy(left) == truthy(right)
        elif _number(left) is not None and _number(right) is not None:
            same = _number(left) == _number(right)
        else:
            same = str(left or "").strip().lower() == str(right or "").strip().lower()
        return same if op == "==" else not same
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = _tokenise(source)
        self.pos = 0
        self.depth = 0

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_RULE_DEPTH:
            raise UsageError(f"rule nested too deeply (more than {MAX_RULE_DEPTH} levels of parentheses and 'not')")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str, text: str | None = None) -> bool:
        tok = self._peek()
        if tok and tok[0] == kind and (text is None or tok[1] == text):
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        if not self.tokens:
            raise UsageError("empty rule")
        node = self._or()
        if self._peek() is not None:
            raise UsageError(f"unexpected {self._peek()[1]!r} in rule {self.source!r}")
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._take("kw", "or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(truthy(p(row)) for p in parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._take("kw", "and"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else (lambda row: all(truthy(p(row)) for p in parts))

    def _not(self) -> Node:
        if self._take("kw", "not"):
            self._deeper()
            inner = self._not()
            self.depth -= 1
            return lambda row: not truthy(inner(row))
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._value()
        tok = self._peek()
        if tok and tok[0] == "op" and tok[1] not in "()":
            self.pos += 1
            literal = self._peek() is not None and self._peek()[0] in ("str", "num", "kw")
            right = self._value()
            op = tok[1]
            if op == "~" and literal:  # compiled once, now: a bad pattern fails before any record
                regex = _regex(right({}))
                return lambda row: regex.search("" if (v := left(row)) is None else str(v)) is not None
            return lambda row: _compare(op, left(row), right(row))
        return left

    def _value(self) -> Node:
        tok = self._peek()
        if tok is None:
            raise UsageError(f"rule ends too early: {self.source!r}")
        self.pos += 1
        kind, text = tok
        if kind == "op" and text == "(":
            self._deeper()
            inner = self._or()
            if not self._take("op", ")"):
                raise UsageError(f"missing ')' in rule {self.source!r}")
            self.depth -= 1
            return inner
        if kind == "str":
            value: object = text[1:-1]
        elif kind == "num":
            value = float(text)
        elif kind == "kw" and text in ("true", "false"):
            value = text == "true"
        elif kind == "kw" and text == "null":
            value = ""
        elif kind == "name":
            return lambda row: row.get(text)
        else:
            raise UsageError(f"unexpected {text!r} in rule {self.source!r}")
        return lambda _row: value


def compile_rule(source: str) -> Callable[[dict], bool]:
    """A rule expression as a predicate over a record's fields; UsageError if it does not parse."""
    node = _Parser(source).parse()
    return lambda row: truthy(node(row))


# ---- labeling ---------------------------------------------------------------------------------
@dataclass
class ModerationLabeler:
    """Turns moderation-export rows into labels: 1 spam, 0 ham, None not reviewed (skipped)."""

    hidden_col: str | None = None
    blocked_col: str | None = None
    label_rule: str | None = None
    reviewed_col: str | None = None
    ham_rule: str | None = None
    skipped: int = 0
    counts: dict = field(default_factory=lambda: {"spam": 0, "ham": 0})

    def __post_init__(self) -> None:
        if not (self.hidden_col or self.blocked_col or self.label_rule):
            raise UsageError("a moderation export needs --hidden-col, --blocked-col or --label-rule")
        self._spam_rule = compile_rule(self.label_rule) if self.label_rule else None
        self._ham_rule = compile_rule(self.ham_rule) if self.ham_rule else None

    def label(self, fields: dict) -> int | None:
        spam = any(truthy(fields.get(col)) for col in (self.hidden_col, self.blocked_col) if col)
        if not spam and self._spam_rule is not None:
            spam = self._spam_rule(fields)
        if spam:
            return 1
        if self._ham_rule is not None:
            return 0 if self._ham_rule(fields) else None
        reviewed = self.reviewed_col or next((c for c in REVIEWED_COLUMNS if c in fields), None)
        return 0 if reviewed and truthy(fields.get(reviewed)) else None

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        """Labeled records; unreadable ones pass through (training counts them), unreviewed are skipped.

        A column named by ``--hidden-col``, ``--blocked-col`` or ``--reviewed-col`` that no record
        holds is a misspelling, not a site where nothing was hidden: InputError once the records
        are read (``learn`` and ``train`` read them all before they write anything). A rule
        (``--label-rule``) takes a missing column as empty, for exporters that leave them out."""
        named = dict(self._named_columns())
        first_fields: dict | None = None
        for rec in records:
            if named and rec.fields:  # a row with a blank text or no text field holds its columns too
                for col in [col for col in named if col in rec.fields]:
                    del named[col]
            if first_fields is None and rec.fields:
                first_fields = rec.fields
            if rec.error:
                yield rec
                continue
            label = self.label(rec.fields)
            if label is None:
                self.skipped += 1
                continue
            rec.label = label
            self.counts["spam" if label else "ham"] += 1
            yield rec
        if named and first_fields is not None:
            col, option = next(iter(named.items()))
            columns = ", ".join(map(str, first_fields))
            raise InputError(
                f"no column {col!r} ({option}) in the moderation export (columns: {columns}); if your "
                f"exporter leaves empty fields out, give --label-rule \"{col} != ''\" instead"
            )

    def _named_columns(self) -> list[tuple[str, str]]:
        """The columns named by options that read them (a ``--ham-rule`` replaces ``--reviewed-col``)."""
        options = [("--hidden-col", self.hidden_col), ("--blocked-col", self.blocked_col)]
        if self._ham_rule is None:
            options.append(("--reviewed-col", self.reviewed_col))
        return [(col, option) for option, col in options if col]
