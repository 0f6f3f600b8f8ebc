"""What learning a moderation export costs: the whole `learn`, and the refit with and without the site regression.

    python benchmarks/export_learn.py [--datasets PATH] [--out benchmarks/results] [--n 10000] [--repeat 5]

An export of ``--n`` messages (the shared data sets' SMS, Telegram, YouTube and Indonesian messages,
shuffled with a fixed seed: a site's mixed traffic, part of it new to the shipped model) is learned
into a copy of the shipped model with ``Teacher.teach_decisions`` (what ``spamcli learn export.csv
--hidden-col ...`` calls), timed once. Then the site's refit (``site_calibration.refit``: the
leave-one-out sums, the site regression's fits and the weighing of both) is timed ``--repeat`` times,
and, as the baseline in the same process, the same refit with the regression left out (the
calibration alone, as before the regression existed). Last, scoring 2,000 messages of the export
with the site layer and its regression, against the same layer without the regression (what every
message pays for it). Medians, and their ratios.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from adapt import arguments, shared_datasets  # noqa: E402
from vectoriser import timed  # noqa: E402

from spamcli import SpamFilter, site, site_calibration, site_regression  # noqa: E402
from spamcli.bundle import default_model_dir, load_bundle  # noqa: E402
from spamcli.datasets import load  # noqa: E402
from spamcli.learning import Teacher  # noqa: E402

SHIPPED = default_model_dir()
SOURCES = ("sms_multilingual", "telegram_tgspam", "youtube_spam_collection", "indonesian_sms")


def export_records(root: Path, n: int) -> tuple[list[str], list[int]]:
    records = [r for name in SOURCES for r in load(name, root) if r.label is not None and r.text.strip()]
    random.Random(1).shuffle(records)
    return [r.text for r in records[:n]], [r.label for r in records[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    root = shared_datasets(args.datasets)
    if root is None:
        return 3
    texts, labels = export_records(root, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "site"
        shutil.copytree(SHIPPED, model)
        teacher = Teacher(model)
        start = time.perf_counter()
        report = teacher.teach_decisions(texts, labels)
        learn_s = time.perf_counter() - start
        teacher.close()
        ctx = load_bundle(model, with_site=False).context("content")
        con = site.connect(model)
        try:
            refit_s = timed(lambda: site_calibration.refit(con, ctx, "content"), args.repeat, 1)["median_s"]
            with_regression = site.fit_of(con, "content")
            fit = site_regression.fit
            site_regression.fit = lambda columns, y: (None, np.zeros(len(columns)))  # the calibration alone
            try:
                baseline_s = timed(lambda: site_calibration.refit(con, ctx, "content"), args.repeat, 1)["median_s"]
            finally:
                site_regression.fit = fit
                site_calibration.refit(con, ctx, "content")
        finally:
            con.close()
        scorer = SpamFilter.load(model)
        content = scorer.bundle.contexts["content"]
        layers = {"with": content.site, "without": dataclasses.replace(content.site, regression=None)}
        scoring = {name: [] for name in layers}
        sample = texts[-2000:]
        for _ in range(args.repeat):  # interleaved, so that both see the same machine
            for name, layer in layers.items():
                content.set_site(layer)
                start = time.perf_counter()
                scorer.score(sample, [None] * len(sample))
                scoring[name].append(time.perf_counter() - start)
    cal = report.calibration
    results = {
        "messages": len(texts),
        "decisions": cal["spam"] + cal["ham"],
        "learn_seconds": learn_s,
        "refit_seconds_median": refit_s,
        "refit_without_regression_seconds_median": baseline_s,
        "repeat": args.repeat,
        "regression_columns": int(len(with_regression.regression.columns)) if with_regression.regression else 0,
        "score_2000_with_regression_seconds_median": statistics.median(scoring["with"]),
        "score_2000_without_regression_seconds_median": statistics.median(scoring["without"]),
        "calibration": cal,
    }
    text = (
        f"Learning an export of {len(texts):,} messages ({results['decisions']:,} distinct decisions) with "
        f"`Teacher.teach_decisions`: {learn_s:.1f} s. The refit alone (median of {args.repeat}): "
        f"{refit_s:.2f} s, against {baseline_s:.2f} s for the calibration without the site regression in the same "
        f"process ({refit_s / baseline_s:.1f}x); the regression holds {results['regression_columns']:,} columns, "
        f"gain {cal['regression_gain'] or 0:.3f}. Scoring 2,000 of the messages: "
        f"{results['score_2000_with_regression_seconds_median']:.3f} s with the regression, "
        f"{results['score_2000_without_regression_seconds_median']:.3f} s without it."
    )
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_learn.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "export_learn.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
