"""Speed, start-up, latency, memory and training-rate benchmarks for spamcli, with peers run in the
same script on the same messages (bogofilter's bulk mode, fastText's in-process predict).

    python benchmarks/speed.py                    # ~10 minutes on 2 cores
    python benchmarks/speed.py --quick            # small sizes, a smoke run (~2 minutes)
    python benchmarks/speed.py --big-train 2      # adds out-of-core training on a generated 2 GB file
    python benchmarks/speed.py --train-only --train 38k,1m --fasttext-at 38k,1m
                                                  # training time and peak RSS against bogofilter and
                                                  # fastText at 38k and 1M rows (benchmarks/train_speed.py)

Messages are real texts from the shared datasets (SMS Spam Collection, YouTube comments, tg-spam),
repeated to the size wanted. Two streams: *repeated* (the texts as they come, so whole messages
recur as in a flood; 50,000 messages hold ~7,600 distinct texts) and *distinct* (each message
gets a unique suffix word, so no message is ever seen twice: no whole-message cache can help).

The model: ``--model``, else ``$SPAMCLI_MODEL``, else ``models/default`` if present, else one
trained here on the shippable shared datasets (cached under the temp directory).
Results: ``benchmarks/results/speed.json`` and ``speed.md`` (``--out``); progress on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spamcli.datasets import REGISTRY, datasets_root, load  # noqa: E402

STREAM_SETS = ("sms_spam_collection", "youtube_spam_collection", "telegram_tgspam")
TMP = Path(tempfile.gettempdir()) / "spamcli-speed"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spamcli_cmd() -> list[str]:
    """The installed console script next to this Python, else ``python -m spamcli``."""
    script = Path(sys.executable).parent / "spamcli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "spamcli"]


def _peak_rss_mb(pid: int) -> int:
    """VmHWM (peak resident set) of a running process, in MB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (spamcli's --jobs workers), from /proc."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids += [int(k) for k in handle.read().split()]
    except OSError:
        pass
    return kids


def run(cmd: list[str], stdin: Path | bytes | None = None, env: dict | None = None, ok=(0,)) -> tuple[float, int]:
    """Run ``cmd`` with stdout to /dev/null; (wall seconds, peak RSS in MB). See :func:`run_timed`."""
    wall, peak, _cpu = run_timed(cmd, stdin, env, ok)
    return wall, peak


def run_timed(
    cmd: list[str], stdin: Path | bytes | None = None, env: dict | None = None, ok=(0,)
) -> tuple[float, int, float]:
    """Run ``cmd`` with stdout to /dev/null; (wall seconds, peak RSS in MB, CPU seconds: user +
    system of the process and of the children it waited for). On a shared machine the CPU time
    moves far less than the wall time.
    ``ok``: the exit codes that mean success (bogofilter exits 0/1/2 for spam/ham/unsure). Peak RSS
    is polled from /proc (getrusage of a child would count this script's own memory at fork): the
    sum over the process and its worker processes of each one's peak. Pages the workers share with
    the parent copy-on-write (the model) are counted once per process, so this overstates."""
    stdin_handle = open(stdin, "rb") if isinstance(stdin, Path) else subprocess.PIPE  # noqa: SIM115
    # Python caches compiled modules (.pyc) as an installed tool's would: PYTHONDONTWRITEBYTECODE (set
    # in some sandboxes) makes every start compile spamcli's modules again (~0.2 s more start-up).
    env = {key: value for key, value in (env or os.environ).items() if key != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin_handle, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if isinstance(stdin, bytes):
        proc.stdin.write(stdin)
        proc.stdin.close()
    peaks: dict[int, int] = {}
    while True:
        waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if waited:
            break
        for pid in [proc.pid, *_children(proc.pid)]:
            peaks[pid] = max(peaks.get(pid, 0), _peak_rss_mb(pid))
        time.sleep(0.005)
    peak = sum(peaks.values())
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace")
    if isinstance(stdin, Path):
        stdin_handle.close()
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-500:]}")
    return wall, peak, usage.ru_utime + usage.ru_stime


def median_run(runs: int, cmd: list[str], stdin=None, env=None, ok=(0,)) -> dict:
    walls, rss = [], []
    for _ in range(runs):
        wall, peak = run(cmd, stdin, env, ok)
        walls.append(wall)
        rss.append(peak)
    return {"median_s": statistics.median(walls), "runs_s": [round(w, 4) for w in walls], "peak_rss_mb": max(rss)}


