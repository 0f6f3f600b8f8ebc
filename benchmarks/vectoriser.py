"""Feature extraction speed: the C extension ``spamcli._speedups`` against the pure-Python code.

    python benchmarks/vectoriser.py                 # ~3 minutes: 50,000 messages, 5 runs each
    python benchmarks/vectoriser.py --quick         # 5,000 messages, 3 runs (a smoke run)
    python benchmarks/vectoriser.py --cli           # also `spamcli classify` on a 50,000-line JSONL

Both paths run in this one process on the same messages, one after the other: real texts of the
shared datasets (SMS Spam Collection, YouTube comments, tg-spam), each with a unique suffix word
(`` ref{i:x}q``, as ``benchmarks/speed.py`` makes its *distinct* stream) so no message repeats and
no whole-message cache can help. Each run builds a fresh :class:`~spamcli.text.Vectoriser`, so its
caches start empty. Timed (wall clock, median of ``--runs``):

- ``Vectoriser(FeatureSettings()).transform(texts)`` (words, word pairs, character 2-4-grams),
- ``Vectoriser(FeatureSettings(char_ngrams=None)).transform(texts)`` (words and word pairs),
- ``normalise(text[:10000])`` for each text,
- and, for reference, the default transform on the *repeated* stream (the texts as they come,
  50,000 messages hold ~7,600 distinct texts: the per-message row cache answers the repeats).

The two paths must give the same rows; the script checks it before timing. With ``--cli``:
``spamcli classify --model models/default FILE > /dev/null`` with and without
``SPAMCLI_PURE_PYTHON=1``. Results: a table on stdout and ``benchmarks/results/vectoriser.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from spamcli import text as T  # noqa: E402
from spamcli.datasets import load  # noqa: E402
from spamcli.text import FeatureSettings, Vectoriser  # noqa: E402

STREAM_SETS = ("sms_spam_collection", "youtube_spam_collection", "telegram_tgspam")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def real_texts() -> list[str]:
    texts: list[str] = []
    for name in STREAM_SETS:
        texts += [r.text for r in load(name)]
    return texts


def distinct_stream(texts: list[str], n: int) -> list[str]:
    return [f"{text} ref{i:x}q" for i, text in zip(range(n), itertools.cycle(texts))]


def repeated_stream(texts: list[str], n: int) -> list[str]:
    return [text for _, text in zip(range(n), itertools.cycle(texts))]


def timed(fn, runs: int, n: int, digits: int = 4) -> dict:
    """``fn`` run ``runs`` times: median and every wall time in seconds, and messages per second for
    ``n`` messages at the median."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "median_s": round(median, digits),
        "runs_s": [round(t, digits) for t in times],
        "msgs_per_s": round(n / median),
    }


def check_same_rows(texts: list[str]) -> None:
    """The C and the pure-Python transform give identical arrays (else the timing means nothing)."""
    for settings in (FeatureSettings(), FeatureSettings(char_ngrams=None)):
        rows = {}
        for c in (False, True):
            T.use_speedups(c)
            rows[c] = Vectoriser(settings).transform(texts)
        for name in ("indptr", "indices", "data"):
            if not np.array_equal(getattr(rows[False], name), getattr(rows[True], name)):
                raise SystemExit(f"C and Python rows differ ({name}, {settings})")


def bench_inprocess(distinct: list[str], repeated: list[str], runs: int) -> list[dict]:
    cases = [
        ("transform, default features", "distinct", lambda: Vectoriser(FeatureSettings()).transform(distinct)),
        (
            "transform, char_ngrams=None",
            "distinct",
            lambda: Vectoriser(FeatureSettings(char_ngrams=None)).transform(distinct),
        ),
        ("normalise", "distinct", lambda: [T.normalise(t[:10_000]) for t in distinct]),
        ("transform, default features", "repeated", lambda: Vectoriser(FeatureSettings()).transform(repeated)),
    ]
    results = []
    for name, stream, fn in cases:
        n = len(distinct) if stream == "distinct" else len(repeated)
        row = {"case": name, "stream": stream, "messages": n}
        for label, c in (("python", False), ("c", True)):
            T.use_speedups(c)
            log(f"{name} ({stream}), {label}: {runs} runs")
            row[label] = timed(fn, runs, n)
        row["speed_up"] = round(row["python"]["median_s"] / row["c"]["median_s"], 2)
        results.append(row)
    T.use_speedups(True)
    return results


def bench_cli(texts: list[str], n: int, runs: int, model: Path) -> list[dict]:
    script = Path(sys.executable).parent / "spamcli"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "spamcli"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "distinct.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for i, text in enumerate(distinct_stream(texts, n)):
                handle.write(json.dumps({"id": i + 1, "text": text}, ensure_ascii=False) + "\n")
        row = {"case": "spamcli classify --model models/default FILE > /dev/null", "stream": "distinct", "messages": n}
        for label, pure in (("python", "1"), ("c", "0")):
            env = {**os.environ, "SPAMCLI_PURE_PYTHON": pure}
            log(f"classify, {label}: {runs} runs")

            def classify(env=env):
                with open(os.devnull, "w") as devnull:
                    subprocess.run(
                        [*cmd, "classify", "--model", str(model), str(path)], env=env, stdout=devnull, check=True
                    )

            row[label] = timed(classify, runs, n, digits=3)
        row["speed_up"] = round(row["python"]["median_s"] / row["c"]["median_s"], 2)
        results.append(row)
    return results


def table(rows: list[dict]) -> str:
    lines = [
        f"{'case':58s} {'stream':9s} {'messages':>8s} {'python msg/s':>13s} {'C msg/s':>10s} {'speed-up':>8s}",
    ]
    for r in rows:
        lines.append(
            f"{r['case']:58s} {r['stream']:9s} {r['messages']:8,d} {r['python']['msgs_per_s']:13,d} "
            f"{r['c']['msgs_per_s']:10,d} {r['speed_up']:7.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5,000 messages, 3 runs")
    parser.add_argument("--cli", action="store_true", help="also time `spamcli classify` on a JSONL file")
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vectoriser.json")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs, args.cli_runs = 5_000, 3, 1
    if T._speedups is None:
        raise SystemExit("spamcli._speedups is not built: pip install -e . with a C compiler")

    texts = real_texts()
    distinct = distinct_stream(texts, args.messages)
    repeated = repeated_stream(texts, args.messages)
    chars = sum(map(len, distinct)) / len(distinct)
    log(f"{len(texts):,} real texts; {len(distinct):,} messages, {chars:.0f} characters on average")
    check_same_rows(distinct[:5000])
    rows = bench_inprocess(distinct, repeated, args.runs)
    if args.cli:
        rows += bench_cli(texts, args.messages, args.cli_runs, args.model)
    print(table(rows))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "commit": commit.strip(),
        "messages": args.messages,
        "runs": args.runs,
        "distinct_suffix": " ref{i:x}q",
        "sets": list(STREAM_SETS),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
