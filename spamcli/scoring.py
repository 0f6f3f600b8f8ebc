"""How a profile's signals are weighed (:class:`ScoringConfig`, ``--scoring``) and which e-mail
domains are trusted (:class:`DomainMatcher`, ``--trusted-domains``).

Apart from :mod:`spamcli.profiles` so that checking a model's profile scoring when it is loaded
(:mod:`spamcli.bundle`) costs no more than this module: a message run never imports the profile
scorer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, UsageError
from .patterns import PatternError, compile_pattern
from .router import Thresholds, fpr_key

SIGNALS = (
    "url_in_bio",
    "contact_in_bio",
    "personal_url",
    "bio_without_activity",
    "rare_language",
    "trusted_domain",
    "verified",
)
DEFAULT_SCORING: dict = {
    "source": "default",
    "weights": {
        "text": 1.0,
        "url_in_bio": 1.0,
        "contact_in_bio": 0.5,
        "personal_url": 0.7,
        "bio_without_activity": 0.5,
        "rare_language": 0.5,
        "trusted_domain": -3.0,
        "verified": -3.0,
    },
    "bias": 0.0,
    "empty_bio_logit": -2.0,
    "short_bio_words": 8,
    "site_languages": [],
    "trusted_domains": [],
    "thresholds": None,  # None: the text model's thresholds
    # The profile score's spam threshold per false-positive budget ({"0.01": cut, ...}: see
    # router.FP_BUDGETS), chosen on held-out profile scores when the model was built or trained;
    # ``--max-fpr`` picks one. Empty: the model has none.
    "spam_at_fpr": {},
}


# ---- configuration ---------------------------------------------------------------------------
@dataclass
class ScoringConfig:
    """How signals are weighed; see :data:`DEFAULT_SCORING` for the keys and defaults."""

    weights: dict[str, float]
    bias: float = 0.0
    empty_bio_logit: float = -2.0
    short_bio_words: int = 8
    site_languages: list[str] = field(default_factory=list)
    trusted_domains: list[str] = field(default_factory=list)
    thresholds: Thresholds | None = None
    source: str = "default"
    spam_at_fpr: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, *layers: dict) -> ScoringConfig:
        """Defaults, overridden by each layer in turn (a bundle's scoring, then a --scoring file)."""
        merged = {**DEFAULT_SCORING, "weights": dict(DEFAULT_SCORING["weights"])}
        for layer in layers:
            for key, value in (layer or {}).items():
                if key not in DEFAULT_SCORING:
                    raise UsageError(f"unknown scoring key {key!r} (known: {', '.join(DEFAULT_SCORING)})")
                if key == "weights":
                    if not isinstance(value, dict):
                        raise UsageError(f"bad scoring configuration: weights must be an object, not {value!r}")
                    unknown = set(value) - {"text", *SIGNALS}
                    if unknown:
                        raise UsageError(f"unknown signal weight(s): {', '.join(sorted(unknown))}")
                    merged["weights"].update(value)
                else:
                    merged[key] = value
        try:
            t = merged["thresholds"]
            config = cls(
                weights={k: float(v) for k, v in merged["weights"].items()},
                bias=float(merged["bias"]),
                empty_bio_logit=float(merged["empty_bio_logit"]),
                short_bio_words=int(merged["short_bio_words"]),
                site_languages=[str(x).lower() for x in merged["site_languages"]],
                trusted_domains=[str(x) for x in merged["trusted_domains"]],
                thresholds=Thresholds(ham=float(t["ham"]), spam=float(t["spam"])) if t else None,
                source=str(merged["source"]),
                spam_at_fpr=_budget_table(merged["spam_at_fpr"]),
            )
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise UsageError(f"bad scoring configuration: {exc}") from None
        numbers = [*config.weights.values(), config.bias, config.empty_bio_logit]
        if not all(math.isfinite(x) for x in numbers):  # NaN would make every score NaN
            raise UsageError("bad scoring configuration: weights, bias and empty_bio_logit must be finite numbers")
        if config.short_bio_words < 0:
            raise UsageError("bad scoring configuration: short_bio_words must be 0 or more")
        if config.thresholds and not 0.0 <= config.thresholds.ham <= config.thresholds.spam <= 1.0:
            raise UsageError("bad scoring configuration: thresholds need 0 <= ham <= spam <= 1")
        return config

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "weights": dict(self.weights),
            "bias": self.bias,
            "empty_bio_logit": self.empty_bio_logit,
            "short_bio_words": self.short_bio_words,
            "site_languages": list(self.site_languages),
            "trusted_domains": list(self.trusted_domains),
            "thresholds": {"ham": self.thresholds.ham, "spam": self.thresholds.spam} if self.thresholds else None,
            "spam_at_fpr": dict(self.spam_at_fpr),
        }

    def at_fp_budget(self, budget: float, ham: float) -> Thresholds:
        """The thresholds for a false-positive budget (one of :data:`~spamcli.router.FP_BUDGETS`):
        its stored spam cut, and ``ham`` lowered to that cut if above it."""
        key = fpr_key(budget)
        if key not in self.spam_at_fpr:
            stored = sorted(self.spam_at_fpr, key=float)
            have = f"it has {', '.join(stored)}" if stored else "it has none: rebuild or retrain it with this spamcli"
            raise UsageError(f"the profile scoring has no spam threshold for a false-positive budget of {key} ({have})")
        spam = self.spam_at_fpr[key]
        return Thresholds(ham=min(ham, spam), spam=spam)