# ---- data -----------------------------------------------------------------------------------
def stream_texts() -> list[str]:
    texts = []
    for name in STREAM_SETS:
        texts += [r.text for r in load(name)]
    return texts


def labeled_records(names=None) -> list:
    names = names or [n for n, info in REGISTRY.items() if info.shippable]
    records = []
    for name in names:
        try:
            records += [r for r in load(name) if r.label is not None and not r.error]
        except (FileNotFoundError, KeyError) as exc:
            log(f"skipping {name}: {exc}")
    return records


def write_jsonl(path: Path, texts: list[str], n: int, distinct: bool) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i, text in zip(range(n), itertools.cycle(texts)):
            if distinct:
                text = f"{text} ref{i:x}q"
            handle.write(json.dumps({"id": i + 1, "text": text}, ensure_ascii=False) + "\n")
    return path


def mbox(texts) -> bytes:
    """Minimal mbox messages for bogofilter (as in benchmarks/quality.py)."""
    parts = []
    for text in texts:
        body = "\n".join((">" + line if line.startswith("From ") else line) for line in text.splitlines())
        parts.append(
            "From spamcli@example Thu Jan  1 00:00:00 2026\nFrom: user@example\n"
            f"Content-Type: text/plain; charset=UTF-8\n\n{body}\n\n"
        )
    return "".join(parts).encode("utf-8")


def ensure_model(arg: str | None) -> Path:
    for candidate in (arg, os.environ.get("SPAMCLI_MODEL"), str(ROOT / "models" / "default")):
        if candidate and (Path(candidate) / "manifest.json").is_file():
            return Path(candidate)
    path = TMP / "model"
    if (path / "manifest.json").is_file():
        return path
    from spamcli.bundle import Bundle, save_bundle
    from spamcli.training import train_context

    records = labeled_records()
    log(f"no model given and no models/default: training one on {len(records)} records into {path}")
    ctx, _ = train_context(records)
    save_bundle(Bundle(contexts={"content": ctx}), path)
    return path


# ---- benchmarks -----------------------------------------------------------------------------
def bench_stream(model: Path, train, files: dict[str, Path], n: int, runs: int, jobs_list: list[int]) -> list[dict]:
    """spamcli (each --jobs value) and bogofilter's bulk mode on the same streams, in interleaved
    rounds: each round runs every case once, so a drift of the machine's speed (±40% here between
    runs) hits both tools alike; the ratio to bogofilter is the median of the per-round ratios."""
    env = {**os.environ, "SPAMCLI_MODEL": str(model)}
    cases = []  # (tool, stream, jobs, cmd, stdin, env, ok codes, shown command)
    for stream, path in files.items():
        for jobs in jobs_list:
            cmd = [*spamcli_cmd(), "classify", "--jobs", str(jobs), str(path)]
            shown = f"spamcli classify --jobs {jobs} {path.name} > /dev/null"
            cases.append(("spamcli", stream, jobs, cmd, None, env, (0,), shown))
    exe = shutil.which("bogofilter")
    wordlist = None
    if exe is None:
        log("bogofilter not installed: baseline skipped (apt-get install bogofilter)")
    else:
        wordlist = Path(tempfile.mkdtemp(prefix="bogo-", dir=TMP))
        spam = mbox(r.text for r in train if r.label == 1)
        ham = mbox(r.text for r in train if r.label == 0)
        subprocess.run([exe, "-d", str(wordlist), "-s", "-M"], input=spam, check=True)
        subprocess.run([exe, "-d", str(wordlist), "-n", "-M"], input=ham, check=True)
        for stream, path in files.items():
            box = path.with_suffix(".mbox")
            box.write_bytes(mbox(json.loads(line)["text"] for line in path.open(encoding="utf-8")))
            cmd = [exe, "-d", str(wordlist), "-M", "-T"]
            shown = f"bogofilter -d WORDLIST -M -T < {box.name} > /dev/null"
            cases.append(("bogofilter", stream, 1, cmd, box, None, (0, 1, 2), shown))
    walls: list[list[float]] = [[] for _ in cases]
    rss: list[int] = [0] * len(cases)
    for round_no in range(runs):
        for i, (_tool, _stream, _jobs, cmd, stdin, case_env, ok, _shown) in enumerate(cases):
            wall, peak = run(cmd, stdin, case_env, ok)
            walls[i].append(wall)
            rss[i] = max(rss[i], peak)
        times = ", ".join(f"{c[0]} {c[1]} j{c[2]} {w[-1]:.2f}s" for c, w in zip(cases, walls))
        log(f"stream round {round_no + 1}/{runs}: {times}")
    bogo_walls = {c[1]: w for c, w in zip(cases, walls) if c[0] == "bogofilter"}
    out = []
    for (tool, stream, jobs, _cmd, _stdin, _env, _ok, shown), w, peak in zip(cases, walls, rss):
        res = {"median_s": statistics.median(w), "runs_s": [round(x, 4) for x in w], "peak_rss_mb": peak}
        res.update(tool=tool, stream=stream, jobs=jobs, msgs_per_s=n / res["median_s"], command=shown)
        if stream in bogo_walls:
            ratios = [b / x for b, x in zip(bogo_walls[stream], w)]
            res["vs_bogofilter_per_round"] = [round(r, 3) for r in ratios]
            res["vs_bogofilter"] = statistics.median(ratios)
        ratio = res.get("vs_bogofilter", 0.0)
        log(f"{tool} {stream} jobs={jobs}: {res['msgs_per_s']:,.0f} msgs/s, {ratio:.2f}x bogofilter")
        out.append(res)
    if wordlist is not None:
        shutil.rmtree(wordlist, ignore_errors=True)
    return out


