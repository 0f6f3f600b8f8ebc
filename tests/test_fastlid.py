"""The C extension ``spamcli._fastlid`` gives exactly what the fastText binding gives.

``_fastlid.Model(path).predict(texts)`` must return, for every text, the label the binding's
``model.predict(texts, k=1)`` returns and the very same float32 probability (compared with ``==``),
or None where the binding returns no label. Checked on the shipped ``lid.176.ftz`` with every text of
the shared datasets (when present), hard cases and a seeded random fuzz; on small models trained
here with the binding (dense and quantized, word n-grams, other n-gram sizes, a quantized output
matrix, a tree with ties, a dictionary without "</s>"); damaged files must raise ValueError, never
crash. The language detector must answer the same with the extension and with the binding.
Skipped when the extension is not built (no C compiler at install time).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import new_module_object, shared_dataset_texts, shared_datasets

from spamcli.langid import UNKNOWN, FastTextDetector, _clean, lid_model_path

try:
    from spamcli import _fastlid
except ImportError:
    _fastlid = None

fasttext = pytest.importorskip("fasttext")

pytestmark = pytest.mark.skipif(
    _fastlid is None, reason="the C extension spamcli._fastlid is not built (no C compiler at install time)"
)


@pytest.fixture(scope="module")
def lid_path() -> Path:
    return lid_model_path()


@pytest.fixture(scope="module")
def binding(lid_path):
    return fasttext.load_model(str(lid_path))


@pytest.fixture(scope="module")
def fast(lid_path):
    return _fastlid.Model(str(lid_path))


def expected(binding_model, texts: list[str]) -> list[tuple[str, float] | None]:
    """The binding's answer, in the extension's shape."""
    labels, probs = binding_model.predict(list(texts), k=1)
    return [(label[0], float(prob[0])) if len(label) else None for label, prob in zip(labels, probs)]


def assert_same(fast_model, binding_model, texts) -> None:
    texts = list(texts)
    got = fast_model.predict(texts)
    want = expected(binding_model, texts)
    assert len(got) == len(texts)
    bad = [(text[:80], g, w) for text, g, w in zip(texts, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, e.g. {bad[:3]!r}"
    for answer in got:  # each probability is a float32 value, as fastText's
        assert answer is None or struct.unpack("<f", struct.pack("<f", answer[1]))[0] == answer[1]


# ---- lid.176.ftz ---------------------------------------------------------------------------------


def test_the_model_reads_as_the_binding_reads_it(fast, binding):
    assert fast.labels == tuple(binding.get_labels())
    assert fast.dim == binding.get_dimension() == 16
    assert fast.nwords == len(binding.get_words())
    assert fast.quantized


def test_every_shared_dataset_text_gets_the_bindings_answer(datasets_dir, lid_path, binding):
    texts = shared_dataset_texts(datasets_dir)
    if not texts:
        pytest.skip(f"no registered dataset in {datasets_dir}")
    cleaned = [_clean(t) for t in texts]
    model = _fastlid.Model(str(lid_path))
    assert_same(model, binding, cleaned)  # words met for the first time
    assert model.cached_words > 0
    assert_same(model, binding, cleaned)  # again, with the words outside the dictionary remembered
    model.clear_cache()
    assert model.cached_words == 0
    assert_same(model, binding, cleaned[::-1])
    # the raw texts too, one line each (fastText refuses a newline)
    raw = [t.replace("\n", " ") for t in texts[::7]]
    assert_same(model, binding, raw)


HARD = [
    "",
    " ",
    "   \t \r \v \f ",
    "\x00",
    "a",
    "é",
    "中",
    "😀",
    "__label__en",
    "__label__en hello",
    "__label__xx bonjour tout le monde",
    "hello __label__",
    "__label__",
    "__label_",
    "</s>",
    "hello </s> bonjour le monde",
    "</s> hello",
    "<s>",
    "</s",
    "<>",
    "<hello>",
    "hello world",
    "Hello, how are you today?",
    "Bonjour, comment allez-vous aujourd'hui ?",
    "Привет, как дела?",
    "مرحبا كيف حالك",
    "שלום מה שלומך",
    "नमस्ते, आप कैसे हैं?",
    "สวัสดีครับวันนี้เป็นอย่างไรบ้าง",
    "今日はいい天気ですね私は元気です",
    "我们今天去公园散步吧天气很好",
    "오늘 날씨가 정말 좋네요",
    "Γειά σου κόσμε",
    "ሰላም ነው",
    "e\u0301e\u0301e\u0301 cafe\u0301 n\u0303o",
    "\u0301\u0302\u0303",
    "a\u200bb\u200cc\u200dd",
    "\ufeffhello",
    "x" * 500,
    "é" * 500,
    "中" * 500,
    "😀" * 500,
    ("ab" * 250 + " ") * 3,
    "a" * 400,
    " ".join(["word"] * 100),
    "hello\x00world",
    "abc\x00\x00def ghi\x00",
    "\x00\x00\x00",
    "hello\u00a0world",
    "hello\u3000world",
    "hello\u2028world",
    "hello\x1cworld\x1fthere\x85",
    "tab\tseparated\tvalues",
    "carriage\rreturn",
    "http://example.com/a?b=c&d=e",
    "WIN A FREE IPHONE NOW!!! CALL 0800-123-456",
    "1234567890",
    "ÄÖÜ äöü ß",
    "Ǆ ǅ ǆ",
    "\U0001f1fa\U0001f1f8 \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U00010348\U00010349 \U0001d11e",
    "\uffff\ufffe\ufffd",
    "\x7f\x01\x02\x1b[31m",
    "mixed English и русский 和中文 และภาษาไทย",
]


def test_hard_cases(fast, binding):
    assert_same(fast, binding, HARD)
    assert_same(fast, binding, [_clean(t) for t in HARD])
    for text in HARD:  # one by one: no state carries from a text to the next
        assert_same(fast, binding, [text])


def test_texts_of_400_characters(fast, binding):
    rng = random.Random(11)
    words = [t for t in HARD if t.strip() and "\x00" not in t and len(t) < 60]
    texts = []
    for _ in range(300):
        text = ""
        while len(text) < 400:
            text += rng.choice(words) + " "
        texts.append(_clean(text))
    assert {len(t) for t in texts} <= set(range(390, 401))
    assert_same(fast, binding, texts)


def test_long_texts(fast, binding):
    rng = random.Random(5)
    chars = "abcdeéè中文ไทย😀 "
    long_text = "".join(rng.choice(chars) for _ in range(300_000))
    one_word = "".join(rng.choice(chars.strip()) for _ in range(100_000))
    assert_same(fast, binding, [long_text, one_word, "short", long_text[:1000]])


# A few thousand strings from mixed Unicode ranges, separators included (but "\n").
_RANGES = [
    (0x20, 0x7E),
    (0x09, 0x0D),
    (0x00, 0x1F),
    (0xA0, 0x24F),
    (0x300, 0x36F),
    (0x370, 0x3FF),
    (0x400, 0x4FF),
    (0x590, 0x6FF),
    (0x900, 0x97F),
    (0xE00, 0xE7F),
    (0x1100, 0x11FF),
    (0x2000, 0x206F),
    (0x3000, 0x30FF),
    (0x4E00, 0x4FFF),
    (0xAC00, 0xAD00),
    (0xFE00, 0xFFFF),
    (0x1F300, 0x1F64F),
    (0x10000, 0x1007F),
    (0xE0000, 0xE007F),
]


def _fuzz_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["</s>", "__label__", "__label__en", "<", ">", " ", "\x00", "\t", "\r"]
    texts = []
    for _ in range(count):
        weights = [rng.random() for _ in _RANGES]
        out = []
        for _ in range(rng.choice([0, 1, 2, 5, 20, 60, 150, 400])):
            if rng.random() < 0.05:
                out.append(rng.choice(pieces))
            elif rng.random() < 0.15:
                out.append(" ")
            else:
                lo, hi = rng.choices(_RANGES, weights)[0]
                ch = chr(rng.randint(lo, hi))
                out.append(" " if ch == "\n" else ch)
        texts.append("".join(out))
    return texts


def test_random_fuzz(fast, binding):
    texts = _fuzz_texts(2024, 3000)
    assert_same(fast, binding, texts)
    assert_same(fast, binding, [_clean(t) for t in texts])


def test_the_word_cache_is_bounded_and_changes_no_answer(lid_path, binding):
    model = _fastlid.Model(str(lid_path))
    rng = random.Random(9)
    letters = "abcdefghijklmnopqrstuvwxyzäöüéèàçñ"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 12))) for _ in range(30_000)]
    texts = [" ".join(rng.sample(words, 8)) for _ in range(6000)]
    assert_same(model, binding, texts)
    assert 0 < model.cached_words <= 16384  # emptied when full
    assert_same(model, binding, texts[::-1])
    assert_same(model, binding, [" ".join(words[i : i + 5]) for i in range(0, 30_000, 5)])


def test_each_module_object_has_its_own_model_type(fast, lid_path):
    other = new_module_object("spamcli._fastlid")
    assert other.Model is not _fastlid.Model and other.Model.__name__ == "Model"
    model = other.Model(str(lid_path))
    assert type(model) is other.Model and not isinstance(model, _fastlid.Model)
    texts = ["bonjour tout le monde", "hello world", "guten Morgen, wie geht es dir"]
    assert model.predict(texts) == fast.predict(texts)
    assert [answer[0] for answer in model.predict(texts)] == ["__label__fr", "__label__en", "__label__de"]
    with pytest.raises(TypeError):
        other.Model.predict = None  # immutable, as a static type is


def test_bad_arguments(fast, binding):
    with pytest.raises(ValueError, match="one line"):
        fast.predict(["hello", "two\nlines"])
    with pytest.raises(ValueError):
        binding.predict(["two\nlines"], k=1)  # the binding refuses it too
    with pytest.raises(UnicodeEncodeError):
        fast.predict(["a lone \udcff surrogate"])
    with pytest.raises(TypeError):
        fast.predict(["text", b"bytes"])
    with pytest.raises(TypeError):
        fast.predict(42)
    assert fast.predict([]) == []
    assert fast.predict(("a tuple", "works")) == fast.predict(["a tuple", "works"])


# ---- models trained here ------------------------------------------------------------------------


def _training_file(path: Path, labels: int, lines_per_label, seed: int) -> list[str]:
    """Lines of made-up words, each label with its own letters; returns the texts (no labels)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzéüñжщыюابتثجحخ中文字ไทยห"
    lines, texts = [], []
    for k in range(labels):
        letters = rng.sample(alphabet, 6)
        vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 7))) for _ in range(8)]
        for _ in range(lines_per_label(k)):
            text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9)))
            lines.append(f"__label__l{k} {text}")
            texts.append(text)
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def _train(path: Path, **kwargs):
    """fasttext-numpy2's train_supervised fails now and then with "Encountered NaN." (always with
    fewer than 10 threads, see benchmarks/speed.py; ~1 run in 30 here), or returns a model whose
    weights hold NaN (its predict then fails the same way, and so does the extension's, as it
    should): tried again in both cases."""
    kwargs = {"loss": "hs", "epoch": 3, "lr": 0.5, "thread": 10, "verbose": 0, **kwargs}
    for attempt in range(8):
        try:
            model = fasttext.train_supervised(str(path), **kwargs)
        except RuntimeError as exc:
            if "NaN" not in str(exc) or attempt == 7:
                raise
            continue
        if np.isfinite(model.get_input_matrix()).all() and np.isfinite(model.get_output_matrix()).all():
            return model
    raise RuntimeError(f"fastText training gave NaN weights 8 times for {kwargs}")