def _budget_table(table) -> dict[str, float]:
    """``spam_at_fpr`` checked: budget keys that are rates ("0.01"), cuts in [0, 1]."""
    if not isinstance(table, dict):
        raise ValueError(f"spam_at_fpr must be an object, not {table!r}")
    out = {}
    for budget, cut in table.items():
        if not 0.0 < float(budget) < 1.0 or not 0.0 <= float(cut) <= 1.0:
            raise ValueError(f"spam_at_fpr: {budget!r}: {cut!r} is not a rate and a threshold in [0, 1]")
        out[fpr_key(float(budget))] = float(cut)
    return out


def read_scoring_file(path: str | Path) -> dict:
    """A ``--scoring`` file: JSON, or TOML (``.toml``, Python 3.11+)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read scoring file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # pragma: no cover - Python 3.10
                raise UsageError("TOML scoring files need Python 3.11+; use JSON") from None
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot parse scoring file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"scoring file {path} must hold an object/table")
    return data


# ---- trusted domains -------------------------------------------------------------------------
_REGEX_CHARS = set("^$*+?[](){}|\\")


class DomainMatcher:
    """Domain patterns: ``.edu`` (suffix), ``example.org`` (the domain and its subdomains), or a
    regular expression (anything with ``^$*+?[](){}|\\``) that must match the WHOLE domain
    (``partner\\d+\\.example`` does not trust ``evilpartner1.example`` nor
    ``partner1.example.attacker.net``), case-insensitively. Regular expressions run on RE2 (see
    :mod:`spamcli.patterns`): linear time whatever the pattern; one RE2 refuses (backreferences,
    lookaround) is a :class:`UsageError`."""

    def __init__(self, patterns: Iterable[str]):
        # regular expressions keep their case: lower-casing would turn \D (not a digit) into \d
        self.patterns = [
            p.strip() if _REGEX_CHARS & set(p) else p.strip().lower()
            for p in patterns
            if p.strip() and not p.strip().startswith("#")
        ]
        self._regexes = []
        for pattern in self.patterns:
            if _REGEX_CHARS & set(pattern):
                try:
                    self._regexes.append((pattern, compile_pattern(pattern)))
                except PatternError as exc:
                    raise UsageError(f"bad domain pattern {pattern!r}: {exc}") from None

    def match(self, domain: str) -> str | None:
        """The first pattern matching ``domain`` (lower case, no ``@``), or None."""
        if not domain:
            return None
        for pattern in self.patterns:
            if _REGEX_CHARS & set(pattern):
                continue
            if pattern.startswith("."):
                if domain.endswith(pattern) or domain == pattern[1:]:
                    return pattern
            elif domain == pattern or domain.endswith("." + pattern):
                return pattern
        for pattern, regex in self._regexes:
            if regex.fullmatch(domain):
                return pattern
        return None


def read_list_file(path: str | Path) -> list[str]:
    """Non-empty, non-comment lines of a trust-list file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
