"""Replay the moderator's week of ``benchmarks/adapt.py`` over precomputed base scores, to compare site-layer designs.

    python benchmarks/replay.py [--datasets PATH] [--out benchmarks/results] [--layers shipped,layer-only]
        [--teaching review|hidden-and-flagged|hidden-only]

``adapt.py`` teaches a real model directory through ``spamcli learn``'s library call (minutes per
community). A candidate design is judged faster here: each community's base log-odds, labels' cuts
and feature columns are computed once with ``adapt.py``'s base models (cached in
``OUT/tmp/replay/``), then the same week is replayed in memory under the same review protocol (a
genuine message labelled ``spam`` or ``unsure`` taught as ham, a spam not labelled ``spam`` taught as
spam, in order), the rest scored, and the checks of the issue's bar counted: AUC after learning ≥
the untouched and the local-only model, FP rate ≤ 3% and recall ≥ 70% at the model's own ``spam``
label, the other test sets within 0.005, the curve above bogofilter's (read from ``OUT/adapt.json``,
so run ``adapt.py`` first for that check). Seconds per design once prepared. An approximation of
``adapt.py``'s spamcli column: there, a later message whose text is one already taught gets the
moderators' label outright; here it is scored like any other (the figures differ by a few points).

Layers:

- ``shipped``: what spamcli ships, the site layer (:mod:`spamcli.site`) and the regression on the
  lessons (:mod:`spamcli.site_lessons`), with spamcli's own formulas, constants and fit;
- ``layer-only``: the site layer alone (spamcli before the lesson regression);
- ``uncapped``: ``shipped`` with the larger taught class counted in full (spamcli before
  :func:`spamcli.site.lesson_class_weights`).

``--teaching``: what the moderators teach of the week, in order. ``review`` (the default) is the
issue's protocol: a genuine message labelled ``spam`` or ``unsure``, a spam not labelled ``spam``.
``hidden-and-flagged``: every spam (what a team that hides spam and teaches what it hid does) and
the flagged genuine messages. ``hidden-only``: every spam and no genuine message.

Measured and not shipped (see ``benchmarks/README.md``, "Design: a site layer, and the candidates
measured"): the lesson regression from the first lesson of each class (``min(s, h) / (min(s, h) +
5)`` with no minimum: a Telegram dip to 0.677 AUC after 50 reviewed, with 2 genuine messages taught).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import adapt  # noqa: E402

from spamcli import site, site_lessons  # noqa: E402
from spamcli.bundle import load_bundle  # noqa: E402
from spamcli.metrics import roc_auc  # noqa: E402
from spamcli.router import FALLBACK, base_rates  # noqa: E402

CURVE = adapt.CURVE


# ---- preparation: what the base model says, once per community ---------------------------------
def _part(ctx, records) -> dict:
    """Base log-odds, label cuts and distinct feature columns of ``records`` under ``ctx``."""
    texts = [r.text for r in records]
    detected = ctx.detect(texts, [None] * len(texts))
    routes = [ctx.route(lang, conf) for lang, conf in detected]
    thresholds = [ctx.thresholds_for(r) for r in routes]
    known, sure = ctx.known_languages, ctx.min_lang_confidence
    return {
        "z": ctx.pipeline().base_logits(texts, None),
        "cols": [np.unique(np.fromiter(row, dtype=np.int64)) for row in map(ctx.vectoriser.row, texts)],
        "spam_cut": np.array([t.spam for t in thresholds]),
        "ham_cut": np.array([t.ham for t in thresholds]),
        # the rule for a language the model was not trained on (see router.ContextModel._labels)
        "unseen": np.array([known is not None and c >= sure and lang not in known for lang, c in detected]),
        "unseen_cut": ctx.unseen_language_threshold,
        "y": np.array([r.label for r in records]),
    }


def prepare(root: Path, out: Path, wanted: set[str] | None) -> dict[str, dict]:
    cache = out / "tmp" / "replay"
    cache.mkdir(parents=True, exist_ok=True)
    data = {}
    for name, (records, without) in adapt.communities(root).items():
        if wanted and name not in wanted:
            continue
        path = cache / f"{name.replace(' ', '_')}.pkl"
        if not path.is_file():
            stream = adapt.stream_order([r for r in records if r.label is not None])
            n_week = min(400, len(stream) // 2)
            week, rest = stream[:n_week], stream[n_week:]
            ctx = load_bundle(adapt.base_model(root, without, out / "tmp")).context("content")
            base = ctx.models[FALLBACK]
            prepared = {
                "week": _part(ctx, week),
                "rest": _part(ctx, rest),
                "others": _part(ctx, adapt.other_tests(root, without, name)),
                "base": (base.columns, np.asarray(base.counts), np.asarray(base.doc_counts)),
                "local_auc": adapt.local_only(week, rest)["auc"],
            }
            path.write_bytes(pickle.dumps(prepared))  # our own cache, written and read by this script
            adapt.log(f"prepared {name}")
        data[name] = pickle.loads(path.read_bytes())  # noqa: S301 - our own cache (above)
    return data


# ---- layers -------------------------------------------------------------------------------------
class LayerOnly:
    """The site layer alone, in memory: taught counts per column (the larger class capped as
    :func:`spamcli.site.lesson_class_weights` caps it), scored by spamcli.site's own
    :class:`~spamcli.site.SiteLayer` against the base model's rates (``router.base_rates``)."""

    def __init__(self, prepared: dict):
        columns, counts, docs = prepared["base"]
        self.base = SimpleNamespace(columns=columns, counts=counts, doc_counts=docs)
        self.spam: dict[int, int] = {}
        self.ham: dict[int, int] = {}
        self.n_spam = self.n_ham = 0
        self._layer = None

    def learn(self, cols: np.ndarray, y: int) -> None:
        counts = self.spam if y else self.ham
        for c in cols.tolist():
            counts[c] = counts.get(c, 0) + 1
        self.n_spam += y == 1
        self.n_ham += y == 0
        self._layer = None

    def regression(self) -> site.SiteRegression | None:
        return None

    def class_weights(self) -> tuple[float, float]:
        return site.lesson_class_weights(self.n_spam, self.n_ham)

    def shift(self, rows: list[np.ndarray]) -> np.ndarray:
        if not self.n_spam + self.n_ham:
            return np.zeros(len(rows))
        if self._layer is None:
            keys = np.array(sorted(set(self.spam) | set(self.ham)), dtype=np.int64)
            s = np.array([self.spam.get(k, 0) for k in keys.tolist()], dtype=np.float64)
            h = np.array([self.ham.get(k, 0) for k in keys.tolist()], dtype=np.float64)
            weights = self.class_weights()
            layer = site.SiteLayer(
                keys, s, h, self.n_spam + self.n_ham, regression=self.regression(), class_weights=weights
            )
            self._layer = (layer, layer.deltas(base_rates(self.base, keys)))
        layer, deltas = self._layer
        indptr = np.concatenate([[0], np.cumsum([len(cols) for cols in rows])])
        return layer.shift(indptr, np.concatenate(rows), deltas)


