"""The moderator simulation: does a community's first week of corrections teach spamcli that community?

    python benchmarks/adapt.py [--datasets PATH] [--out benchmarks/results] [--communities a,b]
                               [--week 400] [--no-retrain]

For each community the base model is trained without (each YouTube video in turn, Telegram, Thai
SMS, e-mail; the research-only Turkish, Indonesian and Arabic sets, which no shipped model sees):

1. a base model is trained exactly as the shipped one (scripts/build_default_model.py options) on
   the shippable training data *without that community* (cached under benchmarks/results/tmp/);
2. the community's messages, in a fixed shuffled order, form a stream; a moderator reviews the
   first ``--week`` (400; half the community if it has fewer than 800): each is classified by the
   model as it stands, and every genuine message the model flagged for review (labelled ``spam`` or
   ``unsure``) is taught as ham, every spam not labelled ``spam`` as spam (``spamcli learn``'s
   library call, into a real model directory). bogofilter gets the same rule with its own ternary
   labels. Two more spamcli columns teach the same week otherwise: corrections of the ``spam``
   label only (genuine messages left ``unsure`` untaught), the narrowest reading of "train on
   error"; and every decision, as four moderation exports learned after 50, 100, 200 and 400
   messages (``learn`` with an export refits the site calibration on every decision);
3. the rest of the community is scored, by: the model untouched; the model that learned; a model
   trained on the week's 400 decisions alone (TF-IDF char 2-5 + logistic regression); a full
   retrain on base + week (skipped with ``--no-retrain``); bogofilter trained on the base data and
   doing train-on-error on the same stream (if installed).

Printed: ROC-AUC, FP rate and recall at each tool's own spam label, decisions taught, time per
taught message, and the learning curve (AUC of the rest after 0/50/100/200/400 messages reviewed).
A last table times one taught message with 100,000 messages already learned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from spamcli import site, site_lessons  # noqa: E402
from spamcli.bundle import Bundle, load_bundle, save_bundle  # noqa: E402
from spamcli.datasets import REGISTRY, datasets_root, load, standard_split  # noqa: E402
from spamcli.learning import Teacher, learn_messages  # noqa: E402
from spamcli.metrics import roc_auc  # noqa: E402
from spamcli.records import Record  # noqa: E402
from spamcli.training import TrainOptions, train_context  # noqa: E402

CURVE = (0, 50, 100, 200, 400)
OPTIONS = {"context": "content", "domain_field": "source", "source_field": "community"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def communities(root: Path) -> dict[str, tuple[list[Record], str]]:
    """community -> (its records, the community key the base model must be trained without)."""
    out: dict[str, tuple[list[Record], str]] = {}
    youtube = load("youtube_spam_collection", root)
    for video in sorted({r.fields["community"] for r in youtube}):
        out[f"YouTube {video}"] = ([r for r in youtube if r.fields["community"] == video], video)
    for name, label in (("telegram_tgspam", "Telegram"), ("thai_sms", "Thai SMS"), ("spamassassin_email", "E-mail")):
        out[label] = (load(name, root), name)
    for name, label in (("turkish_sms", "Turkish SMS"), ("indonesian_sms", "Indonesian SMS")):
        out[label] = (load(name, root), "")
    if (root / "arabic_twitter_accounts").is_dir():
        out["Arabic accounts"] = (load("arabic_twitter_accounts", root), "")
    return out


def stream_order(records: list[Record]) -> list[Record]:
    """A fixed shuffle (by a hash of the text): data files are often sorted by class."""
    return sorted(records, key=lambda r: (zlib.crc32(f"{r.id}:{r.text}".encode()), r.text))


def base_records(root: Path, without: str) -> list[Record]:
    train, _test = standard_split(root)
    return [
        r for name, recs in train.items() if REGISTRY[name].shippable for r in recs if r.fields["community"] != without
    ]


def other_tests(root: Path, without: str, name: str) -> list[Record]:
    """The standard split's test records of the shippable sets, without the community itself."""
    _train, test = standard_split(root)
    keep = [r for n, recs in test.items() if REGISTRY[n].shippable for r in recs if r.label is not None]
    return [r for r in keep if r.fields["community"] != without]