def _probe_texts(texts: list[str]) -> list[str]:
    rng = random.Random(1)
    mixed = [" ".join(rng.sample(texts, 3)) for _ in range(100)]
    return texts[:300] + mixed + HARD + _fuzz_texts(7, 200)


DENSE_ARGS = [
    {"dim": 10, "wordNgrams": 2, "minn": 2, "maxn": 4, "bucket": 20_000},
    {"dim": 16, "wordNgrams": 3, "minn": 1, "maxn": 3, "bucket": 5_000},
    {"dim": 7, "wordNgrams": 1, "minn": 0, "maxn": 0, "bucket": 0},
    {"dim": 12, "wordNgrams": 1, "minn": 3, "maxn": 6, "bucket": 3_000},
]


@pytest.mark.parametrize("args", DENSE_ARGS, ids=lambda a: "dim{dim}-wng{wordNgrams}-n{minn}{maxn}".format(**a))
def test_dense_models(tmp_path, args):
    texts = _training_file(tmp_path / "train.txt", 12, lambda k: 20 + 7 * k, seed=args["dim"])
    model = _train(tmp_path / "train.txt", **args)
    model.save_model(str(tmp_path / "m.bin"))
    binding = fasttext.load_model(str(tmp_path / "m.bin"))
    fast = _fastlid.Model(str(tmp_path / "m.bin"))
    assert not fast.quantized
    assert fast.labels == tuple(binding.get_labels())
    assert_same(fast, binding, _probe_texts(texts))


