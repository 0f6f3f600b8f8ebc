"""Training time and peak memory of ``spamcli train`` against bogofilter and fastText, in one run.

    python benchmarks/speed.py --train-only --train 38k,1m --fasttext-at 38k,1m   # what it is run by
    python benchmarks/train_speed.py                       # 38k rows, plus the levers (~5 minutes)
    python benchmarks/train_speed.py --sizes 38k,1m        # adds the 1,000,000-row export
    python benchmarks/train_speed.py --sizes 1m --fasttext-at 1m --tools fasttext --no-levers \
        --out /tmp/ft1m                                    # fastText alone at 1M (~25+ min), then
    python benchmarks/speed.py --train-only --train 38k,1m --reuse /tmp/ft1m/train_speed.json
                                                           # the rest, with that fastText row marked

Data: every labeled record of ``../shared/datasets`` (38,069 rows, 12 sets, 40+ languages), as
JSON lines; the 1M file repeats them with a unique suffix word per row (``ref<k>x<i>``), so no two
rows are the same text and de-duplication cannot shrink it. The same rows go to every tool:
- spamcli: ``spamcli train FILE --out DIR`` (the whole default model: languages, 4-fold
  cross-validation, per-language nblr, calibration, thresholds; past ``--max-rows`` 200,000 clean
  rows the Naive Bayes counts take every row and the regression, calibration and thresholds a
  uniform random sample of 200,000);
- bogofilter: ``bogofilter -s`` on an mbox of the spam and ``-n`` on one of the ham (word counts
  only: the floor of what a filter can do);
- fastText supervised as the issue defines it: word bigrams, char 2-5 n-grams, 25 epochs, 2 threads.
Each runs as its own process; wall time and peak RSS (polled from /proc) per run, median of
``--runs``. ``--levers`` also trains in this process with each lever of spamcli's training turned
back one at a time (regression passes 150, one thread, scikit-learn's liblinear instead of the C
solver), so what each one gives shows. Results: ``benchmarks/results/train_speed.{json,md}``.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from speed import TMP, labeled_records, log, mbox, run_timed, spamcli_cmd  # noqa: E402

from spamcli.datasets import REGISTRY, datasets_root  # noqa: E402

SIZES = {"38k": None, "1m": 1_000_000}
FASTTEXT = (
    "import fasttext, sys; "
    "fasttext.train_supervised(sys.argv[1], wordNgrams=2, minn=2, maxn=5, epoch=25, thread=2, verbose=0)"
)


def write_inputs(records: list, size: str) -> dict[str, Path]:
    """The JSON lines, mbox and fastText files of one size."""
    n = SIZES[size] or len(records)
    base = TMP / f"train-{size}"
    paths = {
        k: base.with_suffix(s)
        for k, s in (("jsonl", ".jsonl"), ("spam", ".spam.mbox"), ("ham", ".ham.mbox"), ("fasttext", ".ft.txt"))
    }
    if all(p.exists() for p in paths.values()):
        return paths
    log(f"writing the {n:,}-row inputs under {TMP}")
    with (
        paths["jsonl"].open("w", encoding="utf-8") as jl,
        paths["fasttext"].open("w", encoding="utf-8") as ft,
        paths["spam"].open("wb") as spam,
        paths["ham"].open("wb") as ham,
    ):
        for i, rec in zip(range(n), itertools.cycle(records)):
            text = rec.text if SIZES[size] is None else f"{rec.text} ref{i // len(records)}x{i:x}"
            row = {"text": text, "label": "spam" if rec.label else "ham"}
            jl.write(json.dumps(row, ensure_ascii=False) + "\n")
            ft.write(f"__label__{row['label']} {' '.join(text.split())}\n")
            (spam if rec.label else ham).write(mbox([text]))
    return paths


def bench_size(size: str, paths: dict[str, Path], runs: int, fasttext: bool, tools: set[str]) -> list[dict]:
    n = sum(1 for _ in paths["jsonl"].open(encoding="utf-8"))
    out_dir = TMP / f"model-{size}"
    cases = []
    if "spamcli" in tools:
        cases.append(("spamcli", [[*spamcli_cmd(), "train", str(paths["jsonl"]), "--out", str(out_dir)]]))
    if "bogofilter" not in tools:
        pass
    elif shutil.which("bogofilter"):
        wordlist = TMP / f"bogofilter-{size}"
        cases.append(
            (
                "bogofilter",
                [
                    ["bogofilter", "-d", str(wordlist), "-M", "-s", "-I", str(paths["spam"])],
                    ["bogofilter", "-d", str(wordlist), "-M", "-n", "-I", str(paths["ham"])],
                ],
            )
        )
    else:
        log("bogofilter not installed: skipped (apt-get install bogofilter)")
    if fasttext and "fasttext" in tools:
        cases.append(("fasttext", [[sys.executable, "-c", FASTTEXT, str(paths["fasttext"])]]))
    results = []
    walls: dict[str, list[float]] = {tool: [] for tool, _ in cases}
    cpus: dict[str, list[float]] = {tool: [] for tool, _ in cases}
    peaks: dict[str, int] = dict.fromkeys(walls, 0)
    for round_ in range(runs):  # interleaved, so a slow spell of the machine hits every tool alike
        for tool, commands in cases:
            if tool == "bogofilter":
                shutil.rmtree(TMP / f"bogofilter-{size}", ignore_errors=True)
                (TMP / f"bogofilter-{size}").mkdir()
            total = cpu_total = 0.0
            for cmd in commands:
                wall, peak, cpu = run_timed(cmd)
                total += wall
                cpu_total += cpu
                peaks[tool] = max(peaks[tool], peak)
            walls[tool].append(total)
            cpus[tool].append(cpu_total)
            log(f"{size} round {round_ + 1}: {tool} {total:.1f} s ({cpu_total:.1f} s CPU), peak RSS {peaks[tool]} MB")
    for tool, _ in cases:
        med = statistics.median(walls[tool])
        results.append(
            {
                "size": size,
                "rows": n,
                "tool": tool,
                "median_s": round(med, 2),
                "runs_s": [round(w, 2) for w in walls[tool]],
                "cpu_s": round(statistics.median(cpus[tool]), 2),
                "peak_rss_mb": peaks[tool],
            }
        )
    return results


def with_shares(rows: list[dict]) -> list[dict]:
    """Each row's time as a share of fastText's at the same size (None where fastText did not run)."""
    fasttext = {r["size"]: r for r in rows if r["tool"] == "fasttext"}
    for r in rows:
        ft = fasttext.get(r["size"])
        r["share_of_fasttext"] = None if ft is None else round(r["median_s"] / ft["median_s"], 3)
        both = ft is not None and r.get("cpu_s") and ft.get("cpu_s")
        r["cpu_share_of_fasttext"] = round(r["cpu_s"] / ft["cpu_s"], 3) if both else None
    return rows


def reused(path: str | None, sizes: list[str], have: list[dict]) -> list[dict]:
    """The rows of an earlier run's JSON (``train_speed.json``, or ``speed.json`` with a ``train``
    section) for the (size, tool) pairs this run did not measure, each marked with where it came from."""
    if not path:
        return []
    if not Path(path).is_file():
        log(f"{path} not found: no rows reused")
        return []
    data = json.loads(Path(path).read_text())
    data = data.get("train", data)
    done = {(r["size"], r["tool"]) for r in have}
    out = []
    for r in data["tools"]:
        if r["size"] in sizes and (r["size"], r["tool"]) not in done:
            out.append({**r, "measured": f"a separate run ({data['machine']})"})
    return out


def train_section(
    sizes: list[str],
    runs: int = 3,
    fasttext_at: set[str] = frozenset({"38k"}),
    tools: set[str] = frozenset({"spamcli", "bogofilter", "fasttext"}),
    levers: bool = True,
    reuse: str | None = None,
) -> dict:
    """Train every tool on each size of the shared datasets (``bench_size``), then the levers; rows
    of ``reuse`` (an earlier run's JSON) fill the (size, tool) pairs not run here."""
    TMP.mkdir(parents=True, exist_ok=True)
    records = labeled_records(list(REGISTRY))  # every labeled record, research-only sets too
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    results: dict = {
        "machine": f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}, "
        f"spamcli at {commit.stdout.strip()}, started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "tools": [],
    }
    for size in sizes:
        paths = write_inputs(records, size)
        size_runs = runs if SIZES[size] is None else 1
        results["tools"] += bench_size(size, paths, size_runs, size in fasttext_at, set(tools))
    results["tools"] = with_shares(results["tools"] + reused(reuse, sizes, results["tools"]))
    if levers:
        results["levers"] = bench_levers(records)
    return results