def base_model(root: Path, without: str, cache: Path) -> Path:
    """A model directory trained like the shipped model, without community ``without``."""
    path = cache / f"base-without-{without or 'nothing'}"
    if (path / "manifest.json").is_file():
        return path
    log(f"training a base model without {without or 'nothing'}")
    ctx, _ = train_context(base_records(root, without), TrainOptions(**OPTIONS))
    save_bundle(Bundle(contexts={"content": ctx}), path)
    return path


def rates(y: np.ndarray, flagged: np.ndarray) -> tuple[float | None, float | None]:
    ham, spam = y == 0, y == 1
    fpr = float(flagged[ham].mean()) if ham.any() else None
    recall = float(flagged[spam].mean()) if spam.any() else None
    return fpr, recall


def score_ctx(ctx, records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    verdicts = ctx.score([r.text for r in records], [None] * len(records))
    return np.array([v.score for v in verdicts]), np.array([v.label == "spam" for v in verdicts])


def refresh_site(ctx, directory: Path) -> None:
    """The context as a freshly loaded model would see it after ``learn``."""
    con = site.connect(directory)
    try:
        ctx.site = site.SiteLayer.read(con, "content")
        ctx._site_deltas = None
        ctx.learned_labels = site.labels_of(con, "content")
    finally:
        con.close()


def others_auc(ctx, others: list[Record]) -> float | None:
    """Pooled ROC-AUC on the standard split's test sets of the other communities."""
    if not others:
        return None
    return roc_auc(np.array([r.label for r in others]), score_ctx(ctx, others)[0])


def simulate_spamcli(
    model_dir: Path,
    week: list[Record],
    rest: list[Record],
    workdir: Path,
    others: list[Record] | None = None,
    review_unsure: bool = True,
) -> dict:
    """The week with spamcli: each message classified, then taught if the moderator corrects it:
    a genuine message flagged for review (``spam``, or ``unsure`` with ``review_unsure``) as ham, a
    spam not labelled ``spam`` as spam."""
    flags_ham = ("spam", "unsure") if review_unsure else ("spam",)
    site_dir = workdir / ("site" if review_unsure else "site-spam-label")
    shutil.copytree(model_dir, site_dir)
    ctx = load_bundle(site_dir).context("content")
    others_before = others_auc(ctx, others or [])
    y_rest = np.array([r.label for r in rest])
    curve, taught, seconds = {}, {"spam": 0, "ham": 0}, []
    for i, rec in enumerate(week):
        if i in CURVE:
            curve[i] = roc_auc(y_rest, score_ctx(ctx, rest)[0])
        (verdict,) = ctx.score([rec.text], [None])
        action = None
        if rec.label == 0 and verdict.label in flags_ham:
            action = "ham"
        elif rec.label == 1 and verdict.label != "spam":
            action = "spam"
        if action:
            t0 = time.perf_counter()
            learn_messages(site_dir, [rec.text], action)
            seconds.append(time.perf_counter() - t0)
            taught[action] += 1
            refresh_site(ctx, site_dir)
    return {
        **_after_the_week(ctx, rest, curve, len(week), others),
        "taught": taught,
        "ms_per_taught": 1000 * float(np.median(seconds)) if seconds else None,
        "others_auc_before": others_before,
    }


def _after_the_week(ctx, rest: list[Record], curve: dict, n_week: int, others: list[Record] | None) -> dict:
    """AUC, FP rate and recall of the rest, the curve's last point, and the other test sets' AUC."""
    y_rest = np.array([r.label for r in rest])
    scores, flagged = score_ctx(ctx, rest)
    curve[n_week] = roc_auc(y_rest, scores)
    fpr, recall = rates(y_rest, flagged)
    return {
        "auc": curve[n_week],
        "fpr": fpr,
        "recall": recall,
        "curve": curve,
        "others_auc_after": others_auc(ctx, others or []),
    }


def simulate_exports(
    model_dir: Path, week: list[Record], rest: list[Record], workdir: Path, others: list[Record] | None = None
) -> dict:
    """Every decision of the week taught as moderation exports (each message as the moderator
    judged it, hidden or kept), one export at each point of the curve (after 50, 100, 200 and 400
    messages), as ``spamcli learn export.csv --hidden-col ...`` does: the site calibration is refit
    on all decisions after each."""
    site_dir = workdir / "site-exports"
    shutil.copytree(model_dir, site_dir)
    y_rest = np.array([r.label for r in rest])
    curve, done = {}, 0
    teacher = Teacher(site_dir)
    try:
        for end in [k for k in CURVE if 0 < k < len(week)] + [len(week)]:
            curve[done] = roc_auc(y_rest, score_ctx(load_bundle(site_dir).context("content"), rest)[0])
            export = week[done:end]
            report = teacher.teach_decisions([r.text for r in export], [r.label for r in export])
            done = end
    finally:
        teacher.close()
    ctx = load_bundle(site_dir).context("content")
    return {**_after_the_week(ctx, rest, curve, len(week), others), "calibration": report.calibration}


def local_only(week: list[Record], rest: list[Record]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y_week = np.array([r.label for r in week])
    if len(set(y_week.tolist())) < 2:
        return {"auc": None, "fpr": None, "recall": None}
    vec = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    X = vec.fit_transform([r.text for r in week])
    lr = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000).fit(X, y_week)
    p = lr.predict_proba(vec.transform([r.text for r in rest]))[:, 1]
    y = np.array([r.label for r in rest])
    fpr, recall = rates(y, p >= 0.5)
    return {"auc": roc_auc(y, p), "fpr": fpr, "recall": recall}


def full_retrain(root: Path, without: str, week: list[Record], rest: list[Record]) -> dict:
    ctx, _ = train_context(base_records(root, without) + week, TrainOptions(**OPTIONS))
    scores, flagged = score_ctx(ctx, rest)
    y = np.array([r.label for r in rest])
    fpr, recall = rates(y, flagged)
    return {"auc": roc_auc(y, scores), "fpr": fpr, "recall": recall}


def _mbox(texts: list[str]) -> str:
    parts = []
    for text in texts:
        lines = [">" + line if line.startswith(("From ", ">From ")) else line for line in text.splitlines()]
        parts.append("From b@localhost Thu Jan  1 00:00:00 1970\nFrom: b@localhost\n\n" + "\n".join(lines) + "\n\n")
    return "".join(parts)


def bogofilter(root: Path, without: str, week: list[Record], rest: list[Record], workdir: Path) -> dict | None:
    exe = shutil.which("bogofilter")
    if exe is None:
        return None
    db = workdir / "bogo"
    db.mkdir()
    base = [exe, "-C", "-d", str(db)]
    train = base_records(root, without)
    for flag, label in (("-s", 1), ("-n", 0)):
        subprocess.run(
            [*base, flag, "-M"], input=_mbox([r.text for r in train if r.label == label]), text=True, check=True
        )
    fmt = ["-t", "--terse-format=%1.1c %p", "--spamicity-formats=%.12e,%.12e,%.12e"]

    def classify(records: list[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spamicity, labelled spam ("S"), labelled unsure ("U") of each record."""
        out = subprocess.run(
            [*base, "-M", *fmt], input=_mbox([r.text for r in records]), capture_output=True, text=True
        )
        lines = [line.split() for line in out.stdout.split("\n")[: len(records)]]
        return (
            np.array([float(v[1]) for v in lines]),
            np.array([v[0] == "S" for v in lines]),
            np.array([v[0] == "U" for v in lines]),
        )

    y_rest = np.array([r.label for r in rest])
    curve = {}
    for i, rec in enumerate(week):
        if i in CURVE:
            curve[i] = roc_auc(y_rest, classify(rest)[0])
        _, spam, unsure = classify([rec])
        # the moderator's rule as for spamcli: a genuine message flagged for review, a spam not labelled spam
        if (rec.label == 0 and (spam[0] or unsure[0])) or (rec.label == 1 and not spam[0]):
            flag = "-s" if rec.label == 1 else "-n"
            subprocess.run([*base, flag, "-M"], input=_mbox([rec.text]), text=True, check=True)
    scores, flagged, _ = classify(rest)
    curve[len(week)] = roc_auc(y_rest, scores)
    fpr, recall = rates(y_rest, flagged)
    return {"auc": roc_auc(y_rest, scores), "fpr": fpr, "recall": recall, "curve": curve}


def seed_learned(site_dir: Path, texts: list[str], already: int) -> None:
    """Put ``already`` learned messages (``texts`` cycled, a third spam) straight into the site
    database of ``site_dir``: the counts ``site.apply`` would leave, in one transaction."""
    ctx = load_bundle(site_dir).context("content")
    con = site.connect(site_dir, create=True)
    log(f"seeding {already:,} learned messages")
    rows = ctx.vectoriser.transform(texts)
    spam_counts, ham_counts = {}, {}
    con.execute("BEGIN")
    for n in range(already):
        i = n % rows.n_rows
        cols = np.unique(rows.indices[rows.indptr[i] : rows.indptr[i + 1]]).astype(np.int32)
        label = "spam" if n % 3 == 0 else "ham"
        table = spam_counts if label == "spam" else ham_counts
        for c in cols.tolist():
            table[c] = table.get(c, 0) + 1
        key = f"content:{hashlib.sha256(f'seed {n}'.encode()).hexdigest()}"  # keyed as learn keys them
        con.execute("INSERT INTO messages VALUES (?, ?, ?)", (key, "content", label))
        con.execute("INSERT INTO message_columns VALUES (?, ?)", (key, cols.tobytes()))
    n_spam = len(range(0, already, 3))
    con.executemany("INSERT INTO totals VALUES ('content', ?, ?)", [("spam", n_spam), ("ham", already - n_spam)])
    con.executemany(
        "INSERT INTO counts VALUES ('content', ?, ?, ?)",
        [(c, spam_counts.get(c, 0), ham_counts.get(c, 0)) for c in sorted(set(spam_counts) | set(ham_counts))],
    )
    con.execute("COMMIT")
    con.close()


def learn_cost(model_dir: Path, root: Path, workdir: Path, already: int = 100_000) -> dict:
    """Time to teach one message with ``already`` messages learned (seeded straight into SQLite)."""
    site_dir = workdir / "cost"
    shutil.copytree(model_dir, site_dir)
    texts = [r.text for name in ("sms_spam_collection", "spamassassin_email", "thai_sms") for r in load(name, root)]
    seed_learned(site_dir, texts, already)
    words = [w for t in texts[:2000] for w in t.split() if w.isalpha()]
    fresh = [" ".join(words[k * 7 : k * 7 + 7]) + " from our forum" for k in range(221)]  # distinct texts
    learn_messages(site_dir, fresh[:1], "ham")  # the site's lesson regression, as a site that learns has it
    times = []
    for text in fresh[1:101]:
        t0 = time.perf_counter()
        learn_messages(site_dir, [text], "ham")
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    learn_messages(site_dir, fresh[101:], "ham")
    batch = (time.perf_counter() - t0) / 120
    con = site.connect(site_dir)
    refits = []
    for _ in range(3):  # a lesson that enters the regression's sample
        con.execute("DELETE FROM lesson_fits")
        t0 = time.perf_counter()
        site_lessons.refit(con, "content")
        refits.append(time.perf_counter() - t0)
    con.close()
    t0 = time.perf_counter()
    load_bundle(site_dir)
    load_s = time.perf_counter() - t0
    return {
        "already_learned": already,
        "one_message_call_ms": 1000 * float(np.median(times)),
        "one_message_call_mean_ms": 1000 * float(np.mean(times)),
        "one_message_call_max_ms": 1000 * float(np.max(times)),
        "per_message_in_batch_of_120_ms": 1000 * batch,
        "lesson_regression_refit_ms": 1000 * float(np.median(refits)),
        "lesson_regression_sample": site_lessons.MAX_LESSONS,
        "load_with_site_s": load_s,
    }


def _f(v, pct=False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def markdown(results: dict) -> str:
    lines = [
        "| community | spam / ham (rest) | taught spam / ham | AUC untouched | AUC learned | AUC local-only | "
        "AUC retrain | AUC bogofilter | FPR untouched -> learned | recall untouched -> learned | ms / taught | "
        "AUC other test sets before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["communities"].items():
        u, s, lo, rt, bf = (
            r["untouched"],
            r["spamcli"],
            r["local_only"],
            r.get("retrain") or {},
            r.get("bogofilter") or {},
        )
        lines.append(
            f"| {name} | {r['rest_spam']} / {r['rest_ham']} | {s['taught']['spam']} / {s['taught']['ham']} | "
            f"{_f(u['auc'])} | **{_f(s['auc'])}** | {_f(lo['auc'])} | "
            f"{_f(rt.get('auc'))} | {_f(bf.get('auc'))} | "
            f"{_f(u['fpr'], True)} -> {_f(s['fpr'], True)} | {_f(u['recall'], True)} -> {_f(s['recall'], True)} | "
            f"{_f(s['ms_per_taught'])} | {_f(s.get('others_auc_before'))} -> {_f(s.get('others_auc_after'))} |"
        )
    lines += [
        "",
        "Other ways of teaching the same week, and the other tools' rates at their own spam label",
        "",
        "| community | spam-label corrections only: taught spam / ham, AUC, FPR, recall | every decision, as "
        "4 exports: AUC, FPR, recall, other test sets after | site gain / offset | local-only FPR, recall | "
        "retrain FPR, recall | bogofilter FPR, recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["communities"].items():
        narrow = r.get("spamcli_spam_label_only") or {}
        every, lo = r.get("spamcli_every_decision") or {}, r["local_only"]
        rt, bf = r.get("retrain") or {}, r.get("bogofilter") or {}
        taught = narrow.get("taught") or {}

        def rates_of(d: dict) -> str:
            return f"{_f(d.get('fpr'), True)}, {_f(d.get('recall'), True)}"

        cal = every.get("calibration") or {}
        fitted = f"{cal['gain']:.2f} / {cal['offset']:+.2f}" if cal.get("gain") is not None else "-"
        lines.append(
            f"| {name} | {taught.get('spam', '-')} / {taught.get('ham', '-')}, {_f(narrow.get('auc'))}, "
            f"{rates_of(narrow)} | {_f(every.get('auc'))}, {rates_of(every)}, {_f(every.get('others_auc_after'))} | "
            f"{fitted} | {rates_of(lo)} | {rates_of(rt)} | {rates_of(bf)} |"
        )
    lines += ["", "Learning curve: AUC of the rest after N messages reviewed (spamcli / bogofilter)", ""]
    lines += ["| community | " + " | ".join(str(k) for k in CURVE) + " |", "|---|" + "---|" * len(CURVE)]
    for name, r in results["communities"].items():
        bf = (r.get("bogofilter") or {}).get("curve", {})
        end = max(r["spamcli"]["curve"], key=int)  # a small community's week ends before 400

        def at(curve: dict, k: int, end=end):
            return curve.get(k, curve.get(end) if k >= int(end) else None)

        cells = [f"{_f(at(r['spamcli']['curve'], k))} / {_f(at(bf, k))}" for k in CURVE]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "learn_cost" in results:
        c = results["learn_cost"]
        lines += [
            "",
            f"One taught message with {c['already_learned']:,} already learned: "
            f"{c['one_message_call_ms']:.1f} ms per `learn_messages` call (median of 100, mean "
            f"{c['one_message_call_mean_ms']:.1f} ms, slowest {c['one_message_call_max_ms']:.1f} ms; each call "
            "reads the model's manifest, opens the site database and commits one transaction), "
            f"{c['per_message_in_batch_of_120_ms']:.2f} ms per message in a batch of 120; a lesson that "
            "enters the lesson regression's sample (its class's first "
            f"{c['lesson_regression_sample'] // 2} in key order: one genuine lesson in "
            f"{round(c['already_learned'] * 2 / 3 / (c['lesson_regression_sample'] // 2))} here) refits it in "
            f"{c['lesson_regression_refit_ms']:.0f} ms (median of 3); "
            f"loading the model with that site layer takes {c['load_with_site_s']:.2f} s.",
        ]
    return "\n".join(lines)


def arguments(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line: ``--datasets`` (the shared data sets) and ``--out`` (where its
    results go), described by the first paragraph of ``doc``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    return parser


def shared_datasets(path: str | None) -> Path | None:
    """The shared data sets' directory (``--datasets``, ``$SPAMCLI_DATASETS`` or ``../shared``), or
    None, said on stderr."""
    root = datasets_root(path)
    if root is None:
        print("no datasets directory found (use --datasets or SPAMCLI_DATASETS)", file=sys.stderr)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__)
    parser.add_argument("--communities", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--week", type=int, default=400)
    parser.add_argument("--no-retrain", action="store_true")
    parser.add_argument("--no-cost", action="store_true")
    args = parser.parse_args(argv)
    root = shared_datasets(args.datasets)
    if root is None:
        return 3
    cache = Path(args.out) / "tmp"
    cache.mkdir(parents=True, exist_ok=True)
    wanted = set(args.communities.split(",")) if args.communities else None
    results: dict = {"week": args.week, "communities": {}}
    for name, (records, without) in communities(root).items():
        if wanted and name not in wanted:
            continue
        stream = stream_order([r for r in records if r.label is not None])
        n_week = min(args.week, len(stream) // 2)  # a YouTube video has ~350-450 comments: half is the week
        week, rest = stream[:n_week], stream[n_week:]
        model_dir = base_model(root, without, cache)
        log(f"{name}: {len(week)} reviewed, {len(rest)} scored after")
        others = other_tests(root, without, name)
        with tempfile.TemporaryDirectory() as tmp:
            untouched_ctx = load_bundle(model_dir).context("content")
            scores, flagged = score_ctx(untouched_ctx, rest)
            y = np.array([r.label for r in rest])
            fpr, recall = rates(y, flagged)
            entry = {
                "rest_spam": int(y.sum()),
                "rest_ham": int((y == 0).sum()),
                "untouched": {"auc": roc_auc(y, scores), "fpr": fpr, "recall": recall},
                "spamcli": simulate_spamcli(model_dir, week, rest, Path(tmp), others),
                "spamcli_spam_label_only": simulate_spamcli(model_dir, week, rest, Path(tmp), review_unsure=False),
                "spamcli_every_decision": simulate_exports(model_dir, week, rest, Path(tmp), others),
                "local_only": local_only(week, rest),
                "bogofilter": bogofilter(root, without, week, rest, Path(tmp)),
            }
            if not args.no_retrain:
                entry["retrain"] = full_retrain(root, without, week, rest)
        results["communities"][name] = entry
        log(f"  {json.dumps({k: entry[k] for k in ('untouched', 'spamcli')})}")
    if not args.no_cost:
        with tempfile.TemporaryDirectory() as tmp:
            results["learn_cost"] = learn_cost(base_model(root, "", cache), root, Path(tmp))
    text = markdown(results)
    print(text)
    out = Path(args.out)
    (out / "adapt.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "adapt.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