def test_format_versions(tmp_path):
    """fastText reads a version 11 supervised model without character n-grams (maxn = 0)."""
    texts = _training_file(tmp_path / "train.txt", 6, lambda k: 30, seed=6)
    model = _train(tmp_path / "train.txt", dim=10, wordNgrams=1, minn=2, maxn=4, bucket=10_000)
    model.save_model(str(tmp_path / "m.bin"))
    data = bytearray((tmp_path / "m.bin").read_bytes())
    probe = _probe_texts(texts)
    answers = {}
    for version in (12, 11, 10, 1):
        struct.pack_into("<i", data, 4, version)
        path = tmp_path / f"v{version}.bin"
        path.write_bytes(bytes(data))
        fast = _fastlid.Model(str(path))
        assert_same(fast, fasttext.load_model(str(path)), probe)
        answers[version] = fast.predict(probe)
    assert answers[11] != answers[12] == answers[10] == answers[1]


QUANT_ARGS = [
    {"qnorm": True, "qout": True, "dsub": 3, "cutoff": 400},  # output quantized: >= 256 labels
    {"qnorm": False, "qout": False, "dsub": 2, "cutoff": 0},  # no pruning: every bucket has a row
    {"qnorm": True, "qout": False, "dsub": 4, "cutoff": 300},
    {"qnorm": False, "qout": True, "dsub": 5, "cutoff": 1000},
]


