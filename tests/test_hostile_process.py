"""Hostile processes: killed workers, signals on a quiet pipe, kill -9 during a save, readers racing writers.

Every wait here is bounded: a regression fails with a timeout instead of hanging the suite. No
test sleeps for a guessed time; each waits for an observable state (an output line, a forked
worker, a temporary file) with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO, SAMPLES, cli_env, killed_at, run_cli

from spamcli.parallel import _score as _REAL_SCORE  # the original, for the stand-ins that die or hang

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

TIMEOUT = 60.0  # seconds for any one thing to happen; a hang fails here instead of blocking the suite


def _deliver_signals() -> None:
    """In a child before exec: SIGINT and SIGTERM handled by default and not blocked (a test run in
    the background, as in CI, may inherit SIGINT ignored, and Python then never sees it)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (of any of its threads)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids += [int(k) for k in handle.read().split()]
    except OSError:
        return []
    return [k for k in kids if _alive(k)]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class Classify:
    """A ``spamcli classify`` process on a pipe, in its own process group (as a shell runs a
    pipeline), whose output lines are collected by a thread."""

    def __init__(self, model: Path, *args: str, stdout=subprocess.PIPE):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spamcli", "classify", "--model", str(model), *args],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=cli_env(),
            cwd=REPO,
            start_new_session=True,
            preexec_fn=_deliver_signals,
        )
        self.lines: queue.Queue = queue.Queue()
        if stdout is subprocess.PIPE:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, *texts: str) -> bool:
        """Write lines to its stdin; False if it has stopped reading."""
        try:
            self.proc.stdin.write("".join(t + "\n" for t in texts).encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return False
        return True

    def answer(self) -> dict:
        return json.loads(self.lines.get(timeout=TIMEOUT))

    def finish(self) -> tuple[int, str]:
        """Its exit code and stderr, once it has exited (within TIMEOUT, else the test fails).
        Its stdin stays open until then: the pipe stays quiet, it does not end."""
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("classify did not exit: it hangs") from None
        finally:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        return code, self.proc.stderr.read().decode("utf-8", "replace")

    def written(self) -> list[dict]:
        out = []
        while not self.lines.empty():
            out.append(json.loads(self.lines.get_nowait()))
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def workers(self, jobs: int) -> list[int]:
        return _wait_for(lambda: (kids := _children(self.proc.pid)) and len(kids) >= jobs and kids, "the workers")


@pytest.fixture
def classify_procs():
    started: list[Classify] = []

    def start(*args, **kwargs) -> Classify:
        started.append(Classify(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()


def _assert_no_worker_left(pids: list[int]) -> None:
    _wait_for(lambda: not [p for p in pids if _alive(p)], f"the workers {pids} to exit")


# ---- 4. signals on a quiet pipe --------------------------------------------------------------
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize(
    ("signum", "to_group", "code"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143), (signal.SIGTERM, True, 143)],
    ids=["ctrl-c", "kill", "kill-group"],
)
def test_a_signal_while_classify_waits_on_a_quiet_pipe_exits_cleanly(
    trained_model, classify_procs, jobs, signum, to_group, code
):
    """Ctrl-C (SIGINT to the process group) exits 130, SIGTERM 143, with nothing on stderr: before,
    Ctrl-C on a quiet pipe gave "Fatal Python error: _enter_buffered_busy" and SIGABRT (the reader
    thread, blocked reading stdin, holds its lock while the interpreter shuts down), and SIGTERM
    killed the parent at once, its workers left behind."""
    proc = classify_procs(trained_model, "--jobs", jobs)
    assert proc.send("WIN a FREE iPhone now")
    assert proc.answer()["id"] == 1  # the model is loaded, the workers forked; now stdin is quiet
    workers = proc.workers(int(jobs)) if jobs == "2" else []
    (os.killpg if to_group else os.kill)(proc.proc.pid, signum)
    assert proc.finish() == (code, "")
    _assert_no_worker_left(workers)


# ---- 1. a worker killed with SIGKILL ---------------------------------------------------------
def test_a_worker_killed_while_the_pipe_is_quiet_ends_classify_with_exit_5(trained_model, classify_procs):
    """Before, the pool's next batch (or its shutdown) waited for the dead worker forever."""
    proc = classify_procs(trained_model, "--jobs", "2")
    assert proc.send("WIN a FREE iPhone now")
    assert proc.answer()["id"] == 1
    victim, other = proc.workers(2)[:2]
    os.kill(victim, signal.SIGKILL)
    proc.send(*["see you tomorrow"] * 10)  # may already find it gone
    code, err = proc.finish()
    assert code == 5, err
    assert err.count("\n") == 1 and err.startswith("spamcli: error: a worker process was killed by SIGKILL"), err
    assert "the output holds the first 1 records" in err
    assert proc.written() == []  # nothing after the record written before the worker died
    _assert_no_worker_left([other])


def test_a_worker_killed_in_the_middle_of_a_file_ends_classify_with_exit_5_and_the_output_in_order(
    trained_model, tmp_path, classify_procs
):
    texts = ["WIN a FREE iPhone now", "see you at the meeting on Monday", "cheap watches, click here"]
    data = tmp_path / "big.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "text": f"{texts[i % 3]} #{i}"}) + "\n" for i in range(200_000)),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as stdout:
        proc = classify_procs(trained_model, "--jobs", "2", "--batch-size", "256", str(data), stdout=stdout)
        workers = proc.workers(2)
        _wait_for(lambda: out.stat().st_size > 0, "the first output")
        assert proc.proc.poll() is None, "finished before a worker could be killed"
        os.kill(workers[0], signal.SIGKILL)
        code, err = proc.finish()
    assert code == 5, err
    assert err.count("\n") == 1 and "a worker process was killed by SIGKILL" in err, err
    lines = out.read_bytes().decode().splitlines()
    assert 0 < len(lines) < 200_000
    assert [json.loads(line)["id"] for line in lines] == list(range(len(lines)))  # whole lines, in order
    assert f"the output holds the first {len(lines)} records" in err
    _assert_no_worker_left(workers)


def test_workers_die_with_a_parent_killed_by_sigkill(trained_model, classify_procs):
    """Each worker holds the write end of its own task queue and would wait for work forever."""
    proc = classify_procs(trained_model, "--jobs", "2")
    assert proc.send("hello")
    assert proc.answer()["id"] == 1
    workers = proc.workers(2)
    proc.proc.kill()  # the parent only
    proc.proc.wait(timeout=TIMEOUT)
    _assert_no_worker_left(workers)


def _score_dying_at_3000(slim, *args):
    """parallel._score, except that the worker given the batch starting at id 3000 dies."""
    if slim[0][0] == 3000:
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_SCORE(slim, *args)


def _score_hanging_at_3000(slim, *args):
    """parallel._score, except that the worker given the batch starting at id 3000 never returns."""
    if slim[0][0] == 3000:
        threading.Event().wait()
    return _REAL_SCORE(slim, *args)


def test_the_api_raises_worker_error_after_an_in_order_prefix_of_the_output(spam_filter, monkeypatch):
    """The batches in flight with the dead one fail with it: what came out is a prefix, in order."""
    from spamcli import parallel
    from spamcli.errors import WorkerError
    from spamcli.records import Record

    monkeypatch.setattr(parallel, "_score", _score_dying_at_3000)
    records = [Record(id=i, text="free money now") for i in range(20_000)]
    got: list[dict] = []
    result: queue.Queue = queue.Queue()

    def consume() -> None:  # in a thread, so that a hang fails the test instead of blocking it
        try:
            for batch in spam_filter.classify_batches(iter(records), max_batch=1000, max_wait=None, jobs=2):
                got.extend(batch)
        except BaseException as exc:
            result.put(exc)
        else:
            result.put(None)

    threading.Thread(target=consume, daemon=True).start()
    error = result.get(timeout=TIMEOUT)
    assert isinstance(error, WorkerError), error
    assert error.exit_code == 5 and "was killed by SIGKILL" in str(error)
    assert len(got) <= 3000 and [item["id"] for item in got] == list(range(len(got)))
    assert f"the output holds the first {len(got)} records" in str(error)


def test_an_early_stop_kills_a_hung_worker_after_the_grace_period(spam_filter, monkeypatch):
    import multiprocessing

    from spamcli import parallel
    from spamcli.records import Record

    monkeypatch.setattr(parallel, "IN_FLIGHT_GRACE", 1.0)
    monkeypatch.setattr(parallel, "_score", _score_hanging_at_3000)
    records = [Record(id=i, text="free money now") for i in range(20_000)]
    batches = spam_filter.classify_batches(iter(records), max_batch=1000, max_wait=None, jobs=2)
    assert len(next(batches)) == 1000
    workers = [p for p in multiprocessing.active_children() if p.name.startswith("ForkProcess")]
    assert len(workers) == 2
    closed = threading.Thread(target=batches.close, daemon=True)
    closed.start()
    closed.join(TIMEOUT)
    assert not closed.is_alive(), "the early stop waits for the hung worker forever"
    _assert_no_worker_left([p.pid for p in workers])


# ---- 2. readers racing writers -----------------------------------------------------------------
_WRITER = """
import sys
from pathlib import Path
from spamcli.bundle import load_bundle, model_lock, save_bundle
from spamcli.learning import learn_messages

model, rounds = Path(sys.argv[1]), int(sys.argv[2])
bundle = load_bundle(model, with_site=False)
print("ready", flush=True)
for i in range(rounds):
    # digits and repeated letters are normalised away: three letters, the middle one from k-t
    name = "".join(chr(ord("ak"[k % 2]) + int(d)) for k, d in enumerate(f"{i:03d}"))
    learn_messages(model, [f"crypto signals group {name}, join today"], "spam" if i % 2 else "ham")
    for nb in bundle.contexts["content"].models.values():
        nb.doc_counts = nb.doc_counts + 1  # new contents, new file names: the old ones retire
    with model_lock(model):  # as train and learn hold it
        save_bundle(bundle, model)
"""


def test_readers_never_see_a_half_swapped_model_while_learn_and_saves_loop(model_copy):
    """Before, save_bundle deleted the replaced model's files at once, and about one load in
    fifteen during a loop of saves failed with exit 4 "model file missing"."""
    from spamcli.bundle import load_bundle
    from spamcli.errors import ModelError

    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(model_copy), "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        assert writer.stdout.readline() == b"ready\n"
        failures, loads = [], 0
        deadline = time.monotonic() + 5 * TIMEOUT
        while writer.poll() is None and time.monotonic() < deadline:
            try:
                load_bundle(model_copy)
                loads += 1
            except ModelError as exc:
                failures.append(str(exc))
        assert writer.wait(timeout=TIMEOUT) == 0, writer.stderr.read().decode()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert loads >= 20, "the writer finished before the readers got going"
    assert failures == [], f"{len(failures)} of {loads + len(failures)} loads failed: {failures[:3]}"
    assert load_bundle(model_copy).context("content").site.n_messages == 150


def test_a_reader_that_stalled_past_the_grace_period_starts_again_from_the_new_manifest(model_copy, monkeypatch):
    """A reader reads the manifest, then stalls while a writer replaces the model twice and the
    files it was about to read are removed: it loads the newest model instead of failing."""
    from spamcli import bundle

    newer = bundle.load_bundle(model_copy, with_site=False)
    real_verified_bytes = bundle._verified_bytes
    stalled = []

    def stall_once(directory, entry, *limit):
        if not stalled:
            stalled.append(entry["file"])
            for _ in range(2):
                for nb in newer.contexts["content"].models.values():
                    nb.doc_counts = nb.doc_counts + 1
                bundle.save_bundle(newer, model_copy)
                past = time.time() - bundle.RETIRED_GRACE - 1
                for path in model_copy.glob("*.npz"):
                    os.utime(path, (past, past))  # as if the reader had stalled that long
            assert not (model_copy / entry["file"]).exists()
        return real_verified_bytes(directory, entry, *limit)

    monkeypatch.setattr(bundle, "_verified_bytes", stall_once)
    loaded = bundle.load_bundle(model_copy)
    assert stalled
    docs = {lang: nb.doc_counts.tolist() for lang, nb in loaded.contexts["content"].models.items()}
    assert docs == {lang: nb.doc_counts.tolist() for lang, nb in newer.contexts["content"].models.items()}


def test_a_model_file_missing_from_the_current_manifest_is_still_exit_4(model_copy):
    from spamcli.bundle import load_bundle
    from spamcli.errors import ModelError

    sorted(model_copy.glob("*.npz"))[0].unlink()
    with pytest.raises(ModelError, match="model file missing"):
        load_bundle(model_copy)


# ---- 4. temporary files after SIGTERM and kill -9 ---------------------------------------------
def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(".*.tmp"))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_during_classify_output_removes_its_temporary_file_and_keeps_the_old_output(
    trained_model, tmp_path, classify_procs, jobs
):
    out = tmp_path / "flagged.jsonl"
    out.write_text("previous run\n")
    proc = classify_procs(trained_model, "--jobs", jobs, "--output", str(out))
    assert proc.send("WIN a FREE iPhone now", "see you tomorrow")
    _wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".*.tmp")), "the records in the temporary file")
    os.kill(proc.proc.pid, signal.SIGTERM)
    assert proc.finish() == (143, "")
    assert _temp_files(tmp_path) == []
    assert out.read_text() == "previous run\n"