class _WithoutFits:
    """The C extension without its fitting functions (the pure-Python fitting path)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, attr):
        if attr in ("nblr_fit", "class_counts"):
            raise AttributeError(attr)
        return getattr(self._module, attr)


def bench_levers(records: list) -> list[dict]:
    """spamcli's training in this process with each lever turned back in turn (same rows)."""
    import spamcli.model as model
    import spamcli.text as text
    from spamcli.training import TrainOptions, train_context

    cases = [
        ("as shipped: C solver, 20 passes, a thread per CPU", {}),
        ("one thread", {"jobs": 1}),
        ("150 regression passes", {"passes": 150}),
        ("scikit-learn's liblinear on built views (no C solver)", {"no_c_fit": True}),
    ]
    out = []
    for name, lever in cases:
        saved_passes, saved_c = model.REGRESSION_PASSES, text._C
        model.REGRESSION_PASSES = lever.get("passes", saved_passes)

        if lever.get("no_c_fit") and saved_c is not None:
            text._C = _WithoutFits(saved_c)
        try:
            start = time.perf_counter()
            cpu = time.process_time()
            ctx, report = train_context(records, TrainOptions(jobs=lever.get("jobs")))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            model.REGRESSION_PASSES, text._C = saved_passes, saved_c
        out.append(
            {"lever": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "auc_out_of_fold": report.auc_out_of_fold}
        )
        log(f"lever {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, out-of-fold AUC {report.auc_out_of_fold:.4f}")
    return out


