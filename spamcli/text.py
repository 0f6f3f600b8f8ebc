"""Text normalisation, tokenisation and feature hashing.

This module is the contract between training, scoring and the exported model format: every
function here is documented in ``docs/FORMAT.md`` so that another program can reproduce the
exact feature indices. Change it only together with ``FEATURES_VERSION``.

The way from a message to features:

1. :func:`normalise` - NFKC, drop zero-width characters, unescape HTML, keep link targets, strip
   tags, replace URLs, e-mail addresses, phone numbers, numbers and emoji by marker tokens such as
   ``⟨url⟩`` and ``⟨dom:example.com⟩``, collapse characters repeated 3+ times, lower-case.
2. :func:`tokenise` - markers, a few symbols and ``\\w+`` words; runs of scripts written without
   spaces (Chinese, Japanese, Thai, ...) become overlapping character bigrams.
3. :func:`features` - word unigrams ``w:``, word bigrams ``b:`` and (optionally) character n-grams
   ``c:`` of each word, as strings.
4. :func:`hash_feature` - CRC-32 of the UTF-8 feature string modulo ``n_features``.

Speed-ups: when the optional C extension ``spamcli._speedups`` is built (``setup.py``), it does
:func:`normalise`, :func:`tokenise`, :meth:`Vectoriser._columns` (steps 1-4 for one message) and
:meth:`Vectoriser.transform`, calling back into the Python passes of this module for the rare, hard
parts (NFKC of unusual characters, HTML entities, tags, e-mail, URL and phone markers). The
pure-Python functions ``_normalise_py``, ``_tokenise_py`` and ``Vectoriser._columns_py`` stay the
reference: the C code gives exactly their results (tests/test_speedups.py). ``SPAMCLI_PURE_PYTHON=1``
in the environment, or :func:`use_speedups`, selects the pure-Python code.
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass

import numpy as np

FEATURES_VERSION = 1

_CAPS_SAMPLE = 500  # ⟨caps⟩ is judged on the first 500 characters

# The tables the C extension shares: their only source (configure() below gives them to it). The
# character classes are inclusive code point ranges, beyond ASCII except for _SYMBOL_CHARS.
# The top-level domains a bare host may end in (lower-case; URLs match them ignoring case):
_TLDS = (
    "com", "net", "org", "info", "biz", "ru", "xyz", "top", "io", "co", "me", "ly", "ltd", "site", "online",
    "club", "shop", "store", "link", "click", "live", "app", "uk", "de", "fr", "in", "cn", "tk", "ml", "ga",
    "cf", "gq", "us", "eu", "es", "it", "nl", "br", "id", "th", "tr", "vn", "pl", "su", "cc", "tv", "ws",
    "pw", "gl", "gd",
)  # fmt: skip
# zero-width and formatting characters, dropped
_INVISIBLE_CHARS = ((0x00AD, 0x00AD), (0x200B, 0x200F), (0x2060, 0x2064), (0xFEFF, 0xFEFF))
# emoji and pictographs, each a ⟨emoji⟩ marker
_EMOJI_CHARS = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF))
# the combining marks of Indic, Arabic, Thai, Myanmar and Khmer script, which \w omits: word characters
_WORD_MARKS = (
    (0x0300, 0x036F), (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06ED),
    (0x0900, 0x0DFF), (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF),
)  # fmt: skip
# scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, CJK; Hangul
# syllables are spaced but short): their runs become character bigrams
_NOSPACE_CHARS = (
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
)  # fmt: skip
# symbols that are tokens of their own: $ € £ ¥ ₹ ₽ % ! ?
_SYMBOL_CHARS = tuple((ord(ch), ord(ch)) for ch in "$€£¥₹₽%!?")


def _class_body(ranges: tuple[tuple[int, int], ...]) -> str:
    """The inside of a regex character class matching the code point ranges ((0x61, 0x7A) -> "a-z")."""
    return "".join(re.escape(chr(lo)) + (f"-{re.escape(chr(hi))}" if hi > lo else "") for lo, hi in ranges)


_INVISIBLE_RE = re.compile(f"[{_class_body(_INVISIBLE_CHARS)}]")
_HREF_RE = re.compile(r"""<a\s[^>]*?href\s*=\s*["'\u201c\u201d]?([^"'\u201c\u201d\s>]+)[^>]*>""", re.I)
_TAG_RE = re.compile(r"</?[a-z][^>]{0,500}>", re.I)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@([\w-]+(?:\.[\w-]+)+)\b")
_TLD_ALTERNATIVES = "|".join(map(re.escape, _TLDS))
_URL_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\u201c\u201d]+"
    r"|(?<![\w:.@/-])(?:[a-z0-9-]+\.)+(?:" + _TLD_ALTERNATIVES + r")\b(?:/[^\s<>\"']*)?",
    re.I,
)
_PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d\s().-]{6,}\d(?![\w.])")
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_REPEAT_RE = re.compile(r"(.)\1{2,}")
_SPACE_RE = re.compile(r"\s+")
_EMOJI_RE = re.compile(f"[{_class_body(_EMOJI_CHARS)}]")
# Cheap necessary conditions, so that normalise() skips a pass that cannot match (same output, less
# work): any URL match contains one of these; any phone match contains this; a repeat starts here.
_URL_HINT_RE = re.compile(r"\.(?:" + _TLD_ALTERNATIVES + r")\b|https?://|www\.", re.I)
_PHONE_HINT_RE = re.compile(r"\d[\d\s().-]{6,}\d")
_DIGIT_RE = re.compile(r"\d")
_REPEAT_HINT_RE = re.compile(r"(.)\1\1")
_WORD = f"[\\w{_class_body(_WORD_MARKS)}]+"
_TOKEN_RE = re.compile(f"⟨[^⟩\\s]{{1,80}}⟩|[{_class_body(_SYMBOL_CHARS)}]|{_WORD}")
_NOSPACE_RE = re.compile(f"[{_class_body(_NOSPACE_CHARS)}]+")


