"""``spamcli classify`` end to end: the JSON-lines contract, bad records, bad models, pipes, streaming."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import pytest
from helpers import REPO, SAMPLES, assert_one_line_error, cli_env, run_cli, run_cli_process

MESSAGES = [
    "WIN a FREE iPhone now!!! claim your prize at http://prize.example",
    "Are we still meeting for lunch tomorrow?",
    "¿Quedamos mañana para tomar un café?",
    "Schnelle Kredite ohne Schufa, jetzt Geld erhalten",
    "这是一个测试 免费领取",
]


def _classify(model, *args, stdin: bytes | str = b"", run=run_cli) -> list[dict]:
    result = run("classify", "--model", model, *args, stdin=stdin)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    return result.json_lines()


def _assert_verdict(item: dict) -> None:
    assert set(item) == {"id", "score", "label", "lang", "model"}
    assert 0.0 <= item["score"] <= 1.0
    assert item["label"] in ("spam", "unsure", "ham")
    assert isinstance(item["lang"], str)
    assert isinstance(item["model"], str) and item["model"]


def test_classify_writes_one_json_line_per_record_in_order_with_contract_fields(trained_model):
    out = _classify(trained_model, stdin="\n".join(MESSAGES) + "\n", run=run_cli_process)  # end to end
    assert [item["id"] for item in out] == [1, 2, 3, 4, 5]
    for item in out:
        _assert_verdict(item)
    assert out[0]["score"] > out[1]["score"]
    assert out[0]["label"] == "spam"


def test_classify_uses_id_field_of_json_lines_and_record_number_otherwise(trained_model):
    lines = [
        json.dumps({"id": "a-17", "text": MESSAGES[0]}),
        json.dumps({"text": MESSAGES[1]}),
        json.dumps({"id": 99, "text": MESSAGES[2], "lang": "es"}),
    ]
    out = _classify(trained_model, stdin="\n".join(lines) + "\n")
    assert [item["id"] for item in out] == ["a-17", 2, 99]
    assert out[2]["lang"] == "es"
    for item in out:
        _assert_verdict(item)


def test_classify_reads_files_given_as_arguments_by_extension(trained_model):
    out = _classify(trained_model, SAMPLES / "messages.jsonl", SAMPLES / "messages.csv")
    assert len(out) == 16 + 64
    assert [item["id"] for item in out[:3]] == ["m1", "m2", "m3"]
    assert [item["id"] for item in out[16:19]] == [1, 2, 3]


def test_classify_explain_adds_lang_confidence_and_reasons(trained_model):
    out = _classify(trained_model, "--explain", "--top", "3", stdin=MESSAGES[0] + "\n")
    (item,) = out
    assert 0.0 <= item["lang_confidence"] <= 1.0
    assert 1 <= len(item["reasons"]) <= 3
    for reason in item["reasons"]:
        assert isinstance(reason["token"], str) and isinstance(reason["weight"], float)
    weights = [abs(r["weight"]) for r in item["reasons"]]
    assert weights == sorted(weights, reverse=True)


def test_classify_threshold_options_override_the_labels_not_the_scores(trained_model):
    stdin = "\n".join(MESSAGES) + "\n"
    default = _classify(trained_model, stdin=stdin)
    all_spam = _classify(trained_model, "--ham-threshold", "0", "--spam-threshold", "0", stdin=stdin)
    all_unsure = _classify(trained_model, "--ham-threshold", "0", "--spam-threshold", "1.01", stdin=stdin)
    assert [i["score"] for i in all_spam] == [i["score"] for i in default]
    assert {i["label"] for i in all_spam} == {"spam"}
    assert {i["label"] for i in all_unsure} == {"unsure"}


def test_classify_ham_threshold_above_spam_threshold_is_a_usage_error(trained_model):
    result = run_cli(
        "classify", "--model", trained_model, "--ham-threshold", "0.9", "--spam-threshold", "0.5", stdin="hi\n"
    )
    assert_one_line_error(result, 2)


# ---- bad records: one error record each, the stream goes on ---------------------------------
def test_bad_text_lines_yield_error_records_and_stream_continues(trained_model):
    lines = [
        b"free money, click now",
        b"invalid \xff\xfe utf-8",
        b"",
        b"   ",
        b"x" * 2_000_000,
        b"see you tomorrow",
    ]
    out = _classify(trained_model, stdin=b"\n".join(lines) + b"\n")
    assert len(out) == len(lines)
    assert [item["id"] for item in out] == [1, 2, 3, 4, 5, 6]
    errors = {item["id"]: item["error"] for item in out if "error" in item}
    assert set(errors) == {2, 3, 4, 5}
    assert "UTF-8" in errors[2]
    assert "empty" in errors[3] and "empty" in errors[4]
    assert "1000000 bytes" in errors[5]
    for k in errors:
        assert set(out[k - 1]) == {"id", "error"}
    _assert_verdict(out[0])
    _assert_verdict(out[5])


def test_bad_json_line_yields_error_record_and_stream_continues(trained_model):
    lines = [
        json.dumps({"id": "ok1", "text": "free money, click now"}).encode(),
        b'{"id": "broken", "text": ',
        json.dumps({"id": "notext", "body_html": "hello"}).encode(),
        b"[1, 2, 3]",
        b"",
        b'{"id": "bad-utf8", "text": "\xff"}',
        json.dumps({"id": "big", "text": "y" * 2_000_000}).encode(),
        json.dumps({"id": "ok2", "text": "see you tomorrow"}).encode(),
    ]
    out = _classify(trained_model, stdin=b"\n".join(lines) + b"\n")
    assert len(out) == len(lines)
    assert [item["id"] for item in out] == ["ok1", 2, "notext", 4, 5, 6, 7, "ok2"]
    assert "invalid JSON" in out[1]["error"]
    assert "no text field" in out[2]["error"]
    _assert_verdict(out[3])  # not a JSON object: a plain message, decided line by line
    assert "empty" in out[4]["error"]
    assert "UTF-8" in out[5]["error"]
    assert "bytes" in out[6]["error"]
    for k in (1, 2, 4, 5, 6):
        assert set(out[k]) == {"id", "error"}
    _assert_verdict(out[0])
    _assert_verdict(out[7])


def test_hostile_json_lines_give_only_their_own_error_record_with_and_without_workers(trained_model):
    lines = [
        json.dumps({"id": "ok1", "text": "free money, click now"}).encode(),
        b'{"id": 1, "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError in the parser
        b'{"id": ' + b"7" * 5000 + b', "text": "hi"}',  # more digits than Python converts
        json.dumps({"id": {"nested": 1}, "text": "hi"}).encode(),
        json.dumps({"id": "list", "text": ["a", "b"]}).encode(),
        json.dumps({"id": "ok2", "text": "see you tomorrow"}).encode(),
    ]
    for jobs in ("1", "2"):
        out = _classify(trained_model, "--jobs", jobs, stdin=b"\n".join(lines) + b"\n")
        assert [item["id"] for item in out] == ["ok1", 2, 3, 4, "list", "ok2"], jobs
        assert "nested too deeply" in out[1]["error"]
        assert "invalid JSON" in out[2]["error"]
        assert "not a string or a number" in out[3]["error"]
        assert "not text" in out[4]["error"]
        _assert_verdict(out[0])
        _assert_verdict(out[5])


def test_format_is_decided_per_line_so_a_plain_first_line_does_not_blind_the_stream(trained_model):
    lines = [b"ham;hi there", b'{"id": "j1", "text": "free money, click now"}', b"{not json", b"plain again"]
    out = _classify(trained_model, stdin=b"\n".join(lines) + b"\n")
    assert [item["id"] for item in out] == [1, "j1", 3, 4]
    for k in (0, 1, 3):
        _assert_verdict(out[k])
    assert "invalid JSON" in out[2]["error"]


def test_max_bytes_option_raises_the_line_limit(trained_model):
    text = "free money " * 150_000  # ~1.6 MB
    out = _classify(trained_model, "--max-bytes", "2000000", stdin=text + "\nhello\n")
    assert len(out) == 2
    assert "error" not in out[0]


def test_classify_empty_input_exits_3(trained_model):
    result = run_cli("classify", "--model", trained_model, stdin=b"")
    assert_one_line_error(result, 3)


def test_classify_input_with_no_readable_record_writes_error_records_then_exits_3(trained_model):
    result = run_cli("classify", "--model", trained_model, stdin=b"\n\n\xff\n")
    assert result.code == 3
    assert len(result.json_lines()) == 3
    assert all("error" in item for item in result.json_lines())
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_classify_missing_input_file_exits_3(trained_model, tmp_path):
    result = run_cli("classify", "--model", trained_model, tmp_path / "missing.txt")
    assert_one_line_error(result, 3)


# ---- bad models: exit 4, one line, no traceback ---------------------------------------------
def test_classify_with_missing_model_dir_exits_4(tmp_path):
    result = run_cli("classify", "--model", tmp_path / "no-model", stdin="hello\n")
    assert_one_line_error(result, 4)
    assert "model directory not found" in result.stderr


def test_model_path_that_is_a_file_says_so(tmp_path):
    (tmp_path / "one.txt").write_text("hello\n")
    for command in (["classify"], ["learn", "--ham", str(tmp_path / "one.txt")]):
        result = run_cli(*command, "--model", tmp_path / "one.txt", stdin="hello\n")
        assert_one_line_error(result, 4)
        assert "model path is not a directory" in result.stderr


def test_classify_with_dir_that_is_not_a_model_exits_4(tmp_path):
    result = run_cli("classify", "--model", tmp_path, stdin="hello\n")
    assert_one_line_error(result, 4)


def _corrupt_manifest(model):
    (model / "manifest.json").write_bytes(b'{"format": "spamcli-model", "format_version": 1, "contexts": {')


def _truncate_manifest_fields(model):
    manifest = json.loads((model / "manifest.json").read_text())
    del manifest["contexts"]["content"]["thresholds"]
    (model / "manifest.json").write_text(json.dumps(manifest))


def _newer_format(model):
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["format_version"] = 99
    (model / "manifest.json").write_text(json.dumps(manifest))


def _tamper_npz(model):
    path = sorted(model.glob("*.npz"))[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete_npz(model):
    sorted(model.glob("*.npz"))[0].unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_manifest, "corrupt model manifest"),
        (_truncate_manifest_fields, "malformed"),
        (_newer_format, "format version 99"),
        (_tamper_npz, "sha256 mismatch"),
        (_delete_npz, "model file missing"),
    ],
)
def test_classify_with_damaged_model_exits_4_with_one_line(model_copy, damage, message):
    damage(model_copy)
    result = run_cli("classify", "--model", model_copy, stdin="hello\n")
    assert_one_line_error(result, 4)
    assert message in result.stderr


# ---- pipes and streaming --------------------------------------------------------------------
def test_classify_into_closed_pipe_ends_quietly(trained_model):
    spamcli = f"{sys.executable} -m spamcli classify --model {trained_model}"
    status = 'echo "spamcli exit ${PIPESTATUS[2]}" >&2'
    proc = subprocess.run(
        ["bash", "-c", f'yes "free money" | head -5000 | {spamcli} | head -1; {status}'],
        capture_output=True,
        env=cli_env(),
        cwd=REPO,
        timeout=120,
    )
    assert proc.stderr == b"spamcli exit 0\n"  # nothing else on stderr, and success, as documented
    (line,) = proc.stdout.decode().splitlines()
    assert json.loads(line)["id"] == 1


class _ClosedPipe:
    """A stdout whose reader has gone away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        import io

        raise io.UnsupportedOperation("no file descriptor")


def test_classify_into_closed_pipe_stops_its_workers_before_it_exits(trained_model, monkeypatch):
    """The worker pool is shut down while classify unwinds, not whenever the interpreter gets to
    the abandoned generator (at teardown multiprocessing would kill the workers, which can hang)."""
    import io
    import multiprocessing

    from spamcli.cli import main

    data = ("free money\n" * 20_000).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # as main() sets it; undone after the test
    with pytest.raises(SystemExit) as exit_info:  # holds the traceback, and with it classify's frames
        main(["classify", "--model", str(trained_model), "--jobs", "2"])
    assert exit_info.value.code == 0
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("ForkProcess")]


def test_classify_streams_each_line_before_the_next_is_written(trained_model):
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamcli", "classify", "--model", str(trained_model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        for number, text in enumerate(MESSAGES[:3], start=1):
            proc.stdin.write(text.encode() + b"\n")
            proc.stdin.flush()
            answer = json.loads(lines.get(timeout=20))  # arrives while stdin is still open
            assert answer["id"] == number
            assert answer["label"] in ("spam", "unsure", "ham")
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
