"""Scale: worker processes (--jobs), out-of-core training, the Dask engine. No timing is asserted."""

from __future__ import annotations

import csv
import json
import queue
from pathlib import Path

import numpy as np
import pytest
from helpers import SAMPLES, assert_one_line_error, run_cli

from spamcli.parallel import _score as _REAL_SCORE  # the original, for a crashing stand-in
from spamcli.records import ReadOptions, read_records
from spamcli.stream import micro_batches
from spamcli.text import FeatureSettings, Vectoriser
from spamcli.training import TrainOptions, train_out_of_core


def _jsonl_lines(n: int) -> str:
    texts = (SAMPLES / "spam.txt").read_text(encoding="utf-8").splitlines()
    texts += (SAMPLES / "ham.txt").read_text(encoding="utf-8").splitlines()
    return "".join(json.dumps({"id": f"m{i}", "text": f"{texts[i % len(texts)]} #{i}"}) + "\n" for i in range(n))


def test_classify_with_two_jobs_writes_the_same_lines_as_one(trained_model):
    data = _jsonl_lines(3000) + "not json\n"
    one = run_cli("classify", "--model", trained_model, "--batch-size", "200", stdin=data)
    two = run_cli("classify", "--model", trained_model, "--batch-size", "200", "--jobs", "2", stdin=data)
    assert one.code == two.code == 0, two.stderr
    assert two.stdout == one.stdout
    assert len(two.json_lines()) == 3001
    assert "score" in two.json_lines()[-1]  # a line that is not a JSON object is a plain message


def test_negative_jobs_is_a_usage_error(trained_model):
    assert_one_line_error(run_cli("classify", "--model", trained_model, "--jobs", "-1", stdin="hi\n"), 2)


def test_micro_batches_with_idle_yields_empty_batches_while_input_is_quiet():
    feed: queue.Queue = queue.Queue()

    def items():
        while (item := feed.get()) is not None:
            yield item

    batches = micro_batches(items(), max_batch=10, max_wait=0.001, idle=0.001)
    feed.put("a")
    assert next(batches) == ["a"]
    assert next(batches) == []  # nothing arrives: an empty batch instead of blocking
    feed.put("b")
    feed.put(None)
    rest = [b for b in batches if b]
    assert rest == [["b"]]


def _labeled_records():
    return list(read_records(str(SAMPLES / "messages.csv"), ReadOptions(need_label=True)))


def test_out_of_core_counts_equal_naive_bayes_fitted_on_all_rows_at_once():
    from sklearn.naive_bayes import MultinomialNB

    records = _labeled_records() * 3  # repeats across chunks: counted again, as in one pass
    settings = FeatureSettings(char_ngrams=None)
    opts = TrainOptions(settings=settings, kind="nb", dedupe=False)
    ctx, report = train_out_of_core(records, opts, chunk_size=17)
    model = ctx.models["multi"]
    assert model.kind == "nb" and report.records_read == len(records)
    rows = Vectoriser(settings).transform([r.text for r in records]).to_scipy()
    y = np.array([r.label for r in records])
    reference = MultinomialNB(alpha=0.1, fit_prior=False).fit(rows, y)
    np.testing.assert_array_equal(model.counts, reference.feature_count_[:, model.columns])
    np.testing.assert_array_equal(model.doc_counts, reference.class_count_)
    assert 0.0 <= report.thresholds.ham <= report.thresholds.spam <= 1.0


def test_train_out_of_core_writes_a_model_that_classifies(tmp_path):
    out = tmp_path / "model"
    result = run_cli(
        "train", SAMPLES / "messages.csv", "--out", out, "--kind", "nb", "--out-of-core", "--chunk-size", "10"
    )
    assert result.code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["kind"] for e in manifest["contexts"]["content"]["models"].values()} == {"nb"}
    scored = run_cli("classify", "--model", out, stdin="WIN a FREE iPhone now\n")
    assert scored.code == 0 and scored.json_lines()[0]["model"] == "multi"


