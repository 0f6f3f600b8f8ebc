"""Build the default model shipped in ``models/default`` and write its evaluation to models/README.md.

    python scripts/build_default_model.py [--datasets ../shared/datasets] [--out models/default]

Reproducible: the split is :func:`spamcli.datasets.standard_split` (deterministic hashes), training
is :func:`spamcli.training.train_context` with default options. Only datasets whose licence allows
shipping a model trained on them are used for training (``REGISTRY[...].shippable``); the
research-only sets are used to measure, never to train. The model is trained on the train side of
the split, and measured on the held-out side (and on the unseen sets), so the numbers in
models/README.md describe exactly the model that ships.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spamcli.bundle import Bundle, save_bundle
from spamcli.datasets import REGISTRY, datasets_root, standard_split
from spamcli.metrics import recall_at_fpr, report
from spamcli.training import TrainOptions, train_context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_profile_model import build_profile_context  # noqa: E402
from build_profile_model import markdown as profile_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def evaluate_sets(ctx, tests: dict) -> tuple[list[dict], list[dict]]:
    """Metrics per test set and per detected language (pooled over the shippable test sets)."""
    by_set, pooled = [], {"y": [], "s": [], "lab": [], "lang": []}
    for name, records in tests.items():
        if not records:
            continue
        verdicts = ctx.score([r.text for r in records], [r.lang for r in records])
        y = np.array([r.label for r in records])
        s = np.array([v.score for v in verdicts])
        labels = [v.label for v in verdicts]
        rep = report(y, s, labels)
        by_set.append(
            {
                "set": name,
                **rep.to_dict(),
                "recall_at_0.5%_fpr": recall_at_fpr(y, s, 0.005),
                "shippable": REGISTRY[name].shippable,
            }
        )
        if REGISTRY[name].shippable:
            pooled["y"] += list(y)
            pooled["s"] += list(s)
            pooled["lab"] += labels
            pooled["lang"] += [v.lang for v in verdicts]
    by_lang = []
    langs = np.array(pooled["lang"], dtype=object)
    y, s = np.array(pooled["y"]), np.array(pooled["s"])
    for lang in sorted(set(langs), key=lambda code: -int((langs == code).sum())):
        mask = langs == lang
        if mask.sum() < 20:
            continue
        rep = report(y[mask], s[mask], [lab for lab, m in zip(pooled["lab"], mask) if m])
        by_lang.append({"lang": str(lang), **rep.to_dict()})
    rep = report(y, s, pooled["lab"])
    by_lang.insert(0, {"lang": "all (shippable test sets)", **rep.to_dict()})
    return by_set, by_lang


def budget_markdown(spam_at_fpr: dict[str, dict[str, float]]) -> list[str]:
    """The spam threshold per false-positive budget (``classify --max-fpr``), per model."""
    budgets = sorted(spam_at_fpr.get("", {}), key=float)
    lines = [
        "",
        "### Spam thresholds per false-positive budget (`classify --max-fpr`)",
        "",
        "Chosen in training on held-out folds, like the default (0.005); never below 0.5.",
        "",
        "| model | " + " | ".join(budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name, table in sorted(spam_at_fpr.items()):
        label = name or "(context default)"
        lines.append(f"| {label} | " + " | ".join(f"{table[b]:.4f}" for b in budgets) + " |")
    return lines


def cold_start_markdown(cold: dict | None) -> list[str]:
    """The spam cut chosen on random folds against the one chosen with whole communities left out,
    and what each does to every community when that community is left out of training."""
    if not cold:
        return []
    folds, left_out = cold["random_folds"], cold["sources_left_out"]
    lines = [
        "",
        "### Cold start: the spam cut for communities the model never saw",
        "",
        f"Cuts chosen on random folds of the training data are optimistic for a new community. Training "
        f"scores the fallback with each community left out in turn (by its `{cold['source_field']}` field) "
        "and raises the "
        f"default spam cut until the median community's false-positive rate is at most "
        f"{cold['max_fpr']:.0%}: from {folds['spam']} (random folds) to {left_out['spam']} "
        f"(+{cold['shift_log_odds']} log-odds). Each community below is scored by models trained without it "
        "(FP rate / recall at each cut):",
        "",
        f"| community left out | ham / spam | at {folds['spam']} (random folds) | at {left_out['spam']} (shipped) |",
        "|---|---:|---:|---:|",
    ]
    for source, at_folds in folds["sources"].items():
        shipped = left_out["sources"].get(source, {})
        lines.append(
            f"| {source} | {at_folds['ham']} / {at_folds['spam']} | {_pct(at_folds['fpr'])} / "
            f"{_pct(at_folds['recall'])} | {_pct(shipped.get('fpr'))} / {_pct(shipped.get('recall'))} |"
        )
    return lines


def markdown(
    summary: dict, by_set: list[dict], by_lang: list[dict], seconds: float, spam_at_fpr: dict | None = None
) -> str:
    lines = [
        f"Trained in {seconds:.0f} s on {summary['spam']} spam and {summary['ham']} ham "
        f"({summary['duplicates_dropped']} duplicates and {summary['conflicting_labels_dropped']} "
        f"conflicting labels dropped); out-of-fold ROC-AUC {summary['auc_out_of_fold']}.",
        "",
        "### Training summary",
        "",
        "| language | spam | ham | model | AUC own (held-out folds) | AUC fallback |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for row in summary["languages"]:
        if row["spam"] + row["ham"] < 10:
            continue
        lines.append(
            f"| {row['lang']} | {row['spam']} | {row['ham']} | {row['reason']} | "
            f"{_num(row['auc_own'])} | {_num(row['auc_fallback'])} |"
        )
    lines += [
        "",
        "Languages with fewer than 10 examples are not listed; they are scored by the fallback.",
        "",
        "### Held-out evaluation per test set",
        "",
        "Decision = the model's own `spam` label (`unsure` counts as not flagged).",
        "",
        "| test set | spam | ham | ROC-AUC | precision | recall | FP rate | unsure | recall at 0.5% FPR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in by_set:
        note = "" if row["shippable"] else " (unseen language, never trained on)"
        lines.append(
            f"| {row['set']}{note} | {row['n_spam']} | {row['n_ham']} | {_num(row['auc'])} | "
            f"{_pct(row['precision'])} | {_pct(row['recall'])} | {_pct(row['fpr'])} | "
            f"{_pct(row['unsure_rate'])} | {_pct(row['recall_at_0.5%_fpr'])} |"
        )
    lines += budget_markdown(spam_at_fpr or {})
    lines += cold_start_markdown(summary.get("cold_start"))
    lines += [
        "",
        "### Held-out evaluation per detected language",
        "",
        "| language | spam | ham | ROC-AUC | precision | recall | FP rate | unsure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in by_lang:
        lines.append(
            f"| {row['lang']} | {row['n_spam']} | {row['n_ham']} | {_num(row['auc'])} | "
            f"{_pct(row['precision'])} | {_pct(row['recall'])} | {_pct(row['fpr'])} | "
            f"{_pct(row['unsure_rate'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--out", default=str(ROOT / "models" / "default"))
    parser.add_argument("--readme", default=str(ROOT / "models" / "README.md"))
    args = parser.parse_args(argv)
    root = datasets_root(args.datasets)
    if root is None:
        print("no datasets directory found (use --datasets or SPAMCLI_DATASETS)", file=sys.stderr)
        return 3
    train, test = standard_split(root)
    records = [r for name, recs in train.items() if REGISTRY[name].shippable for r in recs]
    log(f"training the content model on {len(records)} records from {', '.join(train)}")
    t0 = time.monotonic()
    ctx, rep = train_context(
        records, TrainOptions(context="content", domain_field="source", source_field="community"), progress=log
    )
    seconds = time.monotonic() - t0
    profile_ctx, profile_rep, profile_eval = build_profile_context(root, log=log)
    save_bundle(
        Bundle(
            contexts={"content": ctx, "profile": profile_ctx},
            extra={
                "training": {
                    "script": "scripts/build_default_model.py",
                    "datasets": {name: REGISTRY[name].license for name in train},
                    "profile_datasets": profile_eval["licences"],
                }
            },
        ),
        Path(args.out),
    )
    log(f"wrote {args.out}")
    by_set, by_lang = evaluate_sets(ctx, test)
    text = markdown(rep.to_dict(), by_set, by_lang, seconds, ctx.spam_at_fpr)
    text += "\n\n" + profile_markdown(profile_rep, profile_eval)
    (Path(args.out).parent / "evaluation.json").write_text(
        json.dumps(
            {"summary": rep.to_dict(), "by_set": by_set, "by_language": by_lang, "profile": profile_eval}, indent=2
        )
        + "\n"
    )
    readme = Path(args.readme)
    if readme.exists() and BEGIN in readme.read_text():
        head, rest = readme.read_text().split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
        log(f"updated {readme}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