@pytest.mark.parametrize(
    "qargs", QUANT_ARGS, ids=lambda a: "qnorm{qnorm}-qout{qout}-dsub{dsub}-cut{cutoff}".format(**a)
)
def test_quantized_models(tmp_path, qargs):
    texts = _training_file(tmp_path / "train.txt", 300, lambda k: 2 + k % 5, seed=qargs["dsub"])
    model = _train(tmp_path / "train.txt", dim=10, wordNgrams=2, minn=2, maxn=4, bucket=5_000)
    model.quantize(input=str(tmp_path / "train.txt"), retrain=False, **qargs)
    model.save_model(str(tmp_path / "m.ftz"))
    binding = fasttext.load_model(str(tmp_path / "m.ftz"))
    fast = _fastlid.Model(str(tmp_path / "m.ftz"))
    assert fast.quantized
    assert len(fast.labels) == 300
    assert_same(fast, binding, _probe_texts(texts))


def test_ties_in_the_tree_go_to_the_later_leaf(tmp_path):
    """Four labels of equal counts make a balanced tree; with a zero output matrix every node
    gives 0.5, so all four leaves tie: fastText's heap keeps the leaf it met last."""
    _training_file(tmp_path / "train.txt", 4, lambda k: 30, seed=4)
    model = _train(tmp_path / "train.txt", dim=8, wordNgrams=1, minn=2, maxn=3, bucket=1000)
    model.save_model(str(tmp_path / "m.bin"))
    data = bytearray((tmp_path / "m.bin").read_bytes())
    m, n = 4, 8  # the output matrix: one row per label, dim columns, at the end of the file
    assert struct.unpack_from("<qq", data, len(data) - m * n * 4 - 16) == (m, n)
    data[len(data) - m * n * 4 :] = bytes(m * n * 4)
    (tmp_path / "zero.bin").write_bytes(bytes(data))
    binding = fasttext.load_model(str(tmp_path / "zero.bin"))
    fast = _fastlid.Model(str(tmp_path / "zero.bin"))
    texts = ["hello", "", "a b c", "__label__l1"]
    assert_same(fast, binding, texts)
    assert len({answer for answer in fast.predict(texts)}) == 1  # the same leaf whatever the text


