"""The C extension ``spamcli._speedups`` gives exactly what the pure-Python reference gives.

Every check compares the C result with the reference functions of ``spamcli/text.py``
(``_normalise_py``, ``_tokenise_py``, ``Vectoriser._token_list_columns`` and the pure-Python
``Vectoriser.transform``) on the shared datasets (when present), hand-written hard cases, every code
point, and a seeded random fuzz. Skipped when the extension is not built (no compiler at install).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from helpers import new_module_object, shared_dataset_texts

from spamcli import text as T
from spamcli.text import FeatureSettings, Vectoriser

try:
    from spamcli import _speedups
except ImportError:
    _speedups = None

pytestmark = pytest.mark.skipif(
    _speedups is None, reason="the C extension spamcli._speedups is not built (no C compiler at install time)"
)

# The settings of the project (defaults, the tests, the shipped model) and a few odd ones: a prime
# modulus, 1-grams, long n-grams, a short max_chars.
SETTINGS = [
    FeatureSettings(),
    FeatureSettings(char_ngrams=None),
    FeatureSettings(binary=False),
    FeatureSettings(word_ngrams=1),
    FeatureSettings(n_features=2**12, char_ngrams=None, binary=False),
    FeatureSettings(n_features=2**16, word_ngrams=1, char_ngrams=(3, 5), binary=False),
    FeatureSettings(n_features=2**10, word_ngrams=1, char_ngrams=(2, 3)),
    FeatureSettings(n_features=1_000_003, char_ngrams=(1, 6), max_chars=300),
]
PROJECT_SETTINGS = SETTINGS[:4]


def _c_args(settings: FeatureSettings) -> tuple:
    lo, hi = settings.char_ngrams or (0, 0)
    return settings.n_features, settings.word_ngrams, lo, hi, settings.binary


def check_texts(texts, settings_list=SETTINGS) -> None:
    """normalise, tokenise and the columns of each text: C == Python, for every settings."""
    vectorisers = [Vectoriser(s) for s in settings_list]
    for text in texts:
        done: dict[int, tuple[str, list[str]]] = {}  # length of the cut text -> normalised, tokens
        for settings, vec in zip(settings_list, vectorisers):
            cut = text[: settings.max_chars]
            if len(cut) not in done:
                expected = T._normalise_py(cut)
                got = _speedups.normalise(cut)
                assert got == expected, f"normalise({cut[:300]!r})"
                tokens = T._tokenise_py(expected)
                assert _speedups.tokenise(expected) == tokens, f"tokenise({expected[:300]!r})"
                done[len(cut)] = expected, tokens
            norm, tokens = done[len(cut)]
            expected_cols = vec._token_list_columns(tokens)
            got_cols = _speedups.columns(norm, *_c_args(settings))
            assert got_cols == expected_cols, f"columns({norm[:300]!r}, {settings})"


@pytest.fixture
def with_speedups():
    """The C path switched on for Vectorisers made in the test (whatever SPAMCLI_PURE_PYTHON says)."""
    before = T._C is not None
    assert T.use_speedups(True)
    yield
    T.use_speedups(before)


# ---- (a) every text of the shared datasets --------------------------------------------------------


def test_shared_dataset_texts_normalise_tokenise_and_hash_the_same(datasets_dir):
    texts = shared_dataset_texts(datasets_dir)
    if not texts:
        pytest.skip(f"no registered dataset in {datasets_dir}")
    # every text with the default settings and without character n-grams, a sample with the other
    # settings (the pure-Python reference takes ~20 s for the ~38,000 texts of shared/datasets)
    check_texts(texts, SETTINGS[:2])
    check_texts(random.Random(3).sample(texts, min(6000, len(texts))), SETTINGS[2:])


def test_shared_dataset_transform_equals_the_python_transform(datasets_dir, with_speedups):
    texts = shared_dataset_texts(datasets_dir)
    if not texts:
        pytest.skip(f"no registered dataset in {datasets_dir}")
    sample = random.Random(4).sample(texts, min(3000, len(texts)))
    _check_transform(sample + sample[:500], PROJECT_SETTINGS)


# ---- (b) hand-written hard cases -------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "     ",
    "\n\n\n",
    "\t \r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000",
    "⟨⟩",
    "⟨a⟩",
    "⟨" + "a" * 79 + "⟩",
    "⟨" + "a" * 80 + "⟩",
    "⟨" + "a" * 81 + "⟩",
    "⟨" + "é" * 80 + "⟩ and ⟨" + "é" * 81 + "⟩",
    "x ⟨unclosed marker",
    "⟨⟨a⟩⟩ ⟨a⟨b⟩ ⟨a⟩b⟩",
    "⟨a b⟩ ⟨a\tb⟩ ⟨a\u3000b⟩",
    "⟨num3⟩ ⟨url⟩ ⟨dom:example.com⟩ ⟨emoji⟩ ⟨caps⟩ ⟨phone⟩ ⟨email⟩",
    "so nice 😀😀😀 🎉 ☎ ⭐ ❤️ 👍🏽 👨‍👩‍👧 🇫🇷 1️⃣ #️⃣",
    "ฟรีเงินด่วน 100 บาท คลิก www.x.th",
    "免费领取iPhone15，点击链接 http://x.cn/a?b=1",
    "こんにちは、カタカナとひらがな ｶﾀｶﾅ ２０２４年",
    "ឥតគិតថ្លៃ khmer ១២៣ mixed",
    "မြန်မာ ၁၂၃ text",
    "नमस्ते, मुफ्त ऑफर क़ ज़ फ़ २०२४",
    "مرحبا بك في العرض الخاص ١٢٣ مَرْحَبًا",
    "فارسی ۱۲۳۴",
    "İSTANBUL İstanbul ıi",
    "ΣΑΣ ΟΔΥΣΣΕΥΣ Σ σ ς ΑΣ. ΑΣ1 ΑΣa",
    "ﬁnance ﬂow ﬀ ß ẞ",
    "１２３ ＡＢＣ ｆｕｌｌ ",
    "x² y³ ¹ ½ ① ⑴ ⒈ ㉑",
    "١٢٣ ٤٥٦٧٨٩٠ arabic digits",
    "3.14,15 1. 1.. 1,2,3 .5 1.2.3.4.5.6 1,,2 1.,2",
    "0" * 40 + " " + "1234567890" * 5,
    "aaa\n\n\nbbb",
    "ÄÄÄÄ ääää aaaa AAAA !!!!!! ?????? .... ----",
    "\U0001d400\U0001d401 \U0001d41a\U0001d41b 𝐅𝐑𝐄𝐄 𝓯𝓻𝓮𝓮 \U00020000\U0002a700",
    "zero\u200bwidth\u200c\u200djoiner\u2060\ufeff\u00adsoft",
    "&amp;&lt;b&gt; &#64; &#x41; &nbsp; &copy; &bogus; & amp",
    "<a href=\"http://x.ru\">click</a> <b>bold</b> <A HREF='http://Y.example/p'>",
    "<p>para</p><br/><img src=x> < not a tag > <3",
    "Visit http://www.Spam.example/x?y=1 now, or https://a.b/c or www.cheap.example or spam.xyz.",
    "WWW.CAPS.COM, ww.x.com, wwww.x.com, x.co.uk, x.company, x.com_, x.com1, ex.CoM",
    "mail me: Bob.Smith+x@Mail.Example.com, a@b, @@, x@y.z, ä@ö.de",
    "call +44 (0) 7911 123-456 or 06 12 34 56 78 or 555-1234 or 1234567 or 12345678",
    "tel:0612345678, +1-800-FLOWERS, (555) 555 5555.",
    "x" * 10_000,
    ("word " * 2500)[:10_000],
    "snake_case_words and 42_answers and __init__ and a_1_b",
    "SEND YOUR BANK DETAILS TO CLAIM THE PRIZE NOW",
    "MOSTLY CAPS but some lower",
    "ǅemal ǈ ǋ Ⅻ ⅰ",
    "K Å ſ µ",
    "e\u0301 e\u0308\u0301 a\u0327\u0301 \u0301start",
    "가각 \u1100\u1161\u11a8 ㄱㅏ",
    "Ω Å K ≠ ≮ ⁉ ‼ …",
    "$100 €50 £3 ¥7 ₹9 ₽2 50% wow!? ¿qué? ¡sí!",
    "\ud800 lone \udfff surrogates",
]


def test_nasty_cases_normalise_tokenise_and_hash_the_same():
    check_texts([t for t in NASTY if not _has_surrogate(t)])


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def test_lone_surrogates_normalise_the_same_and_fail_the_same_when_hashed():
    vec = Vectoriser(FeatureSettings())
    for text in ["\ud800 lone", "x ⟨a\udfffb⟩ y", "⟨\ud800⟩", "\ud83d\ude00 pair"]:
        norm = T._normalise_py(text)
        assert _speedups.normalise(text) == norm
        assert _speedups.tokenise(norm) == T._tokenise_py(norm)
        try:
            expected = vec._token_list_columns(T._tokenise_py(norm))
        except UnicodeEncodeError as exc:
            with pytest.raises(UnicodeEncodeError) as info:
                _speedups.columns(norm, *_c_args(vec.settings))
            assert str(info.value) == str(exc)
        else:
            assert _speedups.columns(norm, *_c_args(vec.settings)) == expected


# ---- every code point ---------------------------------------------------------------------------


def test_every_code_point_normalises_and_hashes_the_same():
    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = []
    for start in range(0, len(codes), 48):
        chunk = "".join(map(chr, codes[start : start + 48]))
        texts.append(chunk)
        texts.append(" ".join(chunk) + " AB")
    check_texts(texts, [FeatureSettings()])


def test_nfkc_char_by_char_rule_covers_every_canonical_composition():
    """The C normalise() takes a text's NFKC character by character unless a character can combine
    with the one before it: the second character of a two-character canonical decomposition (all
    below U+20000, where _second_characters looks), or a conjoining jamo."""
    seconds = T._second_characters()
    for code in range(0x110000):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and decomposition[0] != "<" and " " in decomposition:
            parts = decomposition.split()
            if len(parts) == 2:
                assert code < 0x20000
                assert chr(int(parts[1], 16)) in seconds
    for lead in range(0x1100, 0x1113):
        for vowel in range(0x1161, 0x1176):
            syllable = unicodedata.normalize("NFC", chr(lead) + chr(vowel))
            assert len(syllable) == 1 and T._nfkc_char(vowel) is None
            assert unicodedata.normalize("NFC", syllable + "\u11a8") != syllable + "\u11a8"
    assert T._nfkc_char(0x11A8) is None
    assert not any(ch.isascii() for ch in seconds)
    assert T._nfkc_char(ord("ﬁ")) == ("fi", 0, 0)
    assert T._nfkc_char(0x0301) is None


# ---- (c) seeded random fuzz ------------------------------------------------------------------------

ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    + list("0123456789") * 3
    + list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000") * 2
    + list("٠١٢٣۴۵५६๓๔០១၁１２²³①")
    + list("⟨⟩") * 4
    + list(".,:;/@-+()<>&#\"'!?$€£¥₹₽%_=*~^|[]{}…‼")
    + ["😀", "🎉", "❤", "\ufe0f", "\u20e3", "☎", "⭐", "🇫", "🇷", "\U0001d400", "\U00020000"]
    + list("ฟรีเงินด่วนคลิก")
    + list("免费领取点击こんにちはカタカナ가각")
    + ["\u1100", "\u1161", "\u11a8", "ㄱ"]
    + ["\u0301", "\u0308", "\u0327", "\u093c", "\u094d", "\u0e31", "\u064b", "\u0670", "\u200b", "\u200d", "\u00ad"]
    + list("नमस्तेमुफ्तكज़مرحبابكឥតគិតមြန်")
    + list("ΣΑΒΓΔσςİıßẞﬁﬂKÅſµǅⅫÄÖÜäöüÉé")
)
FRAGMENTS = [
    "http://",
    "https://x.example/a?b=1",
    "www.",
    "www.x.com",
    ".com",
    ".co",
    ".ru ",
    ".info",
    "x.io/",
    "@",
    "a@b.example",
    "&amp;",
    "&lt;b&gt;",
    "&#64;",
    "&",
    "<a href='http://x.ru'>",
    "<b>",
    "</p>",
    "<",
    ">",
    "⟨num1⟩",
    "⟨dom:x.y⟩",
    "⟨a",
    "+44 7911 123456",
    "06 12 34 56 78",
    "(555) 555-5555",
    "1.5",
    "3,14",
    "1.",
    "aaa",
    "!!!!",
    "ΣΑΣ",
    "İSTANBUL",
    "FREE MONEY NOW",
    "  ",
    "\n\n\n",
    "_x_",
]


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 14)):
        roll = rng.random()
        if roll < 0.25:
            parts.append(rng.choice(FRAGMENTS))
        elif roll < 0.35:
            parts.append(rng.choice(ALPHABET) * rng.randint(2, 6))
        else:
            parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8))))
    return "".join(parts)


def test_random_fuzz_normalises_tokenises_and_hashes_the_same():
    rng = random.Random(20240501)
    texts = [_random_text(rng) for _ in range(4000)]
    check_texts(texts)


def test_random_markers_tokenise_the_same():
    rng = random.Random(7)
    pieces = ["⟨", "⟩", "a", "é", "1", " ", "\t", "免", "ก", "_", "-", "\u0301"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 200))) for _ in range(3000)]
    texts += ["⟨" + "x" * n + "⟩" + "y" * m for n in range(0, 90) for m in (0, 1)]
    for text in texts:
        assert _speedups.tokenise(text) == T._tokenise_py(text), text
        for settings in PROJECT_SETTINGS:
            expected = Vectoriser(settings)._token_list_columns(T._tokenise_py(text))
            assert _speedups.columns(text, *_c_args(settings)) == expected, text


# ---- the tables of spamcli/text.py, given to the C code by configure() ----------------------------


def _configured(**changes):
    """A new module object of the extension, configured as spamcli.text configures its own, with
    ``changes`` to the arguments."""
    module = new_module_object("spamcli._speedups")
    arguments = dict(
        nfkc=unicodedata.normalize,
        nfkc_char=T._nfkc_char,
        unescape=T.html.unescape,
        tags=T._strip_tags,
        emails=T._email_markers,
        urls=T._url_markers,
        phones=T._phone_markers,
        tlds=T._TLDS,
        invisible=T._INVISIBLE_CHARS,
        emoji=T._EMOJI_CHARS,
        word_marks=T._WORD_MARKS,
        nospace=T._NOSPACE_CHARS,
        symbols=T._SYMBOL_CHARS,
    )
    module.configure(**{**arguments, **changes})
    return module


def test_every_tld_of_the_table_makes_a_bare_host_a_url():
    assert len(T._TLDS) == 50 and {"com", "ru", "xyz", "gd"} <= set(T._TLDS)
    for tld in T._TLDS:
        host = f"cheap-pills.{tld}"
        assert _speedups.normalise(f"see {host} now") == f"see ⟨url⟩ ⟨dom:{host}⟩ now"
        assert _speedups.normalise(f"see Cheap-Pills.{tld.upper()}/x now") == f"see ⟨url⟩ ⟨dom:{host}⟩ now"
        assert _speedups.normalise(f"see cheap-pills.{tld}q now") == f"see cheap-pills.{tld}q now"
    assert _speedups.normalise("see cheap-pills.zz now") == "see cheap-pills.zz now"


def test_c_calls_the_url_pass_exactly_on_the_chunks_with_a_tld_of_the_table():
    """The C side's hint must say yes for each TLD of spamcli.text's table and for no other name."""
    chunks = []
    module = _configured(urls=lambda chunk: chunks.append(chunk) or chunk)
    hosts = [f"a.{tld}" for tld in T._TLDS]
    near_misses = ["a.zz", "a.comx", "a.co_", "a.c0m", "a.dev", "a.ie", "a.com1", "a.", ".", "a.c"]
    module.normalise(" ".join(near_misses + hosts + near_misses))
    assert chunks == hosts
    chunks.clear()
    other = _configured(urls=lambda chunk: chunks.append(chunk) or chunk, tlds=("zz", "x-y"))
    other.normalise("a.com b.zz c.zzz d.x-y e.ru")
    assert chunks == ["b.zz", "d.x-y"]


def test_c_takes_its_character_classes_from_configure():
    assert _speedups.normalise("a \u263a b\u200bc") == "a ⟨emoji⟩ bc"
    assert _speedups.tokenise("a#b ก่า $5") == ["a", "b", "ก่", "่า", "$", "5"]
    assert _speedups.tokenise("q\u0301x") == ["q\u0301x"]
    other = _configured(
        emoji=((0x263B, 0x263B),),
        invisible=(),
        symbols=((ord("#"), ord("#")),),
        nospace=(),
        word_marks=((0x1F600, 0x1F64F),),
    )
    assert other.normalise("a \u263a b\u200bc \u263b") == "a \u263a b\u200bc ⟨emoji⟩"
    tokens = ["a", "#", "b", "ก", "า", "5", "q", "x", "a\U0001f600b"]  # Thai and U+0301 are no word marks here
    assert other.tokenise("a#b ก่า $5 q\u0301x a\U0001f600b") == tokens
    assert _speedups.tokenise("a\U0001f600b") == ["a", "b"]


def test_configure_refuses_bad_tables_and_a_second_call():
    with pytest.raises(RuntimeError, match="already called"):
        _speedups.configure(
            **{name: None for name in ("nfkc", "nfkc_char", "unescape", "tags", "emails")},
            urls=None,
            phones=None,
            tlds=(),
            invisible=(),
            emoji=(),
            word_marks=(),
            nospace=(),
            symbols=(),
        )
    for changes, message in (
        ({"tlds": ("com", "COM")}, "'COM' is not a lower-case ASCII domain label"),
        ({"tlds": ("c.m",)}, "'c.m' is not a lower-case"),
        ({"tlds": ("",)}, "'' is not a lower-case"),
        ({"tlds": "com"}, None),  # a str is a sequence of one-letter labels: accepted
        ({"emoji": ((0x41, 0x5A),)}, "emoji: \\(65, 90\\) is not a range \\(lo, hi\\) of code points from 128"),
        ({"nospace": ((0x3000, 0x2FFF),)}, "nospace: "),
        ({"symbols": ((0, 0x110000),)}, "symbols: "),
        ({"invisible": (0x200B,)}, "invisible: 8203 is not a range"),
        ({"word_marks": 5}, "sequence of \\(lo, hi\\) pairs"),
        ({"urls": "not callable"}, "urls must be callable"),
    ):
        if message is None:
            _configured(**changes)
            continue
        with pytest.raises((ValueError, TypeError), match=message):
            _configured(**changes)
    fresh = new_module_object("spamcli._speedups")
    for call in (
        lambda: fresh.normalise("x"),
        lambda: fresh.tokenise("x"),
        lambda: fresh.columns("x", 8, 1, 0, 0, True),
    ):
        with pytest.raises(RuntimeError, match="configure\\(\\) has not been called"):
            call()


def test_module_objects_keep_their_own_state():
    calls = []
    other = _configured(phones=lambda text: calls.append(text) or "PHONE")
    assert other.normalise("call 0612345678") == "phone"
    assert _speedups.normalise("call 0612345678") == "call ⟨phone⟩"
    assert calls == ["call 0612345678"]
    assert other is not _speedups and other.normalise("ÄÄÄÄ ﬁ") == _speedups.normalise("ÄÄÄÄ ﬁ") == "ää fi"


# ---- the Vectoriser ------------------------------------------------------------------------------


def _transform_py(settings: FeatureSettings, texts: list[str]):
    before = T._C is not None
    T.use_speedups(False)
    try:
        vec = Vectoriser(settings)
        assert vec._c_args is None
        return vec.transform(texts)
    finally:
        T.use_speedups(before)


def _check_transform(texts: list[str], settings_list) -> None:
    for settings in settings_list:
        expected = _transform_py(settings, texts)
        vec = Vectoriser(settings)
        assert vec._c_args is not None
        vec._ROW_CACHE_LIMIT = 50  # the packed row cache empties itself during the run
        for _ in range(2):  # the second time partly from the row cache
            got = vec.transform(texts)
            for name in ("indptr", "indices", "data"):
                want, have = getattr(expected, name), getattr(got, name)
                assert have.dtype == want.dtype, name
                np.testing.assert_array_equal(have, want, err_msg=f"{name} with {settings}")
                assert have.flags.writeable
            assert got.n_features == expected.n_features
            assert len(vec._row_cache) <= 50


def test_transform_rows_and_caches_equal_the_python_vectoriser(with_speedups):
    rng = random.Random(11)
    texts = NASTY[:-1] + [_random_text(rng) for _ in range(600)]
    texts += texts[::7] + ["ok", "ok", "thanks", ""]  # repeats: answered from the row cache
    _check_transform(texts, SETTINGS)
    assert Vectoriser(FeatureSettings()).transform([]).indptr.tolist() == [0]


def test_vectoriser_row_and_columns_use_c_and_equal_python(with_speedups):
    rng = random.Random(12)
    for settings in SETTINGS:
        vec = Vectoriser(settings)
        for text in NASTY[:-1] + [_random_text(rng) for _ in range(100)]:
            assert vec._columns(text) == vec._columns_py(text), text
            cols, values = vec._columns_py(text)
            assert vec.row(text) == (dict.fromkeys(cols, 1.0) if values is None else dict(zip(cols, values)))


def test_unsupported_settings_fall_back_to_python(with_speedups):
    assert Vectoriser(FeatureSettings(char_ngrams=(0, 3)))._c_args is None
    assert Vectoriser(FeatureSettings(n_features=2**32))._c_args is None
    for odd in (FeatureSettings(max_chars=-3), FeatureSettings(char_ngrams=(2, 100_001))):
        vec = Vectoriser(odd)
        assert vec._c_args is None
        rows = vec.transform(["claim your prize at http://x.example now"])
        T.use_speedups(False)
        reference = Vectoriser(odd).transform(["claim your prize at http://x.example now"])
        T.use_speedups(True)
        assert rows.indices.tolist() == reference.indices.tolist()
    with pytest.raises(ValueError):
        _speedups.columns("x", 0, 2, 2, 4, True)
    with pytest.raises(TypeError):
        _speedups.normalise(b"bytes")


def test_pure_python_environment_variable_selects_the_python_code():
    code = (
        "from spamcli import text as T; "
        "print(T._C is None, T.Vectoriser(T.FeatureSettings())._c_args is None, T._speedups is not None)"
    )
    for value, expected in (("1", "True True True"), ("0", "False False True"), ("", "False False True")):
        env = {**os.environ, "SPAMCLI_PURE_PYTHON": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split(), value


# ---- scoring: the C scorer of kind "nblr" -------------------------------------------------------------


def test_c_nblr_scores_equal_the_numpy_decision_function_bit_for_bit(with_speedups):
    from spamcli.bundle import load_bundle

    ctx = load_bundle(None).context("content")  # the shipped model: every language model in it
    rng = random.Random(7)
    texts = [_random_text(rng) for _ in range(300)] + list(NASTY) + ["", "hello", "WIN a FREE iPhone now!!!"]
    rows = Vectoriser(ctx.settings).transform(texts)
    for name, model in ctx.models.items():
        assert model.kind == "nblr"
        fast = model.decision_function(rows)
        T.use_speedups(False)
        reference = model.decision_function(rows)
        T.use_speedups(True)
        np.testing.assert_array_equal(fast, reference, err_msg=name)
    empty = Vectoriser(ctx.settings).transform([])
    assert ctx.models["multi"].decision_function(empty).shape == (0,)
    with pytest.raises(ValueError):  # a column beyond the model's features is refused, not read
        bad = Vectoriser(ctx.settings).transform(["x y"])
        bad.indices[0] = 2**31 - 1
        ctx.models["multi"].decision_function(bad)
