"""Accounts the profile model never saw, taught as block/keep exports: does the site calibration help?

    python benchmarks/adapt_profiles.py [--datasets PATH] [--out benchmarks/results] [--week 400]

The shipped model's profile context is trained on Decidim's blocked accounts and genuine Twitter
bios; the Arabic Twitter accounts (research-only, so in no shipped model) are a site it never saw.
Their accounts, in the fixed order of ``benchmarks/adapt.py``, form a stream: the first ``--week``
are the moderators' decisions (blocked: spam, kept: ham), taught as four account exports learned
after 50, 100, 200 and 400 accounts (``spamcli learn --context profile export.csv --blocked-col
...``, the library call); the rest are scored by the profile scorer (``classify --context
profile``): untouched; after the exports with the site calibration they fit (what ``learn`` does);
and after the same exports with the calibration removed (the layer alone, as before profiles were
calibrated). The accounts have no account fields, so a score is the bio's text score through the
profile scoring (and its short-bio rule). Printed: ROC-AUC, and at the profile labels the FP rate,
recall and the share of genuine accounts left ``unsure``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from adapt import CURVE, arguments, log, shared_datasets, stream_order  # noqa: E402

from spamcli.bundle import default_model_dir  # noqa: E402
from spamcli.datasets import load  # noqa: E402
from spamcli.learning import Teacher  # noqa: E402
from spamcli.metrics import roc_auc  # noqa: E402
from spamcli.profiles import load_profile_scorer  # noqa: E402
from spamcli.records import Record  # noqa: E402

SHIPPED = default_model_dir()


def profile_rates(model_dir: Path, rest: list[Record]) -> dict:
    """ROC-AUC, FP rate, recall and genuine accounts left ``unsure``, at the profile labels."""
    out = load_profile_scorer(model_dir).score_records(rest)
    y = np.array([r.label for r in rest])
    scores = np.array([o["score"] for o in out])
    labels = np.array([o["label"] for o in out])
    return {
        "auc": roc_auc(y, scores),
        "fpr": float((labels[y == 0] == "spam").mean()),
        "recall": float((labels[y == 1] == "spam").mean()),
        "unsure_ham": float((labels[y == 0] == "unsure").mean()),
    }


def teach_exports(site_dir: Path, week: list[Record]) -> dict:
    """The week as four account exports; the last calibration fitted."""
    teacher = Teacher(site_dir)
    try:
        done, report = 0, None
        for end in [k for k in CURVE if 0 < k < len(week)] + [len(week)]:
            export = week[done:end]
            report = teacher.teach_decisions([r.text for r in export], [r.label for r in export], "profile")
            done = end
    finally:
        teacher.close()
    return report.calibration


def markdown(results: dict) -> str:
    rows = [
        f"Accounts a profile model never saw ({results['community']}: {results['week']} decisions taught as "
        f"four exports, {results['rest_spam']} spam / {results['rest_ham']} genuine accounts scored after)",
        "",
        "| profile model | AUC | FPR | recall | genuine left unsure |",
        "|---|---|---|---|---|",
    ]
    for key, name in (
        ("untouched", "shipped, untouched"),
        ("layer_only", "after the exports, layer only (no calibration, no regression)"),
        ("calibrated", "after the exports, calibrated (what `learn` does)"),
    ):
        r = results[key]
        rows.append(f"| {name} | {r['auc']:.3f} | {r['fpr']:.1%} | {r['recall']:.1%} | {r['unsure_ham']:.1%} |")
    cal = results["calibration"]
    regression = f"{cal['regression_gain']:.2f}" if cal.get("regression_gain") else "none"
    rows += [
        "",
        f"Site calibration of the profile context: gain {cal['gain']:.2f}, offset {cal['offset']:+.2f}, "
        f"regression gain {regression}.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__)
    parser.add_argument("--week", type=int, default=400)
    args = parser.parse_args(argv)
    root = shared_datasets(args.datasets)
    if root is None or not (root / "arabic_twitter_accounts").is_dir():
        return 3
    stream = stream_order([r for r in load("arabic_twitter_accounts", root) if r.label is not None])
    week, rest = stream[: args.week], stream[args.week :]
    y = np.array([r.label for r in rest])
    results = {"community": "Arabic accounts", "week": len(week), "rest_spam": int(y.sum())}
    results["rest_ham"] = int((y == 0).sum())
    log("scoring with the shipped profile model")
    results["untouched"] = profile_rates(SHIPPED, rest)
    with tempfile.TemporaryDirectory() as tmp:
        site_dir = Path(tmp) / "site"
        shutil.copytree(SHIPPED, site_dir)
        log("teaching the week as four account exports")
        results["calibration"] = teach_exports(site_dir, week)
        results["calibrated"] = profile_rates(site_dir, rest)
        con = sqlite3.connect(site_dir / "site.sqlite")
        with con:
            con.execute("DELETE FROM calibration")
            con.execute("DELETE FROM regression")
        con.close()
        results["layer_only"] = profile_rates(site_dir, rest)
    text = markdown(results)
    print(text)
    out = Path(args.out)
    (out / "adapt_profiles.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "adapt_profiles.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
