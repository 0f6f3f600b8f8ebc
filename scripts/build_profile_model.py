"""Build the ``profile`` context of the shipped model and measure it (called by build_default_model.py).

    python scripts/build_profile_model.py [--datasets ../shared/datasets] [--out DIR | --into DIR]

``--out DIR`` writes a bundle with only the profile context; ``--into DIR`` replaces the profile
context of the model in DIR (``models/default``), leaving its other contexts' files as they are, and
the profile part of README.md and evaluation.json beside DIR.

Training data (openly licensed only):

- spam: the train side (80%, :func:`spamcli.datasets.split_by_group`) of the Decidim blocked-account
  bios (AGPL-3.0-or-later), and the spam of the train side of the Thai SMS set (MIT): gambling and
  loan adverts, the kind of Thai spam bio the Decidim bios hold too few of to learn;
- ham: there is no openly licensed genuine-profile data, so a proxy: ``datasets/samples/genuine_bios.txt``
  (bios we wrote ourselves, CC0) plus the genuine comments of the YouTube Spam Collection's three
  training videos (CC BY 4.0; short first-person texts), and the genuine messages of the Thai SMS
  train side (MIT), without which any Thai text would look like spam. English SMS, Telegram and
  e-mail ham were tried as well and raised the false-positive rate on genuine bios.

Thresholds of the profile score (stored in the manifest's ``contexts.profile.scoring``):

- spam, per false-positive budget (``spam_at_fpr``, ``classify --context profile --max-fpr``): the
  lowest cut >= 0.5 that flags at most that share of the *tune* half of the research-only Twitter
  genuine bios (a fixed half by a hash of the text). The proxy ham is no guide to genuine bios (cuts
  chosen on it flagged several times their budget of them), so the cuts, a few numbers, are chosen on
  genuine bios; no weight of the model is. The default spam threshold is the lowest cut >= 0.5 that
  flags at most :data:`DEFAULT_BUDGET` of them.
- ham: the cut below which at most 10% of the Decidim train-side spam bios fall, scored out of fold
  (5 folds by group), so that "ham" rarely hides a blocked account; between the two lies "unsure".

Measured, through the full profile scorer with bios only: recall on the held-out 20% of Decidim bios
and, steadier, over all of them by a 5-fold group cross-validation; false-positive rate and unsure
share on the *report* half of the Twitter genuine bios, which chose nothing.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

from spamcli.datasets import datasets_root, load, split_by_group
from spamcli.profiles import ProfileScorer
from spamcli.records import ReadOptions, Record, read_records
from spamcli.router import FP_BUDGETS, Thresholds, fpr_key
from spamcli.training import TrainOptions, _spam_cut, train_context

ROOT = Path(__file__).resolve().parents[1]
GENUINE_BIOS = ROOT / "datasets" / "samples" / "genuine_bios.txt"
HELD_OUT_VIDEO = "Youtube05-Shakira.csv"
# The shipped spam threshold flags at most 1.5% of the tune half's genuine bios: a margin under the
# 2% the profile context promises, for the difference between the two halves.
DEFAULT_BUDGET = 0.015
MAX_MISSED = 0.10  # share of out-of-fold spam bios allowed below the ham threshold
CV_FOLDS = 5


def profile_training_records(root: Path) -> tuple[list[Record], list[Record], dict]:
    """(train records, held-out Decidim spam bios, dataset -> licence) for the profile context."""
    spam_train, spam_test = split_by_group(load("decidim_profiles", root))
    thai = split_by_group(load("thai_sms", root))[0]
    own = [Record(id=f"own-{i}", text=t, label=0) for i, t in enumerate(GENUINE_BIOS.read_text().splitlines()) if t]
    youtube = [r for r in load("youtube_spam_collection", root) if r.label == 0 and r.fields["file"] != HELD_OUT_VIDEO]
    licences = {
        "decidim_profiles (train side)": "AGPL-3.0-or-later",
        "thai_sms (train side)": "MIT",
        "datasets/samples/genuine_bios.txt": "CC0 (written by the spamcli developers)",
        "youtube_spam_collection (ham of 3 videos)": "CC BY 4.0",
    }
    return spam_train + thai + own + youtube, spam_test, licences


def twitter_genuine_bios(root: Path) -> tuple[list[Record], list[Record]]:
    """The research-only Twitter genuine bios as (tune half, report half), split by a hash of the text."""
    path = root / "twitter_genuine_bios" / "genuine_bios.csv"
    opts = ReadOptions(format="csv", text_field="text", label_field="label")
    bios = [r for r in read_records(str(path), opts) if not r.error]
    tune = [r for r in bios if zlib.crc32(r.text.encode("utf-8")) % 2 == 0]
    report = [r for r in bios if zlib.crc32(r.text.encode("utf-8")) % 2 == 1]
    return tune, report


def profile_scores(ctx, records: list[Record]) -> np.ndarray:
    """Profile scores of bios alone (no account fields); a bio the short-bio guard holds scores 0."""
    from spamcli.bundle import Bundle

    scorer = ProfileScorer(Bundle(contexts={"profile": ctx}), thresholds=Thresholds(ham=0.0, spam=1.0))
    out = scorer.score_records([Record(id=i, text=r.text) for i, r in enumerate(records)])
    return np.array([x["score"] for x in out])


def out_of_fold_spam(spam: list[Record], others: list[Record]) -> np.ndarray:
    """Profile scores of ``spam``, each from a model trained without its fold (folds by group) but
    with all of ``others``."""
    fold = np.array([zlib.crc32(str(r.fields.get("group", r.text)).encode()) % CV_FOLDS for r in spam])
    scores = np.zeros(len(spam))
    for k in range(CV_FOLDS):
        ctx, _ = train_context([r for r, f in zip(spam, fold) if f != k] + others, TrainOptions(context="profile"))
        held = np.flatnonzero(fold == k)
        scores[held] = profile_scores(ctx, [spam[i] for i in held])
    return scores


def choose_thresholds(tune_scores: np.ndarray, oof_spam: np.ndarray) -> dict:
    """The scoring's thresholds (see module docstring) from the tune half's scores and the
    out-of-fold scores of the train-side spam bios."""
    genuine = np.zeros(len(tune_scores))
    spam_at_fpr = {fpr_key(b): _spam_cut(genuine, tune_scores, b) for b in FP_BUDGETS}
    spam = _spam_cut(genuine, tune_scores, DEFAULT_BUDGET)
    ranked = np.sort(oof_spam)
    ham = min(float(ranked[int(np.floor(MAX_MISSED * len(ranked)))]), spam)
    return {"thresholds": {"ham": round(ham, 4), "spam": spam}, "spam_at_fpr": spam_at_fpr}


def build_profile_context(root: Path, log=lambda _m: None):
    """Train the profile context; returns ``(context_model, train_report, evaluation dict)``."""
    train, spam_test, licences = profile_training_records(root)
    tune, report = twitter_genuine_bios(root)
    log(f"training the profile model on {len(train)} records")
    ctx, rep = train_context(train, TrainOptions(context="profile"), progress=log)
    decidim = [r for r in train if r.fields.get("source") == "decidim_profiles"]
    others = [r for r in train if r.fields.get("source") != "decidim_profiles"]
    log(f"choosing the profile thresholds ({CV_FOLDS} folds of the train-side Decidim bios)")
    chosen = choose_thresholds(profile_scores(ctx, tune), out_of_fold_spam(decidim, others))
    ctx.scoring = {"source": "default", **chosen}
    evaluation = {
        "licences": licences,
        "text_thresholds": {"ham": ctx.thresholds.ham, "spam": ctx.thresholds.spam},
        **chosen,
    }
    log(f"measuring: {CV_FOLDS}-fold cross-validation over all Decidim bios")
    all_decidim = load("decidim_profiles", root)
    evaluation.update(measure(ctx, spam_test, tune, report, out_of_fold_spam(all_decidim, others), chosen))
    thai_ham = [r for r in split_by_group(load("thai_sms", root))[1] if r.label == 0]
    evaluation["shipped"]["fpr_thai_sms"] = _share(profile_scores(ctx, thai_ham) >= chosen["thresholds"]["spam"])
    return ctx, rep, evaluation


def _share(hits: np.ndarray) -> dict:
    return {"count": int(hits.sum()), "of": len(hits), "rate": float(hits.mean()) if len(hits) else 0.0}


def measure(ctx, spam_bios, tune, report, cv_spam: np.ndarray, chosen: dict) -> dict:
    """Recall on held-out spam bios (and out of fold over all Decidim bios), FP rate and unsure
    share on the report half of the genuine bios, at the chosen thresholds and per budget."""
    ham_t, spam_t = chosen["thresholds"]["ham"], chosen["thresholds"]["spam"]
    s_spam, s_report, s_tune = profile_scores(ctx, spam_bios), profile_scores(ctx, report), profile_scores(ctx, tune)
    return {
        "n_spam_held_out": len(spam_bios),
        "n_spam_cv": len(cv_spam),
        "n_genuine_tune": len(tune),
        "n_genuine_report": len(report),
        "shipped": {
            "recall": _share(s_spam >= spam_t),
            "recall_cv": _share(cv_spam >= spam_t),
            "fpr": _share(s_report >= spam_t),
            "unsure": _share((s_report >= ham_t) & (s_report < spam_t)),
            "fpr_tune": _share(s_tune >= spam_t),
            "unsure_tune": _share((s_tune >= ham_t) & (s_tune < spam_t)),
        },
        "budgets": [
            {
                "budget": fpr_key(b),
                "spam": chosen["spam_at_fpr"][fpr_key(b)],
                "fpr_tune": _share(s_tune >= chosen["spam_at_fpr"][fpr_key(b)]),
                "fpr": _share(s_report >= chosen["spam_at_fpr"][fpr_key(b)]),
                "recall": _share(s_spam >= chosen["spam_at_fpr"][fpr_key(b)]),
                "recall_cv": _share(cv_spam >= chosen["spam_at_fpr"][fpr_key(b)]),
            }
            for b in FP_BUDGETS
        ],
    }


def _count(share: dict) -> str:
    return f"{share['rate']:.1%} ({share['count']} of {share['of']})"


def markdown(rep, evaluation: dict) -> str:
    shipped = evaluation["shipped"]
    text_t = evaluation["text_thresholds"]
    t = evaluation["thresholds"]
    lines = [
        "### Profile context",
        "",
        f"Bio text model trained on {rep.spam} spam and {rep.ham} ham (proxy) bios/comments; out-of-fold "
        f"ROC-AUC {rep.auc_out_of_fold:.4f}; its own thresholds ham < {text_t['ham']}, spam >= {text_t['spam']}. "
        f"Shipped profile scoring: spam >= {t['spam']} (the lowest cut >= 0.5 flagging at most {DEFAULT_BUDGET:.1%} of "
        f"the tune half's genuine bios), ham < {t['ham']} (at most {MAX_MISSED:.0%} of the out-of-fold Decidim "
        "train-side spam bios below it).",
        "",
        "| training data | license |",
        "|---|---|",
        *(f"| {name} | {lic} |" for name, lic in evaluation["licences"].items()),
        "",
        "Measured through the profile scorer on bios alone (no account fields). Spam: the "
        f"{evaluation['n_spam_held_out']} held-out Decidim blocked-account bios, and all "
        f"{evaluation['n_spam_cv']} of them scored out of fold ({CV_FOLDS}-fold cross-validation by group, "
        "each fold's model trained on the other Decidim bios and all the other training data). Genuine: the "
        "research-only Twitter bios (never trained on), split in two halves by a hash of the text: the spam "
        f"cuts were chosen on the tune half ({evaluation['n_genuine_tune']} bios), the rates below are on "
        f"the report half ({evaluation['n_genuine_report']} bios), which chose nothing.",
        "",
        f"**At the shipped thresholds: recall {_count(shipped['recall'])} held out, "
        f"{_count(shipped['recall_cv'])} cross-validated; FP rate {_count(shipped['fpr'])}; "
        f"unsure {_count(shipped['unsure'])}** of genuine bios (tune half: FP {_count(shipped['fpr_tune'])}, "
        f"unsure {_count(shipped['unsure_tune'])}). Genuine Thai text, which the Twitter bios hardly hold: "
        f"{_count(shipped['fpr_thai_sms'])} of the held-out Thai SMS ham is flagged.",
        "",
        "Spam thresholds per false-positive budget (`classify --context profile --max-fpr`):",
        "",
        "| budget | spam threshold | FP rate, tune half | FP rate, report half | recall, held out | "
        "recall, cross-validated |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in evaluation["budgets"]:
        lines.append(
            f"| {row['budget']} | {row['spam']:.4f} | {_count(row['fpr_tune'])} | {_count(row['fpr'])} | "
            f"{_count(row['recall'])} | {_count(row['recall_cv'])} |"
        )
    n = evaluation["n_spam_held_out"]
    lines += [
        "",
        f"Caveats: {n} held-out spam bios make recall coarse (one bio is {100 / max(n, 1):.0f} points). Neither "
        "recall is blind: the Thai SMS set was tried because a held-out Thai gambling bio was missed, and kept "
        "on the cross-validated recall at the tune half's cuts. One held-out bio, \"I'm an academic writer.\", "
        "is held below the ham threshold by the short-bio guard, by design.",
    ]
    return "\n".join(lines)


def write_into(directory: Path, ctx, licences: dict) -> None:
    """Replace the profile context of the model in ``directory`` (written atomically by
    :func:`~spamcli.bundle.save_bundle`; its other contexts' files stay as they are), and delete
    the profile files the new manifest no longer names: this is a build, no reader has them open."""
    import json

    from spamcli.bundle import load_bundle, save_bundle

    bundle = load_bundle(directory, with_site=False)
    bundle.contexts["profile"] = ctx
    bundle.extra.setdefault("training", {})["profile_datasets"] = licences
    save_bundle(bundle, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    named = {entry["file"] for c in manifest["contexts"].values() for entry in c["models"].values()}
    for path in directory.glob("profile-*.npz"):
        if path.name not in named:
            path.unlink()


def update_reports(models_dir: Path, text: str, evaluation: dict) -> None:
    """Replace the profile part of ``models_dir``'s README.md (its generated block, from "### Profile
    context" to the block's end) and of its evaluation.json, where they exist."""
    import json

    readme, begin, end = models_dir / "README.md", "### Profile context", "<!-- END GENERATED -->"
    if readme.exists() and begin in readme.read_text():
        head, rest = readme.read_text().split(begin, 1)
        readme.write_text(f"{head}{text}\n{end}{rest.split(end, 1)[1]}")
    report = models_dir / "evaluation.json"
    if report.exists():
        data = json.loads(report.read_text())
        data["profile"] = evaluation
        report.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    from spamcli.bundle import Bundle, save_bundle

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=None)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="write a bundle with only the profile context here")
    where.add_argument("--into", default=None, help="replace the profile context of the model here")
    args = parser.parse_args(argv)
    root = datasets_root(args.datasets)
    if root is None:
        print("no datasets directory found (use --datasets or SPAMCLI_DATASETS)", file=sys.stderr)
        return 3
    ctx, rep, evaluation = build_profile_context(root, log=lambda m: print(m, file=sys.stderr))
    if args.out:
        save_bundle(Bundle(contexts={"profile": ctx}), Path(args.out))
    text = markdown(rep, evaluation)
    if args.into:
        write_into(Path(args.into), ctx, evaluation["licences"])
        update_reports(Path(args.into).parent, text, evaluation)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