def bench_fasttext(train, files: dict[str, Path], n: int, runs: int) -> list[dict]:
    try:
        import fasttext
    except ImportError:
        log("fasttext not importable: baseline skipped")
        return []

    def clean(text: str) -> str:
        return " ".join(text.lower().split())

    train_file = TMP / "fasttext-train.txt"
    train_file.write_text(
        "".join(f"__label__{'spam' if r.label else 'ham'} {clean(r.text)}\n" for r in train), encoding="utf-8"
    )
    # thread >= 10: fasttext-numpy2's train_supervised yields NaN with fewer (shared/DESIGN.md)
    model = fasttext.train_supervised(str(train_file), lr=0.5, epoch=25, wordNgrams=2, dim=100, thread=10, verbose=0)
    out = []
    for stream, path in files.items():
        texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            model.predict([clean(t) for t in texts], k=1)
            walls.append(time.perf_counter() - start)
        med = statistics.median(walls)
        out.append(
            {
                "tool": "fasttext",
                "stream": stream,
                "jobs": 1,
                "median_s": med,
                "runs_s": [round(w, 4) for w in walls],
                "msgs_per_s": n / med,
                "command": "model.predict([clean(t) for t in texts], k=1)  # in-process, no I/O",
            }
        )
        log(f"fasttext {stream}: {n / med:,.0f} msgs/s")
    return out


def bench_startup(model: Path, runs: int) -> dict:
    env = {**os.environ, "SPAMCLI_MODEL": str(model)}
    cli = " ".join(spamcli_cmd())
    cases = {
        "classify_hello": (["sh", "-c", f"echo hello | {cli} classify"], "echo hello | spamcli classify"),
        "classify_hello_one_process": (
            ["sh", "-c", f"echo hello | {cli} classify --jobs 1"],
            "echo hello | spamcli classify --jobs 1",
        ),
        "help": ([*spamcli_cmd(), "--help"], "spamcli --help"),
        "python_baseline": ([sys.executable, "-c", "pass"], "python -c pass"),
    }
    out = {}
    for name, (cmd, shown) in cases.items():
        res = median_run(runs, cmd, env=env)
        res["command"] = shown
        out[name] = res
        log(f"start-up {shown}: {res['median_s'] and round(res['median_s'], 3)} s")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spamcli", "classify"],
        input=b"hello\n",
        capture_output=True,
        env=env,
    )
    heavy = ("sklearn", "pandas", "scipy", "pyarrow", "dask", "rich")
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.decode().splitlines() if "|" in line}
    out["heavy_imports_on_classify"] = sorted(m for m in heavy if m in imported)
    return out