def test_no_rows_no_prediction(tmp_path):
    """A dictionary without "</s>" (renamed here) and no character n-grams: a text of unknown words
    gives fastText no input row and no prediction; the detector answers (UNKNOWN, 0.0) for it."""
    _training_file(tmp_path / "train.txt", 3, lambda k: 30, seed=5)
    model = _train(tmp_path / "train.txt", dim=8, wordNgrams=1, minn=0, maxn=0, bucket=0)
    model.save_model(str(tmp_path / "m.bin"))
    data = (tmp_path / "m.bin").read_bytes()
    assert data.count(b"</s>\x00") == 1
    (tmp_path / "noeos.bin").write_bytes(data.replace(b"</s>\x00", b"<//>\x00"))
    binding = fasttext.load_model(str(tmp_path / "noeos.bin"))
    fast = _fastlid.Model(str(tmp_path / "noeos.bin"))
    texts = ["", "unknown words only", "__label__l0", "</s>", "<//>"]
    assert_same(fast, binding, texts)
    assert fast.predict(texts)[:3] == [None, None, None]
    assert fast.predict(["<//>"])[0] is not None  # a word of the dictionary now
    with_c = FastTextDetector(tmp_path / "noeos.bin")
    assert with_c.implementation == "_fastlid"
    assert with_c.detect(["unknown words only", ""]) == [(UNKNOWN, 0.0), (UNKNOWN, 0.0)]


def test_a_bucket_listed_twice_takes_its_last_row(tmp_path, lid_path, binding):
    """The pruned index is read into a std::unordered_map with operator[]: when a bucket comes
    twice, the later pair wins (and the bucket the later pair had is no longer kept)."""
    data = bytearray(lid_path.read_bytes())
    words = binding.get_words(include_freq=False) + binding.get_labels()
    start = 92 + sum(len(w.encode()) + 10 for w in words)  # header 92 bytes; word, NUL, count, type
    npairs = struct.unpack_from("<q", data, 84)[0]
    keys = [struct.unpack_from("<i", data, start + 8 * k)[0] for k in range(npairs)]
    rng = random.Random(8)
    for k in rng.sample(range(1, npairs), 8000):
        struct.pack_into("<i", data, start + 8 * k, keys[k - 1])
    (tmp_path / "dup.ftz").write_bytes(bytes(data))
    dup_binding = fasttext.load_model(str(tmp_path / "dup.ftz"))
    dup = _fastlid.Model(str(tmp_path / "dup.ftz"))
    texts = HARD + _fuzz_texts(12, 1500)
    assert_same(dup, dup_binding, texts)
    assert dup.predict(texts) != fast_answers(lid_path, texts)  # the change shows