def markdown(results: dict, title: str = "# Training speed") -> str:
    lines = [title, "", results["machine"], ""]
    lines += [
        "| rows | tool | median s | runs s | CPU s | peak RSS MB | share of fastText's time (wall, CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in results["tools"]:
        shares = [r.get(k) for k in ("share_of_fasttext", "cpu_share_of_fasttext")]
        share = ", ".join("-" if v is None else f"{100 * v:.0f}%" for v in shares)
        cpu = "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.1f}"
        runs = ", ".join(f"{w:.1f}" for w in r["runs_s"])
        tool = r["tool"]
        if r.get("measured"):
            notes.append(f"{tool} at {r['rows']:,} rows: measured in {r['measured']}.")
            tool += f" [{len(notes)}]"
        peak = f"{r['peak_rss_mb']:,}"
        lines.append(f"| {r['rows']:,} | {tool} | {r['median_s']:.1f} | {runs} | {cpu} | {peak} | {share} |")
    if notes:
        lines += [""] + [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    if results.get("levers"):
        lines += ["", "spamcli's levers, in one process on the 38k rows (each turned back alone):", ""]
        lines += ["| lever | wall s | CPU s | out-of-fold AUC |", "|---|---|---|---|"]
        for r in results["levers"]:
            lines.append(f"| {r['lever']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['auc_out_of_fold']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="38k", help="comma list of 38k, 1m")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool at 38k (1 at 1m)")
    parser.add_argument("--fasttext-at", default="38k", help="sizes at which fastText trains too (comma list)")
    parser.add_argument("--tools", default="spamcli,bogofilter,fasttext", help="comma list of the tools to run")
    parser.add_argument("--reuse", default=None, help="an earlier run's JSON: its rows for the tools not run here")
    parser.add_argument("--no-levers", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if datasets_root(None) is None:
        print("shared datasets not found (set SPAMCLI_DATASETS)", file=sys.stderr)
        return 2
    results = train_section(
        [s for s in args.sizes.split(",") if s],
        args.runs,
        set(filter(None, args.fasttext_at.split(","))),
        set(args.tools.split(",")),
        not args.no_levers,
        args.reuse,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "train_speed.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