def bench_latency(model: Path, lines: int, jobs: int | None = None) -> dict:
    """Median and worst time from writing one line to a running ``classify`` to reading its answer
    (``jobs`` None: the default, one worker per CPU)."""
    env = {**os.environ, "SPAMCLI_MODEL": str(model)}
    cmd = [*spamcli_cmd(), "classify", *([] if jobs is None else ["--jobs", str(jobs)])]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdin.write(b"warm up\n")
    proc.stdin.flush()
    proc.stdout.readline()
    times = []
    for i in range(lines):
        start = time.perf_counter()
        proc.stdin.write(f"Claim your free prize number {i} now at http://win.example\n".encode())
        proc.stdin.flush()
        proc.stdout.readline()
        times.append(time.perf_counter() - start)
        time.sleep(0.05)
    proc.stdin.close()
    proc.wait()
    result = {"median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times), "lines": lines}
    result["command"] = " ".join(["spamcli", *cmd[len(spamcli_cmd()) :]])
    median, worst = result["median_ms"], result["max_ms"]
    log(f"latency of one line ({result['command']}): median {median:.1f} ms, max {worst:.1f} ms")
    return result


def bench_memory(model: Path, texts: list[str], sizes: list[int]) -> list[dict]:
    """Peak RSS of ``classify`` over growing streams of distinct messages, in one process (``--jobs
    1``) and with the default workers (summed over the processes, see :func:`run`): flat means
    bounded."""
    env = {**os.environ, "SPAMCLI_MODEL": str(model)}
    out = []
    for n in sizes:
        path = write_jsonl(TMP / f"rss-{n}.jsonl", texts, n, distinct=True)
        for jobs in (1, 0):
            wall, peak = run([*spamcli_cmd(), "classify", "--jobs", str(jobs), str(path)], env=env)
            out.append({"messages": n, "jobs": jobs, "peak_rss_mb": peak, "wall_s": wall, "msgs_per_s": n / wall})
            log(f"memory: {n:,} distinct messages, --jobs {jobs}: peak RSS {peak} MB, {n / wall:,.0f} msgs/s")
        path.unlink()
    return out


def bench_bundle(model: Path, runs: int) -> dict:
    size = sum(p.stat().st_size for p in model.iterdir() if p.is_file())
    code = (
        "import time,sys\nt=time.perf_counter()\nfrom spamcli.bundle import load_bundle\nt1=time.perf_counter()\n"
        "b=load_bundle(sys.argv[1])\nt2=time.perf_counter()\nb.context('content').score(['hello there'])\n"
        "t3=time.perf_counter()\nprint(t1-t, t2-t1, t3-t2)"
    )
    loads, firsts = [], []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=True)
        _imp, load_s, first_s = map(float, proc.stdout.split())
        loads.append(load_s)
        firsts.append(first_s)
    res = {
        "bytes": size,
        "load_median_ms": 1000 * statistics.median(loads),
        "first_score_median_ms": 1000 * statistics.median(firsts),
        "models": sorted(p.name for p in model.glob("*.npz")),
    }
    load_ms, first_ms = res["load_median_ms"], res["first_score_median_ms"]
    log(f"bundle {size / 1e6:.1f} MB, load {load_ms:.0f} ms, first score {first_ms:.0f} ms")
    return res


def _count_chunk(texts):
    import numpy as np

    from spamcli.text import FeatureSettings, Vectoriser
    from spamcli.training import count_features

    settings = FeatureSettings(char_ngrams=None)
    rows = Vectoriser(settings).transform(texts)
    return count_features(rows, np.zeros(rows.n_rows, dtype=np.int64), settings.n_features, 2)


_TEXTS: list[str] = []


def _count_range(bounds: tuple[int, int]):
    return _count_chunk(_TEXTS[bounds[0] : bounds[1]])