def test_a_word_listed_twice_is_its_last_entry(tmp_path, lid_path, binding):
    """Dictionary::load maps a word to the last entry that spells it."""
    data = bytearray(lid_path.read_bytes())
    words = binding.get_words(include_freq=False)
    offsets, at = [], 92
    for word in words + binding.get_labels():
        offsets.append(at)
        at += len(word.encode()) + 10
    by_length: dict[int, list[int]] = {}
    for i, word in enumerate(words[1:], 1):  # not "</s>"
        by_length.setdefault(len(word.encode()), []).append(i)
    rng = random.Random(4)
    copied = []
    for ids in by_length.values():
        for _ in range(len(ids) // 10):
            i, j = sorted(rng.sample(ids, 2))
            data[offsets[j] : offsets[j] + len(words[i].encode())] = words[i].encode()
            copied.append(words[i])
    (tmp_path / "twice.ftz").write_bytes(bytes(data))
    twice_binding = fasttext.load_model(str(tmp_path / "twice.ftz"))
    twice = _fastlid.Model(str(tmp_path / "twice.ftz"))
    texts = copied + [" ".join(rng.sample(copied, 4)) for _ in range(300)]
    assert len(copied) > 300
    assert_same(twice, twice_binding, texts)
    assert twice.predict(texts) != fast_answers(lid_path, texts)  # the change shows


def fast_answers(path: Path, texts: list[str]) -> list:
    return _fastlid.Model(str(path)).predict(texts)


# ---- damaged files ------------------------------------------------------------------------------


def _loads_or_value_error(path: Path) -> bool:
    try:
        model = _fastlid.Model(str(path))
    except ValueError:
        return False
    model.predict(["hello world", "", "中文 ไทย 😀", "x" * 300])
    return True


def test_a_truncated_file_raises_value_error(tmp_path, lid_path):
    data = lid_path.read_bytes()
    rng = random.Random(3)
    cuts = list(range(0, 400)) + rng.sample(range(400, len(data)), 300) + list(range(len(data) - 300, len(data)))
    path = tmp_path / "cut.ftz"
    path.write_bytes(data)
    for cut in sorted(set(cuts), reverse=True):  # each file a shorter cut of the last: no rewrite
        os.truncate(path, cut)
        with pytest.raises(ValueError, match="not a supported fastText model"):
            _fastlid.Model(str(path))


def _header_edits(data: bytes) -> list[tuple[str, bytes]]:
    def put(fmt: str, offset: int, value) -> bytes:
        out = bytearray(data)
        struct.pack_into(fmt, out, offset, value)
        return bytes(out)

    # offsets: magic 0, version 4, args 8.. (dim, ws, epoch, minCount, neg, wordNgrams, loss, model,
    # bucket, minn, maxn, lrUpdateRate: int32), t 56 (double), dictionary 64: size, nwords, nlabels
    # (int32), ntokens 76, pruneidx_size 84 (int64)
    return [
        ("magic", put("<i", 0, 12345)),
        ("version", put("<i", 4, 13)),
        ("dim zero", put("<i", 8, 0)),
        ("dim negative", put("<i", 8, -16)),
        ("dim other", put("<i", 8, 17)),
        ("loss softmax", put("<i", 32, 3)),
        ("loss ns", put("<i", 32, 2)),
        ("model cbow", put("<i", 36, 1)),
        ("bucket zero", put("<i", 40, 0)),
        ("bucket negative", put("<i", 40, -5)),
        ("minn negative", put("<i", 44, -1)),
        ("maxn negative", put("<i", 48, -1)),
        ("maxn huge", put("<i", 48, 10**6)),
        ("size", put("<i", 64, 7412)),
        ("size negative", put("<i", 64, -1)),
        ("size huge", put("<i", 64, 2**31 - 1)),
        ("nwords", put("<i", 68, 7234)),
        ("nlabels zero", put("<i", 72, 0)),
        ("pruneidx huge", put("<q", 84, 2**40)),
        ("pruneidx negative", put("<q", 84, -7)),
    ]


def _accepted(tmp_path: Path, damaged: list[tuple[str, bytes]]) -> list[str]:
    """The damaged files (name, bytes) that load without a ValueError naming the file."""
    path = tmp_path / "bad.ftz"
    accepted = []
    for what, data in damaged:
        path.write_bytes(data)
        try:
            _fastlid.Model(str(path))
        except ValueError as exc:
            assert "is not a supported fastText model: " in str(exc) and "bad.ftz" in str(exc), exc
            continue
        accepted.append(what)
    return accepted


def test_damaged_headers_raise_value_error(tmp_path, lid_path):
    assert _accepted(tmp_path, _header_edits(lid_path.read_bytes())) == []


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
def test_a_huge_bucket_count_costs_no_memory_and_answers_as_the_binding(tmp_path, lid_path):
    """A file may claim 2^31 - 1 buckets: the kept-bucket bitmap is sized by the largest kept one
    (not by the claim: ~512 MB), and buckets past it are dropped, as fastText drops them."""
    data = bytearray(lid_path.read_bytes())
    struct.pack_into("<i", data, 40, 2**31 - 1)
    path = tmp_path / "huge-bucket.ftz"
    path.write_bytes(bytes(data))
    texts = ["hello world", "bonjour tout le monde", "中文 ไทย 😀", "xqzwv" * 40, ""]
    assert_same(_fastlid.Model(str(path)), fasttext.load_model(str(path)), texts)
    peak = subprocess.run(
        [sys.executable, "-c", LOAD_AND_REPORT_PEAK_RSS_KB, str(path)], capture_output=True, text=True, check=True
    )
    assert int(peak.stdout) < 200_000  # kB; a bitmap over 2^31 buckets would be 512 MB


# the resident memory (VmRSS, kB) of a fresh process holding the model (not ru_maxrss: Linux keeps
# the high-water mark of the pytest process across the child's exec)
LOAD_AND_REPORT_PEAK_RSS_KB = (
    "import re, sys\n"
    "from spamcli import _fastlid\n"
    "model = _fastlid.Model(sys.argv[1])\n"
    "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
)


def test_label_counts_that_make_no_tree_raise_value_error(tmp_path):
    """Two labels counted 10^15 each: fastText's tree building would read past its counts (and then
    make no tree); the file is refused, without reading out of bounds (tests under ASan:
    scripts/sanitize_extensions.sh)."""
    _training_file(tmp_path / "train.txt", 2, lambda k: 20, seed=6)
    _train(tmp_path / "train.txt", dim=4, wordNgrams=1, minn=2, maxn=3, bucket=100).save_model(str(tmp_path / "m.bin"))
    data = bytearray((tmp_path / "m.bin").read_bytes())
    for label in (b"__label__l0\0", b"__label__l1\0"):
        at = data.index(label) + len(label)
        struct.pack_into("<q", data, at, 10**15)
    (tmp_path / "big.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="label counts that make no tree"):
        _fastlid.Model(str(tmp_path / "big.bin"))


def test_damaged_matrices_raise_value_error(tmp_path, lid_path):
    data = lid_path.read_bytes()
    # the input matrix's header follows the pruned index: bool quant, bool qnorm, int64 m, int64 n,
    # int32 codesize; find it from the binding's sizes
    at = data.index(struct.pack("<?qqi", True, 50000, 16, 400000)) - 1
    assert data[at] == 1  # quant_input
    edits = {
        "quant flag 2": (at, b"\x02"),
        "qnorm flag 2": (at + 1, b"\x02"),
        "rows": (at + 2, struct.pack("<q", 50001)),
        "rows negative": (at + 2, struct.pack("<q", -1)),
        "columns": (at + 10, struct.pack("<q", 15)),
        "code size": (at + 18, struct.pack("<i", 400001)),
        "code size huge": (at + 18, struct.pack("<i", 2**31 - 1)),
        "pq dim": (at + 22 + 400000, struct.pack("<i", 32)),
        "pq nsubq": (at + 22 + 400000 + 4, struct.pack("<i", 7)),
        "pq dsub": (at + 22 + 400000 + 8, struct.pack("<i", 0)),
    }
    damaged = []
    for what, (offset, value) in edits.items():
        bad = bytearray(data)
        bad[offset : offset + len(value)] = value
        damaged.append((what, bytes(bad)))
    assert _accepted(tmp_path, damaged) == []


def test_random_damage_never_crashes(tmp_path, lid_path):
    """Bytes changed anywhere: the file is refused (ValueError) or loads and predicts; no crash."""
    data = lid_path.read_bytes()
    rng = random.Random(17)
    path = tmp_path / "bad.ftz"
    loaded = 0
    for _ in range(150):
        bad = bytearray(data)
        # mostly the header, the dictionary and the pruned index, where sizes live
        for _ in range(rng.randint(1, 4)):
            offset = rng.randrange(0, 400) if rng.random() < 0.5 else rng.randrange(len(bad))
            bad[offset] = rng.randrange(256)
        path.write_bytes(bytes(bad))
        loaded += _loads_or_value_error(path)
    assert loaded > 0  # some damage is harmless (a count, a centroid): those still load


def test_files_that_are_not_models(tmp_path, lid_path):
    text = tmp_path / "model.txt"
    text.write_text("__label__en hello world\n" * 100)
    empty = tmp_path / "empty.ftz"
    empty.write_bytes(b"")
    for path in (text, empty):
        with pytest.raises(ValueError, match="not a supported fastText model"):
            _fastlid.Model(str(path))
    with pytest.raises(OSError):
        _fastlid.Model(str(tmp_path / "missing.ftz"))
    with pytest.raises(OSError):
        _fastlid.Model(str(tmp_path))  # a directory
    model = _fastlid.Model(lid_path)  # a path-like works
    with pytest.raises(TypeError):
        model.__init__(str(lid_path))  # loaded once only


# ---- the language detector ----------------------------------------------------------------------


def test_the_detector_answers_the_same_with_the_extension_and_the_binding(monkeypatch):
    with_c = FastTextDetector()
    monkeypatch.setenv("SPAMCLI_FASTTEXT_LIB", "1")
    with_binding = FastTextDetector()
    assert with_c.implementation == "_fastlid"
    assert with_binding.implementation == "fasttext"
    texts = HARD + _fuzz_texts(3, 500) + ["a\nmulti-line\ntext", "  padded \n\n text  "]
    root = shared_datasets()
    pool = shared_dataset_texts(root) if root else []
    texts += random.Random(2).sample(pool, min(3000, len(pool)))
    assert with_c.detect(texts) == with_binding.detect(texts)
    assert with_c.detect(texts[::-1]) == with_binding.detect(texts[::-1])  # from the caches


def test_the_detector_falls_back_to_the_binding(tmp_path):
    """A model the extension does not read (softmax, not hierarchical softmax) is the binding's."""
    _training_file(tmp_path / "train.txt", 3, lambda k: 30, seed=6)
    model = _train(tmp_path / "train.txt", loss="softmax")
    model.save_model(str(tmp_path / "softmax.bin"))
    with pytest.raises(ValueError, match="hierarchical-softmax"):
        _fastlid.Model(str(tmp_path / "softmax.bin"))
    detector = FastTextDetector(tmp_path / "softmax.bin")
    assert detector.implementation == "fasttext"
    labels, probs = model.predict(["some words"], k=1)
    assert detector.detect(["some  words"]) == [(labels[0][0].replace("__label__", ""), float(min(1.0, probs[0][0])))]


def test_no_label_from_the_binding_is_unknown_too():
    """The binding's empty answer (no label) maps to (UNKNOWN, 0.0), as the extension's None does."""

    class NoLabel:
        def predict(self, texts, k=1):
            return [[] for _ in texts], [np.array([], dtype=np.float32) for _ in texts]

    detector = FastTextDetector.__new__(FastTextDetector)
    detector._fast, detector._model, detector._cache = None, NoLabel(), {}
    assert detector.detect(["hello", ""]) == [(UNKNOWN, 0.0), (UNKNOWN, 0.0)]