def test_the_temporary_file_of_a_classify_output_killed_with_sigkill_goes_with_the_next_run(
    trained_model, tmp_path, classify_procs
):
    out = tmp_path / "flagged.jsonl"
    proc = classify_procs(trained_model, "--jobs", "2", "--output", str(out))
    assert proc.send("WIN a FREE iPhone now")
    _wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(".*.tmp")), "the records in the temporary file")
    proc.kill()
    (left,) = _temp_files(tmp_path)  # SIGKILL: nothing could remove it
    assert left.startswith(".flagged.jsonl.")
    other = tmp_path / ".other.jsonl.abc123.tmp"  # not a temporary file of this output: left alone
    other.write_text("x")
    again = run_cli("classify", "--model", trained_model, "--output", out, stdin=b"hello\n", timeout=TIMEOUT)
    assert again.code == 0, again.stderr
    assert _temp_files(tmp_path) == [other.name]
    assert len(out.read_text().splitlines()) == 1


def _save_a_changed_model(model: Path) -> None:
    from spamcli import bundle

    changed = bundle.load_bundle(model, with_site=False)
    for nb in changed.contexts["content"].models.values():
        nb.doc_counts = nb.doc_counts + 1
    bundle.save_bundle(changed, model)


@pytest.mark.parametrize(("victim", "cleaner"), [("manifest.json", "load"), (".npz", "save")])
def test_the_temporary_files_of_a_save_killed_with_sigkill_go_with_the_next_load_or_save(model_copy, victim, cleaner):
    from spamcli.bundle import load_bundle, save_bundle

    manifest = (model_copy / "manifest.json").read_bytes()
    # with the temporary file written, just before it takes its place
    assert killed_at(f"os.replace:{victim}", lambda: _save_a_changed_model(model_copy), TIMEOUT) == -signal.SIGKILL
    (left,) = _temp_files(model_copy)
    assert left.startswith(".manifest.json." if victim == "manifest.json" else ".content-")
    assert (model_copy / "manifest.json").read_bytes() == manifest  # the old model, whole
    if cleaner == "load":
        result = run_cli("classify", "--model", model_copy, stdin=b"hello\n", timeout=TIMEOUT)
        assert result.code == 0, result.stderr
    else:
        save_bundle(load_bundle(model_copy), model_copy)
    assert _temp_files(model_copy) == []