@pytest.mark.parametrize(
    "args",
    [
        ["--out-of-core"],  # needs --kind nb
        ["--kind", "svm"],
        ["--engine", "spark"],
        ["--scheduler", "tcp://127.0.0.1:1"],  # without --engine dask
    ],
)
def test_train_option_combinations_that_cannot_work_are_usage_errors(tmp_path, args):
    assert_one_line_error(run_cli("train", SAMPLES / "messages.csv", "--out", tmp_path / "m", *args), 2)


def _partition(tmp_path: Path) -> list[Path]:
    rows = list(csv.DictReader((SAMPLES / "messages.csv").open(encoding="utf-8")))
    parts = []
    for k in range(3):
        path = tmp_path / "parts" / f"part-{k}.csv"
        path.parent.mkdir(exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows[k::3])
        parts.append(path)
    return parts


@pytest.mark.slow
@pytest.mark.parametrize("max_rows", ["0", "40"])  # every row; NB counts over all, the regression on 40
def test_dask_engine_on_a_local_cluster_trains_and_classifies_exactly_as_the_local_path(tmp_path, max_rows):
    pytest.importorskip("dask.distributed")
    parts = _partition(tmp_path)
    models = {}
    for engine in ("local", "dask"):
        out = tmp_path / f"model-{engine}"
        inputs = parts if engine == "local" else [tmp_path / "parts"]
        args = ["--engine", engine, "--out", out, "--min-per-class", "5", "--max-rows", max_rows]
        result = run_cli("train", *inputs, *args)
        assert result.code == 0, result.stderr
        assert ("sample of 40" in " ".join(result.stderr.split())) == (max_rows == "40")
        models[engine] = json.loads((out / "manifest.json").read_text())["contexts"]["content"]["models"]
    assert {k: v["sha256"] for k, v in models["dask"].items()} == {k: v["sha256"] for k, v in models["local"].items()}

    local = run_cli("classify", *parts, "--model", tmp_path / "model-local")
    pattern = str(tmp_path / "parts" / "part-*.csv")
    dask = run_cli("classify", "--engine", "dask", pattern, "--model", tmp_path / "model-local")
    assert dask.code == local.code == 0, dask.stderr
    assert dask.stdout == local.stdout
    assert len(dask.json_lines()) == 64


def _waits_on_an_event(thread) -> bool:
    """Whether ``thread`` is blocked in a ``threading`` wait (an Event's or a Condition's)."""
    import sys
    import threading

    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_micro_batches_reader_pauses_while_the_queue_is_full():
    import threading
    import time

    from spamcli.stream import READER_THREAD

    pulled = 0
    done = threading.Event()

    def items():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield i
        done.set()

    batches = micro_batches(items(), max_batch=10, max_wait=0.001)
    assert next(batches) == list(range(10))
    # the consumer is busy: the reader must stop near 4 * max_batch waiting items, and wait there
    (reader,) = [t for t in threading.enumerate() if t.name == READER_THREAD]
    deadline = time.monotonic() + 60
    while not _waits_on_an_event(reader):
        assert time.monotonic() < deadline and not done.is_set(), f"the reader went on: {pulled} items pulled"
        time.sleep(0.001)
    assert not done.is_set() and pulled <= 10 + 4 * 10 + 2
    rest = [x for batch in batches for x in batch]
    assert rest == list(range(10, 10_000))  # and nothing is lost once the consumer goes on


def test_micro_batches_without_max_wait_reads_full_batches_in_this_thread():
    import threading

    threads = threading.active_count()
    seen_threads = []

    def items():
        for i in range(25):
            seen_threads.append(threading.active_count())
            yield i

    batches = list(micro_batches(items(), max_batch=10, max_wait=None))
    assert batches == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert set(seen_threads) == {threads}  # no reader thread was started


