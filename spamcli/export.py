"""Portable, pickle-free export of a model bundle as one JSON document (optionally gzipped).

The document is specified in ``docs/FORMAT.md``: feature extraction (normalisation regexes,
tokens, n-grams, CRC-32 hashing), then per language the NB log-count ratios ``r`` (a sparse vector
plus ``default_weight`` for unseen columns), for ``kind == "nblr"`` the regression weights ``u``,
``v`` and ``intercept``, and Platt calibration ``a``, ``b``. For the distinct columns ``c`` of a
message (``x_c`` = 1 with binary features)::

    kind "nb":    z = sum_c x_c r_c
    kind "nblr":  z = intercept + sum_c x_c u_c / sqrt(max(sum_c x_c^2, floor_plain))
                                + sum_c x_c r_c v_c / sqrt(max(sum_c (x_c r_c)^2, floor_nb))
    score = 1 / (1 + exp(-(a * z + b)))

``r_c`` is ``r[i]`` where ``columns[i] == c``, else ``default_weight``; ``u_c``/``v_c`` are 0 for
columns not listed. What the site's moderators taught (``site``: the per-column ``deltas`` and
``weight``, and ``learned_labels``), the unseen-language rule (``known_languages``,
``unseen_language_threshold``) and the profile scoring (``profile_scoring``) are in the document
too: it labels exactly as spamcli does. ``test_vectors`` hold texts (and profiles) with their
expected features, scores and labels, so a re-implementation can check itself.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, site, text
from .bundle import Bundle
from .errors import ModelError
from .outfile import write_output
from .records import Record
from .router import FALLBACK, ContextModel

EXPORT_FORMAT = "spamcli-export"
EXPORT_VERSION = 1
# A site calibrated by a moderation export adds ``gain`` and ``offset`` to the formula: a reader of
# version 1 would ignore them and score wrongly, so such a document is version 2.
EXPORT_VERSION_CALIBRATED = 2
# A site regression (fitted on a moderation export's decisions, or on the lessons) adds a term version 2 lacks.
EXPORT_VERSION_REGRESSION = 3
_VECTOR_TEXTS = (
    "WIN a FREE iPhone!!! Claim now at http://win.example/claim or call 0800 123 4567",
    "Are we still meeting for lunch tomorrow at 12?",
    "Gagnez 1000€ maintenant, cliquez ici: www.gain.example",
    "这是一个测试 免费领取",
)
_PROFILE_VECTORS = (
    {"id": "p1", "text": "Best casino bonus, visit www.casino-bonus.example now", "personal_url": "http://x.example"},
    {"id": "p2", "text": "Product manager, I like hiking and open data.", "comments_count": 12},
    {"id": "p3", "text": "", "verified": True},
    {"id": "p4", "text": "SEO services cheap backlinks contact me whatsapp +1 555 123 4567", "comments_count": 0},
)


def _site_block(ctx: ContextModel) -> dict | None:
    """The site layer as scoring data: per taught column its evidence, and the layer's weight."""
    if ctx.site is None:
        return None
    return {
        "weight": ctx.site.weight,
        "gain": ctx.site.gain,  # fitted on a moderation export's decisions (site_calibration), else 1
        "offset": ctx.site.offset,  # likewise, else 0; added to every message's log-odds
        "floor": site.FLOOR,
        "taught_messages": ctx.site.n_messages,
        "columns": ctx.site.columns.tolist(),
        "deltas": ctx.site_deltas().tolist(),
        "regression": _regression_block(ctx.site.regression),
    }


def _regression_block(regression: site.SiteRegression | None) -> dict | None:
    """The site regression (fitted on a moderation export's decisions, site_regression, or on the
    lessons, site_lessons), if any."""
    if regression is None:
        return None
    return {
        "gain": regression.gain,
        "columns": regression.columns.tolist(),
        "weights": regression.weights.tolist(),
        "fitted_on": "lessons" if regression.on_lessons else "export",
    }


def _profile_vectors(bundle: Bundle) -> list[dict]:
    from .profiles import ProfileScorer

    scorer = ProfileScorer(bundle)
    records = [
        Record(id=v["id"], text=v["text"], fields={k: x for k, x in v.items() if k not in ("id", "text")})
        for v in _PROFILE_VECTORS
    ]
    out = []
    for vector, item in zip(_PROFILE_VECTORS, scorer.score_records(records)):
        expected = {k: item.get(k) for k in ("score", "label", "signals", "text_score", "model")}
        out.append({"profile": vector, **expected})
    return out


def _patterns() -> dict[str, str]:
    """The regular expressions of the normaliser, as Python ``re`` source (see FORMAT.md)."""
    names = (
        "_INVISIBLE_RE",
        "_HREF_RE",
        "_TAG_RE",
        "_EMAIL_RE",
        "_URL_RE",
        "_PHONE_RE",
        "_NUMBER_RE",
        "_REPEAT_RE",
        "_SPACE_RE",
        "_EMOJI_RE",
        "_TOKEN_RE",
        "_NOSPACE_RE",
    )
    return {name.strip("_").removesuffix("_RE").lower(): getattr(text, name).pattern for name in names}


