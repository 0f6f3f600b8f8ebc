"""Hostile inputs that used to hang or exhaust memory before any check: users' regular expressions
(``--label-rule``'s ``~``, ``--trusted-domains``), model files that are not files or lie about their
size, tampered manifests, and saving over a corrupted model file.

Every test that could hang or eat memory on a regression runs its victim in a subprocess with a
timeout (and an address-space limit where memory is at stake), so a regression fails, fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, SAMPLES, Result, assert_one_line_error, cli_env, run_cli, run_cli_process

from spamcli import SpamFilter, bundle
from spamcli.errors import ModelError, UsageError
from spamcli.moderation import compile_rule
from spamcli.profiles import DomainMatcher

TIMEOUT = 20  # seconds: far above what a passing test takes (< 2 s), far below a hang
MEMORY_LIMIT = 1536 * 2**20  # address space of a victim process: classify needs well under 1 GB
CATASTROPHIC = "(a+)+$"
EVIL_FIELD = "a" * 40 + "!"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_bounded(*args: str | os.PathLike, stdin: str = "") -> Result:
    """``python -m spamcli ARGS`` with a timeout and an address-space limit (a regression fails)."""
    return run_cli_process(*args, stdin=stdin, timeout=TIMEOUT, preexec_fn=_limit_memory)


def _run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter, bounded in time and memory; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        env=cli_env(),
        cwd=REPO,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    return proc.stdout.decode("utf-8").strip()


# ---- 1. users' regular expressions ------------------------------------------------------------
def test_catastrophic_label_rule_regex_runs_in_linear_time():
    out = _run_python(
        f"""
        import time
        from spamcli.moderation import compile_rule
        rule = compile_rule("reason ~ '{CATASTROPHIC}'")
        start = time.monotonic()
        fields = [{EVIL_FIELD!r}, "a" * 1_000_000 + "!", "aaa"]
        hits = [rule({{"reason": field}}) for field in fields]
        print(hits, time.monotonic() - start)
        """
    )
    hits, seconds = out.rsplit(" ", 1)
    assert hits == "[False, False, True]"
    assert float(seconds) < 1.0


def test_catastrophic_trusted_domain_regex_runs_in_linear_time(trained_model, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text(f"^{CATASTROPHIC}\n")
    profile = {"id": "p1", "about": "hello there", "email": f"someone@{EVIL_FIELD}"}
    result = _run_bounded(
        "classify", "--model", trained_model, "--context", "profile", "--trusted-domains", domains,
        stdin=json.dumps(profile) + "\n",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "reason" not in result.json_lines()[0]


@pytest.mark.parametrize(
    "pattern", [pytest.param(r"(a)\1", id="backreference"), pytest.param("(?=spam)spam", id="lookahead")]
)
def test_label_rule_regex_outside_re2_is_a_usage_error(tmp_path, pattern):
    rule = f"reason ~ '{pattern}'"
    with pytest.raises(UsageError, match="regular expression"):
        compile_rule(rule)
    export = SAMPLES / "moderation_export.csv"
    result = run_cli("train", export, "--text-col", "body", "--label-rule", rule, "--out", tmp_path / "m", timeout=60)
    assert_one_line_error(result, 2)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "pattern", [pytest.param(r"^(\w+)\.\1$", id="backreference"), pytest.param(r"(?<!evil)\.example$", id="lookbehind")]
)
def test_trusted_domain_regex_outside_re2_is_a_usage_error(trained_model, tmp_path, pattern):
    with pytest.raises(UsageError, match="domain pattern"):
        DomainMatcher([pattern])
    domains = tmp_path / "domains.txt"
    domains.write_text(pattern + "\n")
    result = run_cli(
        "classify", "--model", trained_model, "--context", "profile", "--trusted-domains", domains,
        stdin='{"id": "p1", "about": "hi", "email": "a@b.example"}\n', timeout=60,
    )  # fmt: skip
    assert_one_line_error(result, 2)


def test_trusted_domain_regex_matches_the_whole_domain():
    matcher = DomainMatcher([r"partner\d+\.example", r"(mail|www)\.school\.org"])
    assert matcher.match("partner12.example") == r"partner\d+\.example"
    assert matcher.match("mail.school.org") == r"(mail|www)\.school\.org"
    for domain in ("evilpartner12.example", "partner12.example.attacker.net", "xmail.school.org.evil"):
        assert matcher.match(domain) is None, domain
    assert DomainMatcher([r"^fast-loans\.example$"]).match("fast-loans.example")  # anchors still fine
    assert DomainMatcher([r"SCHOOL\.org"]).match("school.org")  # case-insensitive


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("(" * 5000 + "a" + ")" * 5000, id="parentheses"),
        pytest.param("not " * 5000 + "a", id="not"),
        pytest.param("a == " + "(" * 5000 + "b" + ")" * 5000, id="comparison-operand"),
    ],
)
def test_label_rule_nested_too_deeply_is_a_usage_error(tmp_path, rule):
    with pytest.raises(UsageError, match="nested too deeply"):
        compile_rule(rule)
    export = SAMPLES / "moderation_export.csv"
    result = run_cli("train", export, "--text-col", "body", "--label-rule", rule, "--out", tmp_path / "m", timeout=60)
    assert_one_line_error(result, 2)


def test_label_rule_nested_moderately_still_works():
    depth = 30
    rule = compile_rule("not " * depth + "(" * depth + "a" + ")" * depth)
    assert rule({"a": "1"}) is True and rule({"a": ""}) is False


# ---- 2. model files that hang or exhaust memory -----------------------------------------------
def _manifest(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())


def _first_entry(manifest: dict) -> dict:
    return next(iter(manifest["contexts"]["content"]["models"].values()))


def _first_model_file(model: Path) -> Path:
    return model / _first_entry(_manifest(model))["file"]


def _replace_model_file(model: Path, data: bytes, **fields) -> None:
    """Overwrite the first model file and update its sha256 (and ``fields`` of its entry), as an
    attacker with write access could."""
    manifest = _manifest(model)
    entry = _first_entry(manifest)
    (model / entry["file"]).write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    entry.update(fields)
    (model / "manifest.json").write_text(json.dumps(manifest))


def _assert_model_error(model: Path, run=_run_bounded) -> None:
    """``classify --model`` refuses the model with exit 4 and one line (bounded: no hang, no 4 GB;
    ``run=run_cli`` in this process where loading the model here has just been refused)."""
    result = run("classify", "--model", model, stdin="hello world\n")
    assert_one_line_error(result, 4)


def test_model_file_that_is_a_fifo_is_refused_without_hanging(model_copy):
    path = _first_model_file(model_copy)
    path.unlink()
    os.mkfifo(path)
    _assert_model_error(model_copy)


def test_model_file_symlinked_to_dev_zero_is_refused(model_copy):
    path = _first_model_file(model_copy)
    path.unlink()
    path.symlink_to("/dev/zero")
    _assert_model_error(model_copy)


def test_manifest_that_is_a_fifo_is_refused_without_hanging(model_copy):
    (model_copy / "manifest.json").unlink()
    os.mkfifo(model_copy / "manifest.json")
    _assert_model_error(model_copy)


def test_huge_manifest_is_refused_before_reading_it(model_copy):
    with open(model_copy / "manifest.json", "r+b") as handle:
        handle.truncate(2**30)  # 1 GB (sparse: cheap to make, not to read)
    _assert_model_error(model_copy)


def _npy_header(shape: tuple, dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return np.lib.format.magic(1, 0) + buf.getvalue()


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip file from raw members ``(name, payload, method, crc, uncompressed size)``."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, payload, method, crc, size in members:
        offset = out.tell()
        fields = (20, 0, method, 0, 0x21, crc, len(payload), size, len(name), 0)
        out.write(b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", *fields) + name.encode() + payload)
        central.write(b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, *fields, 0, 0, 0, 0, offset) + name.encode())
    directory = central.getvalue()
    end = struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(directory), out.tell(), 0)
    return out.getvalue() + directory + b"PK\x05\x06" + end


def _stored(name: str, array: np.ndarray) -> tuple[str, bytes, int, int, int]:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    data = buf.getvalue()
    return name, data, 0, zlib.crc32(data), len(data)


def _deflated_zeros(header: bytes, total: int) -> bytes:
    """Raw deflate of ``header`` followed by zeros up to ``total`` bytes, made without handling
    ``total`` bytes: after a full flush, each further 16 MiB block of zeros deflates the same."""
    block = 1 << 24
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(header + bytes(block - len(header))) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert again == comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert total % block == 0
    return first + again * (total // block - 1) + comp.flush()


def test_deflated_npz_claiming_billions_of_floats_is_refused_before_decompressing(model_copy):
    n = 250_000_000  # counts of shape (2, n) float64: 5e8 floats, 4 GB, in a 4 MB file
    header = _npy_header((2, n), "<f8")
    total = (len(header) + 2 * n * 8 + (1 << 24) - 1) // (1 << 24) * (1 << 24)
    bomb = ("counts.npy", _deflated_zeros(header, total), 8, 0, total)  # crc unchecked: refused first
    data = _zip([_stored("columns.npy", np.arange(10, dtype=np.int32)), bomb])
    assert len(data) < 8 * 2**20
    _replace_model_file(model_copy, data)
    _assert_model_error(model_copy)


def _edit_manifest(model: Path, edit) -> None:
    manifest = _manifest(model)
    edit(manifest, manifest["contexts"]["content"], _first_entry(manifest))
    (model / "manifest.json").write_text(json.dumps(manifest).replace(f'"{OVERFLOW}"', OVERFLOW))


OVERFLOW = "1e999"  # a JSON number that Python parses as inf (NaN and Infinity are not JSON numbers)


def test_manifest_char_ngrams_up_to_a_billion_is_refused_without_hanging(model_copy):
    _edit_manifest(model_copy, lambda m, ctx, e: ctx["features"].update(char_ngrams=[1, 1e9]))
    _assert_model_error(model_copy)


NAN, INF = float("nan"), float("inf")
TAMPERED_FIELDS = {
    "intercept-nan": lambda m, ctx, e: e.update(intercept=NAN),
    "calibration-inf": lambda m, ctx, e: e["calibration"].update(a=INF),
    "calibration-overflowing-number": lambda m, ctx, e: e["calibration"].update(a=OVERFLOW),
    "intercept-overflowing-number": lambda m, ctx, e: e.update(intercept=OVERFLOW),
    "scoring-weight-overflowing-number": lambda m, ctx, e: ctx.update(scoring={"weights": {"text": OVERFLOW}}),
    "scoring-thresholds-reversed": lambda m, ctx, e: ctx.update(scoring={"thresholds": {"ham": 0.9, "spam": 0.1}}),
    "calibration-text": lambda m, ctx, e: e["calibration"].update(b="0.5"),
    "alpha-negative": lambda m, ctx, e: e.update(alpha=-1.0),
    "alpha-nan": lambda m, ctx, e: e.update(alpha=NAN),
    "norm-floor-nan": lambda m, ctx, e: e["norm_floors"].update(nb=NAN),
    "norm-floors-list": lambda m, ctx, e: e.update(norm_floors=[1, 2]),
    "n-features-zero": lambda m, ctx, e: e.update(n_features=0),
    "n-features-huge": lambda m, ctx, e: e.update(n_features=2**40),
    "n-features-other-than-the-features": lambda m, ctx, e: e.update(n_features=e["n_features"] // 2),
    "n-features-float": lambda m, ctx, e: e.update(n_features=float(e["n_features"])),
    "kind-unknown": lambda m, ctx, e: e.update(kind="evil"),
    "file-not-text": lambda m, ctx, e: e.update(file=5),
    "sha256-missing": lambda m, ctx, e: e.pop("sha256"),
    "model-thresholds-nan": lambda m, ctx, e: e["thresholds"].update(spam=NAN),
    "thresholds-nan": lambda m, ctx, e: ctx["thresholds"].update(ham=NAN),
    "thresholds-out-of-range": lambda m, ctx, e: ctx["thresholds"].update(spam=2.0),
    "spam-at-fpr-nan": lambda m, ctx, e: ctx.update(spam_at_fpr={"0.005": NAN}),
    "spam-at-fpr-bad-budget": lambda m, ctx, e: ctx.update(spam_at_fpr={"lots": 0.5}),
    "min-lang-confidence-nan": lambda m, ctx, e: ctx.update(min_lang_confidence=NAN),
    "unseen-language-threshold-out-of-range": lambda m, ctx, e: ctx.update(unseen_language_threshold=5),
    "known-languages-number": lambda m, ctx, e: ctx.update(known_languages=5),
    "lang-backend-unknown": lambda m, ctx, e: ctx.update(lang_backend="evil"),
    "summary-list": lambda m, ctx, e: ctx.update(summary=[1]),
    "models-empty": lambda m, ctx, e: ctx.update(models={}),
    "models-without-fallback": lambda m, ctx, e: ctx["models"].pop("multi"),
    "char-ngrams-reversed": lambda m, ctx, e: ctx["features"].update(char_ngrams=[4, 2]),
    "char-ngrams-text": lambda m, ctx, e: ctx["features"].update(char_ngrams="ab"),
    "char-ngrams-zero": lambda m, ctx, e: ctx["features"].update(char_ngrams=[0, 3]),
    "word-ngrams-huge": lambda m, ctx, e: ctx["features"].update(word_ngrams=10**9),
    "max-chars-negative": lambda m, ctx, e: ctx["features"].update(max_chars=-3),
    "max-chars-float": lambda m, ctx, e: ctx["features"].update(max_chars=1e300),
    "binary-text": lambda m, ctx, e: ctx["features"].update(binary="yes"),
    "feature-n-features-huge": lambda m, ctx, e: ctx["features"].update(n_features=2**40),
    "features-version-text": lambda m, ctx, e: m.update(features_version="1"),
    "format-version-bool": lambda m, ctx, e: m.update(format_version=True),
    "contexts-list": lambda m, ctx, e: m.update(contexts=[]),
    "scoring-weight-nan": lambda m, ctx, e: ctx.update(scoring={"weights": {"text": NAN}}),
    "scoring-unknown-key": lambda m, ctx, e: ctx.update(scoring={"evil": 1}),
    "scoring-backreference-domain": lambda m, ctx, e: ctx.update(scoring={"trusted_domains": [r"(a)\1"]}),
    "learned-not-an-object": lambda m, ctx, e: m.update(learned="x"),
}


@pytest.mark.parametrize("edit", list(TAMPERED_FIELDS.values()), ids=list(TAMPERED_FIELDS))
def test_tampered_manifest_field_is_a_model_error(model_copy, edit):
    _edit_manifest(model_copy, edit)
    with pytest.raises(ModelError):
        bundle.load_bundle(model_copy)
    _assert_model_error(model_copy, run=run_cli)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
        pytest.param('{"format": "spamcli-model", "format_version": ' + "9" * 10_000 + "}", id="huge-integer"),
        pytest.param('{"format": "spamcli-model", "format_version": 1, "features_version": []}', id="version-list"),
        pytest.param(b"\xff\xfe{}".decode("latin-1"), id="not-utf8"),
    ],
)
def test_manifest_that_is_not_sane_json_is_a_model_error(model_copy, text):
    (model_copy / "manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelError):
        bundle.load_bundle(model_copy)
    _assert_model_error(model_copy, run=run_cli)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _columns_beyond(a):
    a["columns"] = a["columns"].copy()
    a["columns"][-1] = 2**30


def _columns_negative(a):
    a["columns"] = a["columns"].copy()
    a["columns"][0] = -5


def _columns_unsorted(a):
    a["columns"] = a["columns"][::-1].copy()


def _counts_nan(a):
    a["counts"] = a["counts"].astype(np.float64)
    a["counts"][0, 0] = np.nan


def _counts_negative(a):
    a["counts"] = a["counts"].astype(np.float64)
    a["counts"][1, 0] = -1.0


def _counts_negative_integers(a):
    a["counts"] = a["counts"].astype(np.int64)
    a["counts"][0, 0] = -3


def _coef_inf(a):  # (the test model's are kind nb: this one becomes nblr)
    a["coef_plain"] = np.zeros(len(a["columns"]))
    a["coef_nb"] = np.zeros(len(a["columns"]))
    a["coef_nb"][0] = np.inf


def _doc_counts_nan(a):
    a["doc_counts"] = np.array([np.nan, 3.0])


def _columns_float(a):
    a["columns"] = a["columns"].astype(np.float64)


TAMPERED_ARRAYS = {
    f.__name__.lstrip("_").replace("_", "-"): f
    for f in (
        _columns_beyond,
        _columns_negative,
        _columns_unsorted,
        _counts_nan,
        _counts_negative,
        _counts_negative_integers,
        _coef_inf,
        _doc_counts_nan,
        _columns_float,
    )
}


@pytest.mark.parametrize("edit", list(TAMPERED_ARRAYS.values()), ids=list(TAMPERED_ARRAYS))
def test_tampered_model_arrays_are_a_model_error(model_copy, edit):
    arrays = _arrays(_first_model_file(model_copy))
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _replace_model_file(model_copy, buf.getvalue(), **({"kind": "nblr"} if "coef_nb" in arrays else {}))
    with pytest.raises(ModelError):
        bundle.load_bundle(model_copy)
    _assert_model_error(model_copy, run=run_cli)


def test_nblr_model_with_finite_coefficients_still_loads(model_copy):
    arrays = _arrays(_first_model_file(model_copy))
    arrays["coef_plain"] = arrays["coef_nb"] = np.zeros(len(arrays["columns"]))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _replace_model_file(model_copy, buf.getvalue(), kind="nblr")
    assert bundle.load_bundle(model_copy)  # (the check of the coefficients is not what refuses them)


def test_model_file_larger_than_its_vocabulary_allows_is_refused(model_copy):
    arrays = _arrays(_first_model_file(model_copy))
    n_features = _first_entry(_manifest(model_copy))["n_features"]
    arrays["padding"] = np.zeros(8 * n_features)  # 64 bytes per feature: beyond any real model file
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _replace_model_file(model_copy, buf.getvalue())
    with pytest.raises(ModelError, match="too large"):
        bundle.load_bundle(model_copy)


def test_untampered_model_still_loads_and_scores(trained_model):
    scores = [v.score for v in SpamFilter.load(trained_model).score(["WIN a FREE iPhone now", "see you at lunch"])]
    assert all(0.0 <= s <= 1.0 for s in scores)


# ---- 3. saving over a corrupted model ---------------------------------------------------------
def _scores(path: Path) -> list[float]:
    return [v.score for v in SpamFilter.load(path).score(["WIN a FREE iPhone now", "see you at lunch"])]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "fifo", "symlink"])
def test_saving_over_a_corrupted_model_file_rewrites_it(trained_model, model_copy, tmp_path, damage):
    path = _first_model_file(model_copy)
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"not yours")
    good = path.read_bytes()
    path.unlink()
    if damage == "garbage":
        path.write_bytes(b"\0" * len(good))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(outside)
    if damage in ("garbage", "truncated"):  # (reading the others in this process could hang: see above)
        with pytest.raises(ModelError):
            bundle.load_bundle(model_copy)
    bundle.save_bundle(bundle.load_bundle(trained_model), model_copy)  # what train and learn do
    assert path.is_file() and not path.is_symlink() and path.read_bytes() == good
    assert outside.read_bytes() == b"not yours"
    assert _scores(model_copy) == _scores(trained_model)


def test_retraining_into_a_directory_with_a_corrupted_file_repairs_it(model_copy):
    victim = _first_model_file(model_copy)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    result = run_cli("train", SAMPLES / "messages.csv", "--out", model_copy, "--min-per-class", "5", timeout=60)
    assert result.code == 0, result.stderr
    assert victim.exists()  # the same data, so the same content-addressed name: it was kept before
    assert bundle.load_bundle(model_copy).contexts["content"].models


# learn reads only the manifest (its feature settings and legacy learned table): each of these
# must still be refused by learn, with exit 4 and one line, before anything is taught.
_TEACHING_FIELDS = [
    name
    for name in TAMPERED_FIELDS
    if name.startswith(("char-ngrams", "word-ngrams", "max-chars", "binary", "feature", "format", "contexts"))
    or name.startswith("learned")
]


@pytest.mark.parametrize("name", _TEACHING_FIELDS)
def test_learn_refuses_a_tampered_manifest_without_teaching(model_copy, name):
    _edit_manifest(model_copy, TAMPERED_FIELDS[name])
    result = run_cli("learn", "--model", model_copy, "--spam", "-", stdin="buy cheap pills now\n")
    assert_one_line_error(result, 4)
    assert not (model_copy / "site.sqlite").exists()


TAMPERED_SITE = {
    "gain-text": "UPDATE calibration SET gain = 'abc'",
    "gain-infinite": "UPDATE calibration SET gain = 1e308 * 10",
    "offset-huge": "UPDATE calibration SET offset = 1e6",
    "count-text": "UPDATE counts SET spam = 'x'",
    "count-negative": "UPDATE counts SET ham = -3 WHERE spam > 0",
    "count-negative-alone": "UPDATE counts SET spam = -5",  # its ham 0: not a row "with a count" either
    "counts-lost": "DELETE FROM counts",  # the lessons kept, their counts gone: not an empty layer
    "totals-negative": "INSERT INTO totals VALUES ('content', 'ham', -2)",
    "totals-text": "UPDATE totals SET n = 'abc'",
    "regression-ragged": "INSERT INTO regression VALUES ('content', 1.0, x'0100000000000000', x'0102')",
    "regression-unsorted": (
        "INSERT INTO regression VALUES ('content', 1.0, x'02000000000000000100000000000000', zeroblob(16))"
    ),
    "regression-gain-negative": "INSERT INTO regression VALUES ('content', -1.0, x'0100000000000000', zeroblob(8))",
    "regression-text": "INSERT INTO regression VALUES ('content', 1.0, 'abcdefgh', zeroblob(8))",
    "fit-version-text": "UPDATE fit_versions SET version = 'x'",
    "fit-version-real": "UPDATE fit_versions SET version = 2.5",
    "fit-version-newer": "UPDATE fit_versions SET version = 3",  # a newer spamcli's: not scored by older rules
    "decisions-text": "UPDATE calibration SET spam = 'x'",
}


@pytest.mark.parametrize("statement", list(TAMPERED_SITE.values()), ids=list(TAMPERED_SITE))
def test_tampered_site_database_is_a_model_error(model_copy, statement):
    import sqlite3

    from spamcli.learning import learn_messages

    learn_messages(model_copy, ["Win a free cruise, call 0800 123 456 now"], "spam")
    con = sqlite3.connect(model_copy / "site.sqlite")
    con.execute("INSERT INTO calibration VALUES ('content', 0.5, 1.0, 30, 30)")
    con.execute("INSERT INTO fit_versions VALUES ('content', 2)")  # as this spamcli fits
    con.execute(statement)
    con.commit()
    con.close()
    with pytest.raises(ModelError):
        bundle.load_bundle(model_copy)
    _assert_model_error(model_copy, run=run_cli)


DAMAGED_FOR_LEARN = {  # learn --spam (or --forget) on these exited 1, an internal error with a traceback
    "counts-foreign": ("DROP TABLE counts; CREATE TABLE counts (x)", "spam"),
    "columns-ragged-then-forget": ("UPDATE message_columns SET columns = x'010203'", "forget"),
    "columns-text-then-forget": ("UPDATE message_columns SET columns = 'abcd'", "forget"),
    "calibration-foreign-then-forget": ("DROP TABLE calibration; CREATE TABLE calibration (x)", "forget"),
}


@pytest.mark.parametrize(("statement", "action"), list(DAMAGED_FOR_LEARN.values()), ids=list(DAMAGED_FOR_LEARN))
def test_learn_on_a_damaged_site_database_is_a_model_error(model_copy, tmp_path, statement, action):
    import sqlite3

    from spamcli.learning import learn_messages

    text = "Win a free cruise, call 0800 123 456 now"
    learn_messages(model_copy, [text], "spam")
    con = sqlite3.connect(model_copy / "site.sqlite")
    con.executescript(statement)
    con.close()
    taught = text if action == "forget" else "Cheap watches, replica bags, order on our site today"
    (tmp_path / "one.txt").write_text(taught + "\n")
    result = run_cli("learn", "--model", model_copy, f"--{action}", tmp_path / "one.txt")
    assert_one_line_error(result, 4)
    assert "site database" in result.stderr


_LAST = "WHERE seq = (SELECT MAX(seq) FROM changes)"
TAMPERED_JOURNAL = {  # damage written after the server started, and how it is mended
    "columns-ragged": (f"UPDATE changes SET columns = x'010203' {_LAST}", None),
    "columns-text": (f"UPDATE changes SET columns = 'abcd' {_LAST}", None),
    "label-unknown": (f"UPDATE changes SET after = 'bogus' {_LAST}", "UPDATE changes SET after = 'ham' WHERE seq = ?"),
    "forget-untaught": (  # taught counts below zero: scores would be NaN
        "INSERT INTO changes (context, key, before, after, columns) VALUES ('content', 'content:x', 'spam', NULL, "
        "x'0100000002000000')",
        "DELETE FROM changes WHERE key = 'content:x'",
    ),
    "calibration-text": ("INSERT INTO calibration VALUES ('content', 'abc', 1.0, 30, 30)", "DELETE FROM calibration"),
    "regression-nan": (
        "INSERT INTO calibration VALUES ('content', 0.5, 1.0, 30, 30); INSERT INTO fit_versions VALUES ('content', 2); "
        "INSERT INTO regression VALUES ('content', 1.0, x'0100000000000000', x'000000000000f87f')",
        "DELETE FROM regression",
    ),
}


@pytest.mark.parametrize(("statement", "mend"), list(TAMPERED_JOURNAL.values()), ids=list(TAMPERED_JOURNAL))
def test_a_follower_keeps_the_last_good_layer_over_a_damaged_database_and_mends(model_copy, statement, mend, caplog):
    """A server's follower (spamcli serve) meets damage written after it started: every request
    is scored as before, one line is logged, and once the row is mended it catches up."""
    import sqlite3

    from spamcli import site
    from spamcli.learning import learn_messages

    spam = "Win a free cruise, call 0800 123 456 now"
    learn_messages(model_copy, [spam], "spam")
    loaded = bundle.load_bundle(model_copy)
    follower = site.SiteFollower(model_copy, loaded.contexts)
    try:
        before = loaded.contexts["content"].site
        learn_messages(model_copy, ["Lunch at noon tomorrow?"], "ham")
        con = sqlite3.connect(model_copy / "site.sqlite")
        seq, columns = con.execute("SELECT seq, columns FROM changes ORDER BY seq DESC LIMIT 1").fetchone()
        for one in statement.split("; "):
            con.execute(one)
        con.commit()
        for _ in range(2):
            assert follower.poll() == 0
        assert loaded.contexts["content"].site is before
        assert len([r for r in caplog.records if "site database unreadable" in r.getMessage()]) == 1
        if mend is None:
            con.execute("UPDATE changes SET columns = ? WHERE seq = ?", (columns, seq))
        else:
            con.execute(mend, (seq,) if "?" in mend else ())
        con.commit()
        con.close()
        learn_messages(model_copy, ["See you at the meeting"], "ham")
        follower.poll()
        assert follower.damage is None
        now, fresh = loaded.contexts["content"].site, bundle.load_bundle(model_copy).contexts["content"].site
        assert now.n_messages == fresh.n_messages == 3
        assert np.array_equal(now.columns, fresh.columns) and np.array_equal(now.ham, fresh.ham)
    finally:
        follower.close()


def _read_only(path: Path, on: bool) -> None:
    for item in (path, *path.iterdir()):
        mode = item.stat().st_mode
        item.chmod(mode & ~0o222 if on else mode | 0o200)


def _refused_as_another_user(monkeypatch) -> None:
    """What SQLite says to a user who may not write the model (as root, chmod alone would not do)."""
    import sqlite3

    from spamcli import site

    def refuse(path):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(site, "_open", refuse)


def test_a_taught_model_installed_read_only_scores_as_its_owner_saw_it(model_copy, monkeypatch):
    """SQLite needs write access to read a WAL database; a model nobody can change (no write bit,
    or a read-only file system) is opened as an immutable file instead, for any user."""
    from spamcli import site
    from spamcli.learning import learn_messages

    learn_messages(model_copy, ["Win a free cruise, call 0800 123 456 now"], "spam")
    probes = ["Win a free cruise today, call now", "Lunch at noon?"]
    before = [v.score for v in SpamFilter.load(model_copy).score(probes)]
    _read_only(model_copy, True)
    try:
        assert site._unchangeable(model_copy / "site.sqlite")
        _refused_as_another_user(monkeypatch)
        loaded = SpamFilter.load(model_copy)
        assert [v.score for v in loaded.score(probes)] == before
        with pytest.raises(ModelError, match="cannot teach"):
            learn_messages(model_copy, ["Lunch at noon?"], "ham")
    finally:
        _read_only(model_copy, False)


def test_a_model_others_may_change_but_this_user_may_not_write_is_a_model_error_saying_what_to_do(
    model_copy, monkeypatch
):
    from spamcli import site
    from spamcli.learning import learn_messages

    learn_messages(model_copy, ["Win a free cruise, call 0800 123 456 now"], "spam")
    _refused_as_another_user(monkeypatch)
    with pytest.raises(ModelError, match="chmod -R a-w"):
        bundle.load_bundle(model_copy)
    (model_copy / "site.sqlite-wal").write_bytes(b"\0" * 32)  # lessons not yet in the file: not immutable
    _read_only(model_copy, True)
    try:
        assert not site._unchangeable(model_copy / "site.sqlite")
        with pytest.raises(ModelError, match="not yet written into site.sqlite"):
            bundle.load_bundle(model_copy)
    finally:
        _read_only(model_copy, False)