class Shipped(LayerOnly):
    """The layer and the regression on the lessons, refitted after each (:mod:`spamcli.site_lessons`,
    its own fit; its sample here is every lesson, in the order taught, as the week holds fewer
    than its cap)."""

    def __init__(self, prepared: dict):
        super().__init__(prepared)
        self.taught: list[tuple[np.ndarray, int]] = []

    def learn(self, cols: np.ndarray, y: int) -> None:
        super().learn(cols, y)
        self.taught.append((cols, y))

    def regression(self) -> site.SiteRegression | None:
        if min(self.n_spam, self.n_ham) < site_lessons.MIN_EACH:
            return None
        return site_lessons.fit([c for c, _ in self.taught], np.array([y for _, y in self.taught]))


class Uncapped(Shipped):
    """What shipped before the class cap: the larger taught class counted in full."""

    def class_weights(self) -> tuple[float, float]:
        return 1.0, 1.0


LAYERS = {"shipped": Shipped, "layer-only": LayerOnly, "uncapped": Uncapped}
# What the moderators teach of the week, in order: the review protocol (a genuine message
# labelled spam or unsure, a spam not labelled spam); every spam they hide (caught or not) and the
# genuine messages flagged; every spam they hide and nothing else.
TEACHING = ("review", "hidden-and-flagged", "hidden-only")


# ---- the replay ----------------------------------------------------------------------------------
def _flagged(p: np.ndarray, part: dict, idx) -> np.ndarray:
    """The ``spam`` label at probabilities ``p`` of ``part``'s records ``idx``."""
    spam = p >= part["spam_cut"][idx]
    return spam & ~(part["unseen"][idx] & (p < part["unseen_cut"]))