def bench_training(train, runs: int, copies: int = 4) -> dict:
    """Training rates on the short-message sets, ``copies`` times over with a unique suffix per copy
    (so no cache sees a message twice): NB word counting alone (1 core, 2 processes), scikit-learn's
    HashingVectorizer + MultinomialNB on word 1-2 grams as the baseline, then the whole default
    ``train_context`` (languages, 4-fold CV, regression) on one copy."""
    import multiprocessing

    import numpy as np

    from spamcli.training import TrainOptions, train_context

    texts = [f"{r.text} ref{k}x{i:x}" for k in range(copies) for i, r in enumerate(train)]
    y = np.array([r.label for _ in range(copies) for r in train])
    res: dict = {"messages": len(texts)}
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        _count_chunk(texts)
        walls.append(time.perf_counter() - start)
    res["nb_word_counting_1_core_msgs_per_s"] = len(texts) / statistics.median(walls)
    global _TEXTS
    _TEXTS = texts  # the forked workers read their half from here: no texts are pickled
    half = len(texts) // 2
    walls = []
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for _ in range(runs):
            start = time.perf_counter()
            counts = sum(pool.map(_count_range, [(0, half), (half, len(texts))]))  # one half per process
            walls.append(time.perf_counter() - start)
    assert counts.sum() == _count_chunk(texts).sum()  # the halves add up to the whole
    res["nb_word_counting_2_procs_msgs_per_s"] = len(texts) / statistics.median(walls)
    try:
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.naive_bayes import MultinomialNB

        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            X = HashingVectorizer(ngram_range=(1, 2), alternate_sign=False, norm=None).transform(texts)
            MultinomialNB().fit(X, y)
            walls.append(time.perf_counter() - start)
        res["sklearn_hashing_nb_word_1_2grams_msgs_per_s"] = len(texts) / statistics.median(walls)
    except ImportError:
        pass
    start = time.perf_counter()
    train_context(train, TrainOptions())
    res["train_context_nblr_msgs_per_s"] = len(train) / (time.perf_counter() - start)
    res["train_context_messages"] = len(train)
    log(
        "training: NB word counting {:,.0f}/s (1 core), {:,.0f}/s (2 processes); full nblr train {:,.0f}/s".format(
            res["nb_word_counting_1_core_msgs_per_s"],
            res["nb_word_counting_2_procs_msgs_per_s"],
            res["train_context_nblr_msgs_per_s"],
        )
    )
    return res


def bench_big_train(train, gigabytes: float) -> dict:
    path = TMP / "big-train.jsonl"
    target = int(gigabytes * 1e9)
    log(f"writing {gigabytes} GB of labeled JSON lines to {path}")
    written = n = 0
    with path.open("w", encoding="utf-8") as handle:
        for rec in itertools.cycle(train):
            line = json.dumps({"text": f"{rec.text} ref{n:x}q", "label": rec.label}, ensure_ascii=False) + "\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
            n += 1
            if written >= target:
                break
    out_dir = TMP / "big-model"
    cmd = [*spamcli_cmd(), "train", str(path), "--kind", "nb", "--out-of-core", "--out", str(out_dir)]
    log(f"out-of-core training on {n:,} records ({written / 1e9:.2f} GB)")
    wall, peak = run(cmd)
    path.unlink()
    res = {"bytes": written, "records": n, "wall_s": wall, "msgs_per_s": n / wall, "peak_rss_mb": peak}
    res["command"] = f"spamcli train big-train.jsonl --kind nb --out-of-core --out big-model  # {written / 1e9:.2f} GB"
    log(f"out-of-core: {n / wall:,.0f} records/s, {written / wall / 1e6:.1f} MB/s, peak RSS {peak} MB")
    return res