@pytest.mark.parametrize("fmt", ["jsonl", "text", "auto"])
def test_a_file_and_a_pipe_with_and_without_workers_give_the_same_lines(trained_model, tmp_path, fmt):
    """The reading process parses lines itself (--jobs 1) or leaves them to the workers (lines from
    a pipe, blocks of bytes from a file): same output, bad lines included (BOM, CRLF, broken JSON,
    empty, invalid UTF-8, too long, no final newline); ``auto`` sniffs JSON lines in a .txt file."""
    lines = _jsonl_lines(2500).splitlines()
    if fmt == "text":
        lines = [json.loads(line)["text"] for line in lines]
    data = "\ufeff".encode() + "\n".join(lines[:1000]).encode() + b"\r\nnot json\n\n\xff\xfe bad\n"
    data += ("x" * 3000).encode() + b"\n" + "\n".join(lines[1000:]).encode()  # no final newline
    path = tmp_path / ("messages.txt" if fmt == "auto" else f"messages.{fmt}")
    path.write_bytes(data)
    args = ("classify", "--model", trained_model, "--batch-size", "300", "--max-bytes", "2000", "--format", fmt)
    runs = [run_cli(*args, "--jobs", "1", path)]
    runs += [run_cli(*args, "--jobs", "2", path), run_cli(*args, "--jobs", "2", stdin=data)]
    runs += [run_cli(*args, "--jobs", "1", stdin=data)]
    assert all(r.code == 0 for r in runs), runs[0].stderr
    assert all(r.stdout == runs[0].stdout for r in runs[1:])
    out = runs[0].json_lines()
    assert len(out) == 2504
    errors = [item["error"] for item in out if "error" in item]
    assert any("longer than 2000 bytes" in e for e in errors) and any("UTF-8" in e for e in errors)


def test_micro_batches_of_zero_still_hand_over_every_item():
    assert list(micro_batches(iter(range(5)), max_batch=0, max_wait=0.01)) == [[0], [1], [2], [3], [4]]
    assert list(micro_batches(iter(range(3)), max_batch=0, max_wait=None)) == [[0], [1], [2]]


def test_batch_size_below_one_is_a_usage_error(trained_model):
    assert_one_line_error(run_cli("classify", "--model", trained_model, "--batch-size", "0", stdin="hi\n"), 2)


def test_ctrl_c_stops_the_workers_without_a_traceback(trained_model, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import threading

    from helpers import REPO, cli_env

    big = tmp_path / "big.jsonl"
    big.write_text(_jsonl_lines(3000) * 100, encoding="utf-8")  # 300,000 lines: many seconds of work
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamcli", "classify", "--model", str(trained_model), "--jobs", "2", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
        start_new_session=True,  # its own process group, as a shell gives a pipeline
        # as from a terminal: a test run in the background (CI) may inherit SIGINT ignored or
        # blocked, and Python then never sees it
        preexec_fn=_deliver_sigint,
    )
    scored = threading.Event()

    def drain() -> None:  # stdout is read all along, so that its writer never waits on the pipe
        for _ in proc.stdout:
            scored.set()

    threading.Thread(target=drain, daemon=True).start()
    # the first output line: both workers are forked and busy with the rest of the batches
    assert scored.wait(60), "no output from classify"
    assert len(_children(proc.pid)) == 2
    assert proc.poll() is None, "finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "ForkProcess" not in err, err