def export_document(bundle: Bundle, with_counts: bool = False) -> dict:
    contexts = {}
    vectors = []
    calibrated = any(ctx.site is not None and ctx.site.is_calibrated for ctx in bundle.contexts.values())
    regression = any(ctx.site is not None and ctx.site.regression is not None for ctx in bundle.contexts.values())
    for ctx_name, ctx in bundle.contexts.items():
        models = {}
        for lang, model in ctx.models.items():
            entry = {
                "kind": model.kind,
                "alpha": model.alpha,
                "default_weight": model.default_weight,
                "calibration": {"a": model.calib_a, "b": model.calib_b},
                "thresholds": {"ham": ctx.thresholds_for(lang).ham, "spam": ctx.thresholds_for(lang).spam},
                **({"spam_at_fpr": ctx.spam_at_fpr[lang]} if lang in ctx.spam_at_fpr else {}),
                "columns": model.columns.tolist(),
                "weights": model.sparse_weights().tolist(),
            }
            if model.kind == "nblr":
                entry["intercept"] = model.intercept
                entry["norm_floors"] = {"plain": model.floor_plain, "nb": model.floor_nb}
                entry["coef_plain"] = model.coef_plain.tolist()
                entry["coef_nb"] = model.coef_nb.tolist()
            if with_counts:
                entry["counts"] = {"ham": model.counts[0].tolist(), "spam": model.counts[1].tolist()}
                entry["doc_counts"] = {"ham": float(model.doc_counts[0]), "spam": float(model.doc_counts[1])}
            models[lang] = entry
        contexts[ctx_name] = {
            "features": ctx.settings.to_dict(),
            "thresholds": {"ham": ctx.thresholds.ham, "spam": ctx.thresholds.spam},
            **({"spam_at_fpr": ctx.spam_at_fpr[""]} if "" in ctx.spam_at_fpr else {}),
            "min_lang_confidence": ctx.min_lang_confidence,
            "known_languages": ctx.known_languages,
            "unseen_language_threshold": ctx.unseen_language_threshold,
            "site": _site_block(ctx),
            "learned_labels": dict(sorted(ctx.learned_labels.items())),
            "language_identification": "fastText lid.176.ftz, top-1 label without '__label__'",
            "fallback_model": FALLBACK,
            "models": models,
        }
        for sample in _VECTOR_TEXTS:
            verdict = ctx.score([sample], [None])[0]
            vectors.append(
                {
                    "context": ctx_name,
                    "text": sample,
                    "normalised": text.normalise(sample),
                    "features": text.features(sample, ctx.settings),
                    "lang": verdict.lang,
                    "model": verdict.model,
                    "score": verdict.score,
                    "label": verdict.label,
                }
            )
    profile_scoring = None
    if "profile" in bundle.contexts or "content" in bundle.contexts:
        from .profiles import ProfileScorer

        scorer = ProfileScorer(bundle)
        profile_scoring = {"text_context": scorer.text_context, **scorer.config.to_dict()}
    return {
        "format": EXPORT_FORMAT,
        "format_version": (
            EXPORT_VERSION_REGRESSION if regression else EXPORT_VERSION_CALIBRATED if calibrated else EXPORT_VERSION
        ),
        "spamcli_version": __version__,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "specification": "docs/FORMAT.md in the spamcli source",
        "hashing": "zlib CRC-32 (IEEE 802.3, reflected, init 0xFFFFFFFF, xorout 0xFFFFFFFF) of the "
        "UTF-8 feature string, modulo n_features",
        "normaliser_patterns": _patterns(),
        "contexts": contexts,
        "profile_scoring": profile_scoring,
        "test_vectors": vectors,
        "profile_test_vectors": _profile_vectors(bundle) if profile_scoring else [],
    }


def export_bundle(bundle: Bundle, out: Path, with_counts: bool = False) -> Path:
    """Write the export document to ``out`` (gzip when it ends in ``.gz``): atomically for a file,
    through a link to its target, directly to a device or pipe (see outfile.py)."""
    out = Path(out)
    try:
        data = json.dumps(export_document(bundle, with_counts), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # NaN or infinity somewhere in the model: JSON has no such numbers
        raise ModelError("the model holds a number that is not finite (NaN or infinity); retrain it") from None
    if out.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    if not os.path.lexists(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    return write_output(out, data, "--out")


def load_export(path: Path) -> dict:
    """Read an export document (JSON or gzipped JSON); plain data, nothing executed."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    doc = json.loads(raw.decode("utf-8"))
    if doc.get("format") != EXPORT_FORMAT:
        raise ValueError("not a spamcli export document")
    return doc