def test_a_live_writers_temporary_file_is_never_taken_for_stale(tmp_path):
    from spamcli import tempfiles

    fd, tmp = tempfiles.create(tmp_path / "manifest.json")
    try:
        tempfiles.remove_stale(tmp_path)
        assert os.path.exists(tmp)  # locked: its writer is alive
        cleaner = subprocess.run(  # another process, as another spamcli would be
            [sys.executable, "-c", f"from spamcli import tempfiles; tempfiles.remove_stale({str(tmp_path)!r})"],
            env=cli_env(),
            cwd=REPO,
            timeout=TIMEOUT,
        )
        assert cleaner.returncode == 0
        assert os.path.exists(tmp)
    finally:
        os.close(fd)
    tempfiles.remove_stale(tmp_path)  # its writer is gone without renaming it
    assert not os.path.exists(tmp)


# ---- 3. learn reads its input before it locks anything -----------------------------------------
_READ_SYSCALL = {"x86_64": "0", "aarch64": "63"}.get(platform.machine())


def _blocked_reading_stdin(pid: int) -> bool:
    """Whether the main thread of process ``pid`` is in the system call read(0, ...)."""
    try:
        with open(f"/proc/{pid}/syscall") as handle:
            number, fd = (handle.read().split() + ["", ""])[:2]
    except OSError:
        return False
    return number == _READ_SYSCALL and fd == "0x0"