def _deliver_sigint() -> None:
    """In a child before exec: SIGINT handled by default and not blocked."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _children(pid: int) -> list[int]:

    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return handle.read().split()
    except OSError:
        return []


def test_the_api_scores_file_blocks_in_workers_also_when_batches_wait(spam_filter, tmp_path):
    """score_in_workers with transport.read_raw(blocks=True) and a micro-batch wait: several blocks
    may share a batch; every one is split and scored, as in one process."""
    from spamcli import transport
    from spamcli.parallel import score_in_workers

    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl_lines(300), encoding="utf-8")
    opts = ReadOptions()
    transport.BLOCK_BYTES, saved = 512, transport.BLOCK_BYTES  # many small blocks
    try:
        items = list(transport.read_raw(str(path), opts, blocks=True))
    finally:
        transport.BLOCK_BYTES = saved
    assert len(items) > 10
    two = [d for b in score_in_workers(spam_filter, iter(items), 0, 2, 1024, 0.01, opts) for d in b]
    one = [d for b in spam_filter.classify_batches(read_records(str(path), opts)) for d in b]
    assert two == one and len(one) == 300


def test_a_consumer_stopping_early_lets_the_workers_finish_and_exit_unkilled(spam_filter):
    """classify | head -1: the batches still in flight are finished and the workers exit on their
    own, not killed (with multiprocessing.Pool, terminate() could hit one holding the lock of the
    results pipe, after which it waited forever for the pool's task-handler thread)."""
    import multiprocessing

    from spamcli.records import Record

    texts = _jsonl_lines(200).splitlines()
    records = [Record(id=i, text=texts[i % len(texts)]) for i in range(20_000)]
    batches = spam_filter.classify_batches(iter(records), max_batch=1000, max_wait=None, jobs=2)
    assert len(next(batches)) == 1000
    workers = [p for p in multiprocessing.active_children() if p.name.startswith("ForkProcess")]
    assert len(workers) == 2
    batches.close()  # with batches still being scored: this is where the pool shuts down
    assert [p.exitcode for p in workers] == [0, 0]  # not -SIGTERM


def _score_crashing_on_the_fourth_batch(slim, *args):
    """parallel._score, except that the worker scoring the batch starting at id 3000 dies."""
    import os
    import signal

    if slim[0][0] == 3000:
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_SCORE(slim, *args)


def test_an_early_stop_with_a_dead_worker_gives_up_after_the_grace_period(spam_filter, monkeypatch):
    """A batch whose worker died never finishes: an early stop does not wait for it forever (the
    pool fails the batches of a dead worker; a hung one is killed after IN_FLIGHT_GRACE)."""
    import contextlib
    import time

    from spamcli import parallel
    from spamcli.errors import WorkerError
    from spamcli.records import Record

    monkeypatch.setattr(parallel, "IN_FLIGHT_GRACE", 1.0)
    monkeypatch.setattr(parallel, "_score", _score_crashing_on_the_fourth_batch)
    records = [Record(id=i, text="free money now") for i in range(20_000)]
    batches = spam_filter.classify_batches(iter(records), max_batch=1000, max_wait=None, jobs=2)
    # the pool may see the death before the first batch comes back: it fails them all
    with contextlib.suppress(WorkerError):
        assert len(next(batches)) == 1000
    start = time.monotonic()
    batches.close()
    assert time.monotonic() - start < 30  # before: forever


def test_small_input_is_only_input_known_to_be_whole_and_small(tmp_path, monkeypatch):
    """By default (--jobs 0) workers are started unless the input is known to be a few lines."""
    import io
    import os
    import sys

    from spamcli.stream import SMALL_INPUT, small_input

    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("hi\n")
    big.write_bytes(b"x\n" * SMALL_INPUT)
    assert small_input(str(small)) and not small_input(str(big)) and not small_input(str(tmp_path / "none"))
    read, write = os.pipe()
    try:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(read, closefd=False)))
        os.write(write, b"hi\n")
        assert not small_input("-")  # its writer may add more
        os.close(write)
        write = -1
        assert small_input("-")  # closed, 3 bytes in it
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    with open(big, "rb") as handle:
        monkeypatch.setattr(sys, "stdin", handle)
        assert not small_input("-")
        handle.seek(len(b"x\n") * (SMALL_INPUT // 2))
        assert small_input("-")  # what is left to read of it
