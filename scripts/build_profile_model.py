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

Thresholds of the profile score (stored in the manifest's ``contexts.profile.scoring``), chosen on
openly licensed data only, or fixed:

- spam, per false-positive budget (``spam_at_fpr``, ``classify --context profile --max-fpr``): the
  lowest cut >= 0.5 that flags at most that share of the proxy ham above (its distinct texts, as
  the trainer keeps them: normalised duplicates such as templated Thai SMS count once), scored out of
  fold (:data:`CV_FOLDS` folds by group, each fold's model trained on the other folds and all the spam).
- spam, default: :data:`DEFAULT_SPAM` (0.5), a fixed policy, the floor of every cut, not chosen on
  data. (It is the value an earlier build chose on half of the Twitter bios, so it is not blind to
  them; nothing is chosen on them any more.)
- ham: the cut below which at most 10% of the Decidim train-side spam bios fall, scored out of fold
  (5 folds by group), so that "ham" rarely hides a blocked account; between the two lies "unsure".

The proxy ham is no stand-in for genuine bios, either way: the budgets' cuts are set by the Thai SMS
ham, the proxy ham the model flags most, and flag far less than their budget of genuine bios, at a
cost in recall; chosen on our bios and the YouTube comments alone, every cut would sit at the floor
0.5, which flags 1.7% of genuine Twitter bios, over the 0.5% and 1% budgets. Reported, not corrected
on research-only data.

The research-only Twitter genuine bios (``twitter_genuine_bios``) choose nothing: they only measure.
Measured, through the full profile scorer with bios only: recall on the held-out 20% of Decidim bios
and, steadier, over all of them by a 5-fold group cross-validation; false-positive rate and unsure
share on all the Twitter genuine bios, at the default thresholds and per budget, against
:data:`TARGETS` (recall >= 90% of held-out Decidim bios, FP <= 2% and unsure <= 8% of genuine bios).
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
from spamcli.training import TrainOptions, _spam_cut, clean_records, train_context

ROOT = Path(__file__).resolve().parents[1]
GENUINE_BIOS = ROOT / "datasets" / "samples" / "genuine_bios.txt"
HELD_OUT_VIDEO = "Youtube05-Shakira.csv"
# The shipped (default) spam threshold: a fixed policy, the floor of every cut, not chosen on data.
DEFAULT_SPAM = 0.5
# What the profile context aims at: recall on held-out Decidim blocked bios, false positives and
# unsure share on genuine bios.
TARGETS = {"recall": 0.90, "fpr": 0.02, "unsure": 0.08}
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


def twitter_genuine_bios(root: Path) -> list[Record]:
    """The research-only Twitter genuine bios, all of them: they measure, they choose nothing."""
    path = root / "twitter_genuine_bios" / "genuine_bios.csv"
    opts = ReadOptions(format="csv", text_field="text", label_field="label")
    return [r for r in read_records(str(path), opts) if not r.error]


def profile_scores(ctx, records: list[Record]) -> np.ndarray:
    """Profile scores of bios alone (no account fields); a bio the short-bio guard holds scores 0."""
    from spamcli.bundle import Bundle

    scorer = ProfileScorer(Bundle(contexts={"profile": ctx}), thresholds=Thresholds(ham=0.0, spam=1.0))
    out = scorer.score_records([Record(id=i, text=r.text) for i, r in enumerate(records)])
    return np.array([x["score"] for x in out])


def out_of_fold(records: list[Record], others: list[Record] = ()) -> np.ndarray:
    """Profile scores of ``records``, each from a model trained without its fold (folds by group) but
    with all of ``others``."""
    fold = np.array([zlib.crc32(str(r.fields.get("group", r.text)).encode()) % CV_FOLDS for r in records])
    scores = np.zeros(len(records))
    for k in range(CV_FOLDS):
        train = [r for r, f in zip(records, fold) if f != k] + list(others)
        ctx, _ = train_context(train, TrainOptions(context="profile"))
        held = np.flatnonzero(fold == k)
        scores[held] = profile_scores(ctx, [records[i] for i in held])
    return scores


def choose_thresholds(oof_ham: np.ndarray, oof_spam: np.ndarray) -> dict:
    """The scoring's thresholds (see module docstring) from the out-of-fold scores of the proxy ham
    and of the train-side Decidim spam bios; the default spam threshold is :data:`DEFAULT_SPAM`."""
    genuine = np.zeros(len(oof_ham))
    spam_at_fpr = {fpr_key(b): _spam_cut(genuine, oof_ham, b) for b in FP_BUDGETS}
    ranked = np.sort(oof_spam)
    ham = min(float(ranked[int(np.floor(MAX_MISSED * len(ranked)))]), DEFAULT_SPAM)
    return {"thresholds": {"ham": round(ham, 4), "spam": DEFAULT_SPAM}, "spam_at_fpr": spam_at_fpr}


def build_profile_context(root: Path, log=lambda _m: None):
    """Train the profile context; returns ``(context_model, train_report, evaluation dict)``."""
    train, spam_test, licences = profile_training_records(root)
    log(f"training the profile model on {len(train)} records")
    ctx, rep = train_context(train, TrainOptions(context="profile"), progress=log)
    decidim = [r for r in train if r.fields.get("source") == "decidim_profiles"]
    others = [r for r in train if r.fields.get("source") != "decidim_profiles"]
    distinct = clean_records(train)[0]  # what the model learns from: one text of each normalised duplicate
    ham, spam = [r for r in distinct if r.label == 0], [r for r in distinct if r.label == 1]
    log(f"choosing the profile thresholds ({CV_FOLDS} folds of the proxy ham, then of the train-side Decidim bios)")
    oof_ham = out_of_fold(ham, spam)
    chosen = choose_thresholds(oof_ham, out_of_fold(decidim, others))
    ctx.scoring = {"source": "default", **chosen}
    evaluation = {
        "licences": licences,
        "text_thresholds": {"ham": ctx.thresholds.ham, "spam": ctx.thresholds.spam},
        **chosen,
        "chosen_on": (
            f"spam_at_fpr: out-of-fold profile scores ({CV_FOLDS} folds by group) of the openly licensed proxy "
            f"ham; default spam threshold: a fixed policy, {DEFAULT_SPAM} (the floor of every cut); ham threshold: "
            "out-of-fold scores of the Decidim train-side spam bios; the Twitter genuine bios choose nothing"
        ),
        "targets": TARGETS,
    }
    log(f"measuring: {CV_FOLDS}-fold cross-validation over all Decidim bios")
    cv_spam = out_of_fold(load("decidim_profiles", root), others)
    proxy = (oof_ham, np.array([r.fields.get("source", GENUINE_BIOS.name) for r in ham]))
    evaluation.update(measure(ctx, spam_test, twitter_genuine_bios(root), cv_spam, proxy, chosen))
    thai_ham = [r for r in split_by_group(load("thai_sms", root))[1] if r.label == 0]
    evaluation["shipped"]["fpr_thai_sms"] = _share(profile_scores(ctx, thai_ham) >= chosen["thresholds"]["spam"])
    return ctx, rep, evaluation


def _share(hits: np.ndarray) -> dict:
    return {"count": int(hits.sum()), "of": len(hits), "rate": float(hits.mean()) if len(hits) else 0.0}


def _at(cut: float, ham: float, s_spam, s_genuine, cv_spam, proxy) -> dict:
    """Recall, false positives and unsure share at a spam cut (a ham cut above it comes down to it),
    and the out-of-fold proxy ham flagged, in all and per source."""
    ham, (proxy_ham, sources) = min(ham, cut), proxy
    return {
        "recall": _share(s_spam >= cut),
        "recall_cv": _share(cv_spam >= cut),
        "fpr": _share(s_genuine >= cut),
        "unsure": _share((s_genuine >= ham) & (s_genuine < cut)),
        "fpr_proxy_ham": _share(proxy_ham >= cut),
        "fpr_proxy_ham_by_source": {str(s): _share(proxy_ham[sources == s] >= cut) for s in sorted(set(sources))},
    }


def measure(ctx, spam_bios, genuine, cv_spam: np.ndarray, proxy: tuple, chosen: dict) -> dict:
    """Recall on held-out spam bios (and out of fold over all Decidim bios), FP rate and unsure share
    on all the genuine bios, at the chosen thresholds and per budget, and which targets they meet;
    ``proxy`` is (out-of-fold scores, sources) of the proxy ham the budgets' cuts were chosen on."""
    ham_t, spam_t = chosen["thresholds"]["ham"], chosen["thresholds"]["spam"]
    s_spam, s_genuine = profile_scores(ctx, spam_bios), profile_scores(ctx, genuine)
    shipped = _at(spam_t, ham_t, s_spam, s_genuine, cv_spam, proxy)
    budgets = []
    for b in FP_BUDGETS:
        cut = chosen["spam_at_fpr"][fpr_key(b)]
        row = {"budget": fpr_key(b), "spam": cut, **_at(cut, ham_t, s_spam, s_genuine, cv_spam, proxy)}
        row["within_budget"] = row["fpr"]["rate"] <= b
        budgets.append(row)
    return {
        "n_spam_held_out": len(spam_bios),
        "n_spam_cv": len(cv_spam),
        "n_genuine": len(genuine),
        "n_proxy_ham": len(proxy[0]),
        "shipped": shipped,
        "targets_met": {
            "recall": shipped["recall"]["rate"] >= TARGETS["recall"],
            "recall_cv": shipped["recall_cv"]["rate"] >= TARGETS["recall"],
            "fpr": shipped["fpr"]["rate"] <= TARGETS["fpr"],
            "unsure": shipped["unsure"]["rate"] <= TARGETS["unsure"],
        },
        "budgets": budgets,
    }


def _count(share: dict) -> str:
    return f"{share['rate']:.1%} ({share['count']} of {share['of']})"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def markdown(rep, evaluation: dict) -> str:
    shipped, met, targets = evaluation["shipped"], evaluation["targets_met"], evaluation["targets"]
    text_t = evaluation["text_thresholds"]
    t = evaluation["thresholds"]
    by_source = ", ".join(f"{name} {_count(v)}" for name, v in shipped["fpr_proxy_ham_by_source"].items())
    lines = [
        "### Profile context",
        "",
        f"Bio text model trained on {rep.spam} spam and {rep.ham} ham (proxy) bios/comments; out-of-fold "
        f"ROC-AUC {rep.auc_out_of_fold:.4f}; its own thresholds ham < {text_t['ham']}, spam >= {text_t['spam']}. "
        f"Shipped profile scoring, every threshold chosen on openly licensed data or fixed: spam >= {t['spam']} "
        f"(a fixed policy, the floor of every cut), ham < {t['ham']} (at most {MAX_MISSED:.0%} of the out-of-fold "
        "Decidim train-side spam bios below it); the spam cut per false-positive budget is the lowest cut >= 0.5 "
        f"flagging at most that share of the {evaluation['n_proxy_ham']} distinct proxy ham texts of the training "
        f"data, scored out of fold ({CV_FOLDS} folds by group).",
        "",
        "| training data | license |",
        "|---|---|",
        *(f"| {name} | {lic} |" for name, lic in evaluation["licences"].items()),
        "",
        "Measured through the profile scorer on bios alone (no account fields). Spam: the "
        f"{evaluation['n_spam_held_out']} held-out Decidim blocked-account bios, and all "
        f"{evaluation['n_spam_cv']} of them scored out of fold ({CV_FOLDS}-fold cross-validation by group, "
        "each fold's model trained on the other Decidim bios and all the other training data). Genuine: all "
        f"{evaluation['n_genuine']} research-only Twitter genuine bios, never trained on and used to measure only: "
        "they chose no threshold.",
        "",
        f"**At the shipped thresholds: recall {_count(shipped['recall'])} held out, "
        f"{_count(shipped['recall_cv'])} cross-validated; FP rate {_count(shipped['fpr'])}; "
        f"unsure {_count(shipped['unsure'])}** of genuine bios. Targets: recall >= {targets['recall']:.0%} of "
        f"held-out Decidim bios: {_met(met['recall'])}; FP <= {targets['fpr']:.0%} of genuine bios: "
        f"{_met(met['fpr'])}; unsure <= {targets['unsure']:.0%}: {_met(met['unsure'])}; the cross-validated "
        f"recall is {'at or above' if met['recall_cv'] else 'below'} {targets['recall']:.0%}. Out-of-fold proxy "
        f"ham flagged at the default: {_count(shipped['fpr_proxy_ham'])} ({by_source}). Genuine Thai text, which "
        f"the Twitter bios hardly hold: {_count(shipped['fpr_thai_sms'])} of the held-out Thai SMS ham is flagged.",
        "",
        "Spam thresholds per false-positive budget (`classify --context profile --max-fpr`; a ham threshold "
        "above the cut comes down to it):",
        "",
        "| budget | spam threshold | proxy ham flagged, out of fold (chose the cut) | FP rate, genuine bios | "
        "within budget | unsure, genuine bios | recall, held out | recall, cross-validated |",
        "|---:|---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for row in evaluation["budgets"]:
        lines.append(
            f"| {row['budget']} | {row['spam']:.4f} | {_count(row['fpr_proxy_ham'])} | {_count(row['fpr'])} | "
            f"{'yes' if row['within_budget'] else '**no**'} | {_count(row['unsure'])} | {_count(row['recall'])} | "
            f"{_count(row['recall_cv'])} |"
        )
    n = evaluation["n_spam_held_out"]
    lines += [
        "",
        "Caveats: the proxy ham is no stand-in for genuine bios (compare the budgets' FP rates on the two). "
        f"{n} held-out spam bios make recall coarse (one bio is {100 / max(n, 1):.0f} points). "
        "Neither recall is blind: the Thai SMS set was tried because a held-out Thai gambling bio was missed, and "
        "kept on the cross-validated recall. The default spam threshold, 0.5, is the value an earlier build chose "
        "on half of the Twitter bios; it is kept as a fixed policy, not chosen on them. One held-out bio, "
        '"I\'m an academic writer.", is held below the ham threshold by the short-bio guard, by design.',
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