def replay(prepared: dict, make, teaching: str = "review") -> dict:
    week, rest, others = prepared["week"], prepared["rest"], prepared["others"]
    layer = make(prepared)
    curve, taught = {}, {"spam": 0, "ham": 0}
    for i in range(len(week["y"])):
        if i in CURVE:
            curve[i] = roc_auc(rest["y"], rest["z"] + layer.shift(rest["cols"]))
        p = 1.0 / (1.0 + np.exp(-(week["z"][i] + layer.shift([week["cols"][i]])[0])))
        y = int(week["y"][i])
        labelled_spam = bool(_flagged(np.array([p]), week, [i])[0])
        flagged = labelled_spam or p >= week["ham_cut"][i]  # flagged for review
        if y == 0 and flagged and teaching != "hidden-only":  # taught as ham
            layer.learn(week["cols"][i], 0)
            taught["ham"] += 1
        elif y == 1 and (not labelled_spam or teaching != "review"):
            layer.learn(week["cols"][i], 1)
            taught["spam"] += 1
    z = rest["z"] + layer.shift(rest["cols"])
    flagged = _flagged(1.0 / (1.0 + np.exp(-z)), rest, slice(None))
    curve[len(week["y"])] = auc = roc_auc(rest["y"], z)
    return {
        "auc": auc,
        "fpr": float(flagged[rest["y"] == 0].mean()),
        "recall": float(flagged[rest["y"] == 1].mean()),
        "others": roc_auc(others["y"], others["z"] + layer.shift(others["cols"])),
        "curve": curve,
        "taught": taught,
    }


def failed_checks(prepared: dict, result: dict, bogofilter_curve: dict) -> list[str]:
    untouched = roc_auc(prepared["rest"]["y"], prepared["rest"]["z"])
    others_before = roc_auc(prepared["others"]["y"], prepared["others"]["z"])
    curve_ok = all(result["curve"][k] > bogofilter_curve[str(k)] for k in result["curve"] if str(k) in bogofilter_curve)
    checks = {
        "auc>=untouched": result["auc"] >= untouched,
        "auc>=local-only": result["auc"] >= prepared["local_auc"],
        "fpr<=3%": result["fpr"] <= 0.03,
        "recall>=70%": result["recall"] >= 0.70,
        "others-0.005": result["others"] >= others_before - 0.005,
        "curve>bogofilter": curve_ok,
    }
    return [name for name, ok in checks.items() if not ok]


def main(argv: list[str] | None = None) -> int:
    parser = adapt.arguments(__doc__)
    parser.add_argument("--communities", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--layers", default="shipped,layer-only", help=f"comma-separated, of: {', '.join(LAYERS)}")
    parser.add_argument("--teaching", default="review", choices=TEACHING, help="what moderators teach of the week")
    args = parser.parse_args(argv)
    root = adapt.shared_datasets(args.datasets)
    if root is None:
        return 3
    layers = args.layers.split(",")
    if unknown := [name for name in layers if name not in LAYERS]:
        print(f"unknown layer {unknown[0]!r} (choose from {', '.join(LAYERS)})", file=sys.stderr)
        return 2
    out = Path(args.out)
    adapt_json = out / "adapt.json"
    bogofilter = {}
    if adapt_json.is_file():
        for name, entry in json.loads(adapt_json.read_text())["communities"].items():
            bogofilter[name] = (entry.get("bogofilter") or {}).get("curve", {})
    data = prepare(root, out, set(args.communities.split(",")) if args.communities else None)
    lines = []
    for layer in layers:
        fails = 0
        rows = ["| community | AUC | FPR | recall | taught spam / ham | other test sets lost | curve | failed |"]
        rows.append("|---|---|---|---|---|---|---|---|")
        for name, prepared in data.items():
            r = replay(prepared, LAYERS[layer], args.teaching)
            failed = failed_checks(prepared, r, bogofilter.get(name, {}))
            fails += len(failed)
            lost = roc_auc(prepared["others"]["y"], prepared["others"]["z"]) - r["others"]
            curve = " ".join(f"{r['curve'][k]:.3f}" for k in sorted(r["curve"]))
            rows.append(
                f"| {name} | {r['auc']:.3f} | {r['fpr']:.1%} | {r['recall']:.1%} | {r['taught']['spam']} / "
                f"{r['taught']['ham']} | {lost:.4f} | {curve} | {', '.join(failed)} |"
            )
        lines += [f"Layer `{layer}`, teaching `{args.teaching}`: {fails} checks fail", "", *rows, ""]
        adapt.log(f"{layer}: {fails} checks fail")
    text = "\n".join(lines)
    print(text)
    (out / ("replay.md" if args.teaching == "review" else f"replay-{args.teaching}.md")).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