@pytest.mark.skipif(_READ_SYSCALL is None, reason="read(2)'s system call number is known for x86-64 and arm64")
def test_a_learn_waiting_on_its_input_blocks_no_other_learn_or_train(model_copy):
    """``sleep 1000 | spamcli learn --spam -`` holds no lock while it waits: it reads its whole
    input first, then writes (the site database's transactions, the model lock of legacy models)."""
    slow = subprocess.Popen(
        [sys.executable, "-m", "spamcli", "learn", "--model", str(model_copy), "--spam", "-", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        slow.stdin.write(b"cheap watches from the slow producer\n")
        slow.stdin.flush()  # and its stdin stays open: it waits for more
        _wait_for(lambda: _blocked_reading_stdin(slow.pid), "the slow learn to wait on its input")
        other = run_cli("learn", "--model", model_copy, "--ham", "-", stdin="notes from the meeting\n", timeout=TIMEOUT)
        assert other.code == 0, other.stderr
        trained = run_cli(
            "train",
            "--spam",
            SAMPLES / "spam.txt",
            "--ham",
            SAMPLES / "ham.txt",
            "--out",
            model_copy,
            "--min-per-class",
            "5",
            timeout=2 * TIMEOUT,
        )
        assert trained.code == 0, trained.stderr
        assert slow.poll() is None  # still waiting for its input
        slow.stdin.close()
        assert slow.wait(timeout=TIMEOUT) == 0, slow.stderr.read()
        assert json.loads(slow.stdout.read())["learned"] == 1
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