def _domain(url: str) -> str:
    """The host of a URL without ``www.``, lower-cased (``http://www.X.example/a`` -> ``x.example``)."""
    host = re.sub(r"^(?:https?://)?", "", url, flags=re.I).split("/", 1)[0].split("?", 1)[0]
    host = host.split("@")[-1].split(":", 1)[0].lower().strip(".")
    return host[4:] if host.startswith("www.") else host


def _url_marker(match: re.Match[str]) -> str:
    return f" ⟨url⟩ ⟨dom:{_domain(match.group(0))}⟩ "


def _number_marker(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return f" ⟨num{min(digits, 5)}⟩ "


def _email_marker(match: re.Match[str]) -> str:
    return f" ⟨email⟩ ⟨dom:{match.group(1).lower()}⟩ "


def _normalise_py(text: str) -> str:
    """:func:`normalise` in pure Python: the reference of the C extension."""
    # Each step is skipped when a cheap test shows it cannot change the text (ASCII text is already
    # NFKC and has no invisible or emoji characters, no tag without "<", ...): the output is the
    # same as running every step, which tests/test_fast_paths.py checks on outputs known by hand.
    ascii_only = text.isascii()
    if not ascii_only:
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE_RE.sub("", text)
    text = html.unescape(text)
    if "<" in text:
        text = _HREF_RE.sub(r" \1 ", text)
        text = _TAG_RE.sub(" ", text)
    head = text[:_CAPS_SAMPLE]
    n_letters = sum(map(str.isalpha, head))
    shouting = n_letters >= 12 and sum(map(str.isupper, head)) / n_letters > 0.6
    if "@" in text:
        text = _EMAIL_RE.sub(_email_marker, text)
    if _URL_HINT_RE.search(text):
        text = _URL_RE.sub(_url_marker, text)
    if _DIGIT_RE.search(text):
        if _PHONE_HINT_RE.search(text):
            text = _PHONE_RE.sub(" ⟨phone⟩ ", text)
        text = _NUMBER_RE.sub(_number_marker, text)
    if not text.isascii():
        text = _EMOJI_RE.sub(" ⟨emoji⟩ ", text)
    repeat = _REPEAT_HINT_RE.search(text)
    if repeat:  # no repeat starts before the first one found: substitute from there on
        start = repeat.start()
        text = text[:start] + _REPEAT_RE.sub(r"\1\1", text[start:])
    text = text.lower()
    if shouting:
        text += " ⟨caps⟩"
    return _SPACE_RE.sub(" ", text).strip()


# The passes the C normalise() calls back, each only when its cheap test in C says it may match (the
# URL and phone passes check their exact hint again here, so the C test only needs to be a superset).
def _strip_tags(text: str) -> str:
    return _TAG_RE.sub(" ", _HREF_RE.sub(r" \1 ", text))


def _email_markers(text: str) -> str:
    return _EMAIL_RE.sub(_email_marker, text)


def _url_markers(text: str) -> str:
    return _URL_RE.sub(_url_marker, text) if _URL_HINT_RE.search(text) else text


def _phone_markers(text: str) -> str:
    return _PHONE_RE.sub(" ⟨phone⟩ ", text) if _PHONE_HINT_RE.search(text) else text


# Conjoining Hangul jamo: vowels and trailing consonants compose with the syllable before them.
_JAMO = (("\u1100", "\u11ff"), ("\ua960", "\ua97f"), ("\ud7b0", "\ud7ff"))


@functools.lru_cache(maxsize=1)
def _second_characters() -> frozenset[str]:
    """The second characters of the two-character canonical decompositions (all in planes 0-1): with
    the conjoining jamo, the only characters that can combine with the one before them in NFKC."""
    decompositions = map(unicodedata.decomposition, map(chr, range(0x20000)))
    return frozenset(chr(int(d.split()[1], 16)) for d in decompositions if d and d[0] != "<" and d.count(" ") == 1)


def _nfkc_char(code: int) -> tuple[str, int, int] | None:
    """For the C normalise(): the NFKC of one character with the combining classes of its first and
    last character, or None if one of its characters may combine with the character before it. A
    text whose characters all have one, in canonical order, has as NFKC their NFKCs one after another
    (see nfkc_state in _speedups.c)."""
    out = unicodedata.normalize("NFKC", chr(code))
    seconds = _second_characters()
    if any(ch in seconds or any(lo <= ch <= hi for lo, hi in _JAMO) for ch in out):
        return None
    return out, unicodedata.combining(out[0]), unicodedata.combining(out[-1])


# The C extension's callbacks and tables, set once here, at import, by the module that owns them:
# the passes above, html.unescape, unicodedata.normalize and the tables at the top. They are the
# same for every model (no FeatureSettings reach them): what depends on a model's settings is given
# to the C functions as arguments by its Vectoriser (see Vectoriser._c_args).
try:
    from . import _speedups
except ImportError:  # built without a C compiler: the pure-Python functions do the same work
    _speedups = None
else:
    _speedups.configure(
        nfkc=unicodedata.normalize,
        nfkc_char=_nfkc_char,
        unescape=html.unescape,
        tags=_strip_tags,
        emails=_email_markers,
        urls=_url_markers,
        phones=_phone_markers,
        tlds=_TLDS,
        invisible=_INVISIBLE_CHARS,
        emoji=_EMOJI_CHARS,
        word_marks=_WORD_MARKS,
        nospace=_NOSPACE_CHARS,
        symbols=_SYMBOL_CHARS,
    )

# The C extension while it is in use (see use_speedups), else None: the default backend of the
# module-level normalise() and tokenise(), of the pure functions of spamcli.model, and of each
# Vectoriser when it is created (a Vectoriser keeps the backend it was created with).
_C = None


def use_speedups(enabled: bool = True) -> bool:
    """Use the C extension (if it is built) for :func:`normalise`, :func:`tokenise` and each
    :class:`Vectoriser` created from now on, or the pure-Python code; returns whether C is in use.
    The default at import: C unless ``SPAMCLI_PURE_PYTHON`` is set (to anything but ``0``)."""
    global _C
    _C = _speedups if enabled else None
    return _C is not None


use_speedups(os.environ.get("SPAMCLI_PURE_PYTHON", "") in ("", "0"))


def normalise(text: str) -> str:
    """Normalise a message to stable, lower-case text with marker tokens (see module docstring)."""
    c = _C
    return _normalise_py(text) if c is None else c.normalise(text)


def message_hash(text: str) -> str:
    """sha256 (hex) of the normalised text: the same message in other spacing or case is one message.
    Identifies messages learned with ``spamcli learn``."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def tokenise(normalised: str) -> list[str]:
    """Split normalised text into tokens; no-space scripts become character bigrams."""
    c = _C
    return _tokenise_py(normalised) if c is None else c.tokenise(normalised)


def _tokenise_py(normalised: str) -> list[str]:
    """:func:`tokenise` in pure Python: the reference of the C extension."""
    if not _NOSPACE_RE.search(normalised):  # the common case: no token needs splitting
        return _TOKEN_RE.findall(normalised)
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(normalised):
        if token[0] == "⟨" or not _NOSPACE_RE.search(token):
            tokens.append(token)
            continue
        pos = 0
        for run in _NOSPACE_RE.finditer(token):
            if run.start() > pos:
                tokens.append(token[pos : run.start()])
            chars = run.group(0)
            if len(chars) == 1:
                tokens.append(chars)
            else:
                tokens.extend(chars[i : i + 2] for i in range(len(chars) - 1))
            pos = run.end()
        if pos < len(token):
            tokens.append(token[pos:])
    return tokens


@dataclass(frozen=True)
class FeatureSettings:
    """How a text becomes hashed features; stored in every model's manifest."""

    n_features: int = 2**20
    word_ngrams: int = 2
    char_ngrams: tuple[int, int] | None = (2, 4)
    binary: bool = True
    max_chars: int = 10_000
    version: int = FEATURES_VERSION

    def to_dict(self) -> dict:
        data = asdict(self)
        data["char_ngrams"] = list(self.char_ngrams) if self.char_ngrams else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        """Settings from a manifest's ``features``; ValueError unless every field has its type and
        a sane range (:data:`SETTING_RANGES`): ``char_ngrams: [1, 1e9]`` would hash each word a
        billion times, ``n_features: 2**40`` allocate terabytes."""
        if not isinstance(data, dict):
            raise ValueError(f"feature settings are not an object: {data!r}")
        char = data.get("char_ngrams")
        lo = hi = 0
        if char is not None and char != []:
            if not isinstance(char, (list, tuple)) or len(char) != 2:
                raise ValueError(f"feature setting char_ngrams is not a pair of sizes: {char!r}")
            lo, hi = (_setting(f"char_ngrams[{i}]", v, *SETTING_RANGES["char_ngrams"]) for i, v in enumerate(char))
            if lo > hi:
                raise ValueError(f"feature setting char_ngrams is reversed: {char!r}")
        if not isinstance(data["binary"], bool):
            raise ValueError(f"feature setting binary is not true or false: {data['binary']!r}")
        ints = {key: _setting(key, data[key], *SETTING_RANGES[key]) for key in _INT_SETTINGS}
        return cls(
            **ints,
            char_ngrams=(lo, hi) if char else None,
            binary=data["binary"],
            version=_setting("version", data["version"], 1, FEATURES_VERSION),
        )


_INT_SETTINGS = ("n_features", "word_ngrams", "max_chars")
# The ranges FeatureSettings.from_dict accepts (inclusive); far beyond anything spamcli trains.
SETTING_RANGES = {
    "n_features": (1, 2**24),
    "word_ngrams": (1, 8),
    "char_ngrams": (1, 16),
    "max_chars": (1, 2**31 - 1),
}


def _setting(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"feature setting {key} is not an integer: {value!r}")
    if not low <= value <= high:
        raise ValueError(f"feature setting {key} is out of range ({low} to {high}): {value!r}")
    return value


def features(text: str, settings: FeatureSettings) -> list[str]:
    """The feature strings of one raw message, in order, with repeats."""
    tokens = tokenise(normalise(text[: settings.max_chars]))
    feats = ["w:" + t for t in tokens]
    if settings.word_ngrams >= 2:
        feats.extend(f"b:{a} {b}" for a, b in zip(tokens, tokens[1:]))
    if settings.char_ngrams:
        lo, hi = settings.char_ngrams
        for token in tokens:
            if token[0] == "⟨" or len(token) < 2:
                continue
            padded = f" {token} "
            for n in range(lo, hi + 1):
                feats.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return feats


def hash_feature(feature: str, n_features: int) -> int:
    """Column index of a feature string: CRC-32 (IEEE, as zlib) of its UTF-8 bytes mod n_features."""
    return zlib.crc32(feature.encode("utf-8")) % n_features


@dataclass
class SparseRows:
    """A CSR matrix as three numpy arrays, without importing scipy (kept off the scoring path)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_features: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def to_scipy(self):
        from scipy.sparse import csr_matrix

        return csr_matrix((self.data, self.indices, self.indptr), shape=(self.n_rows, self.n_features))


class Vectoriser:
    """Turns texts into hashed feature rows (counts, or 1/0 presence when ``binary``).

    Keeps bounded caches (feature string -> column, token -> its columns, short message -> its
    columns), since the same tokens and messages recur in a stream. Each cache is emptied when it
    reaches its limit, which keeps memory flat on endless input (~150 MB of caches at most).
    With the C extension only the message cache is used by :meth:`transform` (it holds packed rows
    there; hashing in C is faster than the feature and token caches, which serve
    :meth:`explain_tokens` and the pure-Python path).
    """

    _CACHE_LIMIT = 200_000
    _TOKEN_CACHE_LIMIT = 100_000
    _ROW_CACHE_LIMIT = 20_000
    _ROW_CACHE_MAX_CHARS = 1_000

    def __init__(self, settings: FeatureSettings):
        self.settings = settings
        self._cache: dict[str, int] = {}
        self._token_cache: dict[str, list[int]] = {}
        # text -> (columns, values), or with the C extension its packed row (bytes, see _speedups.c)
        self._row_cache: dict[str, tuple[list[int], list[float] | None] | bytes] = {}
        # the arguments of the C columns() after the normalised text, when the C extension is in use
        # and supports the settings (int32 columns; character n-grams, if any, of sizes 1 and up)
        char = settings.char_ngrams
        self._c = _C  # the backend of this vectoriser, for its whole life (see use_speedups)
        self._c_args: tuple | None = None
        if (
            self._c is not None
            and 1 <= settings.n_features <= 2**31
            and settings.max_chars >= 0  # Python's text[:-3] cuts from the end; the C code does not
            and (not char or 1 <= char[0] <= char[1] <= 100_000)
        ):
            lo, hi = char or (0, 0)
            self._c_args = (settings.n_features, settings.word_ngrams, lo, hi, settings.binary)

    def _index(self, feature: str) -> int:
        index = self._cache.get(feature)
        if index is None:
            index = hash_feature(feature, self.settings.n_features)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[feature] = index
        return index

    def _token_columns(self, token: str) -> list[int]:
        """Columns of a token's unigram and (if enabled) character n-grams, cached per token."""
        cols = self._token_cache.get(token)
        if cols is None:
            n = self.settings.n_features
            cols = [hash_feature("w:" + token, n)]
            char = self.settings.char_ngrams
            if char and token[0] != "⟨" and len(token) >= 2:
                # n-grams recur across tokens (also across new ones): look them up in the feature
                # cache, inlined here because this is the hottest loop of the vectoriser
                cache, crc32 = self._cache, zlib.crc32
                padded = f" {token} "
                for size in range(char[0], char[1] + 1):
                    for i in range(len(padded) - size + 1):
                        gram = "c:" + padded[i : i + size]
                        col = cache.get(gram)
                        if col is None:
                            col = cache[gram] = crc32(gram.encode("utf-8")) % n
                        cols.append(col)
                if len(cache) >= self._CACHE_LIMIT:
                    cache.clear()
            if len(self._token_cache) >= self._TOKEN_CACHE_LIMIT:
                self._token_cache.clear()
            self._token_cache[token] = cols
        return cols

    def _columns(self, text: str) -> tuple[list[int], list[float] | None]:
        """One text's columns and their values (None: all 1.0, the ``binary`` case), uncached."""
        args = self._c_args
        if args is None:
            return self._columns_py(text)
        return self._c.columns(self._c.normalise(text[: self.settings.max_chars]), *args)

    def _columns_py(self, text: str) -> tuple[list[int], list[float] | None]:
        """:meth:`_columns` in pure Python (with the feature and token caches): the reference."""
        return self._token_list_columns(_tokenise_py(_normalise_py(text[: self.settings.max_chars])))

    def _token_list_columns(self, tokens: list[str]) -> tuple[list[int], list[float] | None]:
        """The columns and values of a message's tokens (see :meth:`_columns`), in pure Python."""
        pairs = zip(tokens, tokens[1:]) if self.settings.word_ngrams >= 2 else ()
        if self.settings.binary:  # presence only: each distinct token or pair once
            cols: list[int] = []
            for token in dict.fromkeys(tokens):
                cols += self._token_columns(token)
            cols += [self._index(f"b:{a} {b}") for a, b in dict.fromkeys(pairs)]
            return list(dict.fromkeys(cols)), None
        counts: dict[int, float] = {}
        for token in tokens:
            for col in self._token_columns(token):
                counts[col] = counts.get(col, 0.0) + 1.0
        for a, b in pairs:
            col = self._index(f"b:{a} {b}")
            counts[col] = counts.get(col, 0.0) + 1.0
        return list(counts), list(counts.values())

    def _cached_columns(self, text: str) -> tuple[list[int], list[float] | None]:
        """:meth:`_columns`, remembered for short texts: streams repeat whole messages (floods,
        "ok", "thanks"). Bounded: the cache is emptied when it reaches ``_ROW_CACHE_LIMIT``.
        With the C extension, the row cache holds :meth:`transform`'s packed rows and a single row
        is computed afresh (a few microseconds)."""
        if self._c_args is not None:
            return self._columns(text)
        found = self._row_cache.get(text)
        if found is None:
            found = self._columns(text)
            if len(text) <= self._ROW_CACHE_MAX_CHARS:
                if len(self._row_cache) >= self._ROW_CACHE_LIMIT:
                    self._row_cache.clear()
                self._row_cache[text] = found
        return found

    def row(self, text: str) -> dict[int, float]:
        """One text's features as ``{column: value}``; the same columns as hashing
        :func:`features` one by one, computed with per-token caches."""
        cols, values = self._cached_columns(text)
        return dict.fromkeys(cols, 1.0) if values is None else dict(zip(cols, values))

    def transform(self, texts: list[str]) -> SparseRows:
        if self._c_args is not None:
            return self._transform_c(texts)
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        for text in texts:
            cols, values = self._cached_columns(text)
            indices += cols
            data += [1.0] * len(cols) if values is None else values
            indptr.append(len(indices))
        return SparseRows(
            indptr=np.asarray(indptr, dtype=np.int64),
            indices=np.asarray(indices, dtype=np.int32),
            data=np.asarray(data, dtype=np.float32),
            n_features=self.settings.n_features,
        )

    def _transform_c(self, texts: list[str]) -> SparseRows:
        """:meth:`transform` in C: the same rows, with the row cache holding packed rows (bytes)."""
        indptr, indices, data = self._c.rows(
            texts,
            self.settings.max_chars,
            *self._c_args,
            self._row_cache,
            self._ROW_CACHE_LIMIT,
            self._ROW_CACHE_MAX_CHARS,
        )
        cols = np.frombuffer(indices, dtype=np.int32)
        return SparseRows(
            indptr=np.frombuffer(indptr, dtype=np.int64),
            indices=cols,
            data=np.ones(len(cols), dtype=np.float32) if data is None else np.frombuffer(data, dtype=np.float32),
            n_features=self.settings.n_features,
        )

    def explain_tokens(self, text: str) -> dict[int, str]:
        """Column -> the readable token it came from: a word (for its unigram and its character
        n-grams) or a word pair; a column shared by several tokens goes to the first."""
        text = text[: self.settings.max_chars]
        c = self._c
        tokens = _tokenise_py(_normalise_py(text)) if c is None else c.tokenise(c.normalise(text))
        names: dict[int, str] = {}
        for token in tokens:
            for col in self._token_columns(token):
                names.setdefault(col, token)
        if self.settings.word_ngrams >= 2:
            for a, b in zip(tokens, tokens[1:]):
                names.setdefault(self._index(f"b:{a} {b}"), f"{a} {b}")
        return names