# ---- report ---------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    if set(results) == {"train"}:
        from train_speed import markdown as train_markdown

        return train_markdown(results["train"], "# Training speed (`benchmarks/speed.py --train`)")
    lines = ["# Speed results", "", f"{results['machine']}", "", "## Stream throughput", ""]
    lines += ["| tool | stream | jobs | median s | msgs/s | vs bogofilter | command |", "|---|---|---|---|---|---|---|"]
    bogo = {r["stream"]: r["msgs_per_s"] for r in results.get("stream", []) if r["tool"] == "bogofilter"}
    for r in results.get("stream", []):
        if "vs_bogofilter" in r:  # median of the interleaved rounds' ratios
            ratio = f"{r['vs_bogofilter']:.2f}x"
        else:
            ratio = f"{r['msgs_per_s'] / bogo[r['stream']]:.2f}x" if r["stream"] in bogo else "-"
        lines.append(
            f"| {r['tool']} | {r['stream']} | {r['jobs']} | {r['median_s']:.2f} | {r['msgs_per_s']:,.0f} | {ratio} "
            f"| `{r['command']}` |"
        )
    lines += [
        "",
        "## Other figures",
        "",
        "```",
        json.dumps({k: v for k, v in results.items() if k not in ("stream", "train")}, indent=2),
    ]
    lines += ["```", ""]
    if "train" in results:
        from train_speed import markdown as train_markdown

        lines += [train_markdown(results["train"], "## Training: time and peak RSS against bogofilter and fastText")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rss-messages", type=int, default=1_000_000, help="0 skips the memory run")
    parser.add_argument("--big-train", type=float, default=0.0, metavar="GB", help="out-of-core training on GB")
    parser.add_argument("--jobs", default="1,0", help="--jobs values to measure classify with (0: the default)")
    parser.add_argument("--quick", action="store_true", help="10k messages, 1 run, 100k for memory")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--skip", default="", help="comma list: stream,startup,latency,memory,bundle,training")
    parser.add_argument("--train", default="", help="spamcli train vs bogofilter, fastText at sizes (38k,1m)")
    parser.add_argument("--train-only", action="store_true", help="only the --train section")
    parser.add_argument("--train-runs", type=int, default=3, help="runs per tool at 38k (1 at 1m)")
    parser.add_argument("--fasttext-at", default="38k", help="sizes at which fastText trains too (comma list)")
    parser.add_argument("--reuse", default=None, help="an earlier --train run's JSON: its rows for tools not run here")
    parser.add_argument("--levers", action="store_true", help="with --train: each lever of spamcli's training undone")
    args = parser.parse_args(argv)
    if args.train_only:
        args.skip = "stream,startup,latency,memory,bundle,training"
    if args.quick:
        args.messages, args.runs, args.rss_messages = 10_000, 1, min(args.rss_messages, 100_000)
    skip = set(filter(None, args.skip.split(",")))
    if datasets_root(None) is None:
        print("shared datasets not found (set SPAMCLI_DATASETS)", file=sys.stderr)
        return 2
    TMP.mkdir(parents=True, exist_ok=True)
    if args.train_only:
        return write_results({"train": train_results(args)}, Path(args.out), [])
    model = ensure_model(args.model)
    log(f"model {model}")
    texts = stream_texts()
    train = labeled_records(STREAM_SETS)
    n = args.messages
    files = {
        "repeated": write_jsonl(TMP / f"stream-{n}.jsonl", texts, n, distinct=False),
        "distinct": write_jsonl(TMP / f"stream-{n}-distinct.jsonl", texts, n, distinct=True),
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    results: dict = {
        "machine": f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}, "
        f"spamcli at {commit.stdout.strip()}, {n:,} messages, median of {args.runs} runs",
        "model": str(model),
    }
    if "stream" not in skip:
        jobs = [int(j) for j in args.jobs.split(",")]
        results["stream"] = bench_stream(model, train, files, n, max(args.runs, 5), jobs) + bench_fasttext(
            train, files, n, args.runs
        )
    if "startup" not in skip:
        results["startup"] = bench_startup(model, max(args.runs, 7))
    if "latency" not in skip:
        results["latency"] = bench_latency(model, 20)
        results["latency_one_process"] = bench_latency(model, 20, jobs=1)
    if "bundle" not in skip:
        results["bundle"] = bench_bundle(model, max(args.runs, 5))
    if "training" not in skip:
        results["training"] = bench_training(train, args.runs)
    if "memory" not in skip and args.rss_messages:
        results["memory"] = bench_memory(model, texts, sorted({min(n, args.rss_messages), args.rss_messages}))
    if args.big_train:
        results["big_train"] = bench_big_train(train, args.big_train)
    if args.train:
        results["train"] = train_results(args)
    return write_results(results, Path(args.out), list(files.values()))


def train_results(args) -> dict:
    """The ``--train`` section: benchmarks/train_speed.py's measurements."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import train_section

    sizes = [s for s in args.train.split(",") if s] or ["38k"]
    fasttext_at = set(filter(None, args.fasttext_at.split(",")))
    return train_section(sizes, args.train_runs, fasttext_at, levers=args.levers, reuse=args.reuse)


def write_results(results: dict, out: Path, scratch: list[Path]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    name = "speed-train" if set(results) == {"train"} else "speed"  # a --train-only run keeps speed.json
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    for path in scratch:
        path.unlink(missing_ok=True)
        path.with_suffix(".mbox").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
