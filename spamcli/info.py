"""What a model bundle holds, for ``spamcli info``: contexts, languages, examples, thresholds, versions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .bundle import default_model_dir, load_bundle, read_manifest


def describe(directory: Path | None = None) -> dict:
    """A JSON-ready description of the bundle at ``directory`` (default: the shipped model)."""
    directory = Path(directory) if directory else default_model_dir()
    bundle = load_bundle(directory)
    manifest = read_manifest(directory)
    learned = Counter((name, label) for name, ctx in bundle.contexts.items() for label in ctx.learned_labels.values())
    contexts = {}
    for name, ctx in bundle.contexts.items():
        entries = manifest["contexts"][name]["models"]
        contexts[name] = {
            "languages": ctx.languages,
            "thresholds": {"ham": ctx.thresholds.ham, "spam": ctx.thresholds.spam},
            # classify --max-fpr: a profile is labeled at its scoring's cuts, not at the text model's
            "fp_budgets": sorted(
                ctx.scoring.get("spam_at_fpr", {}) if name == "profile" else ctx.spam_at_fpr.get("", {}), key=float
            ),
            "models": {
                lang: {
                    "kind": model.kind,
                    "examples": {"spam": int(model.doc_counts[1]), "ham": int(model.doc_counts[0])},
                    "thresholds": entries[lang].get("thresholds"),
                }
                for lang, model in sorted(ctx.models.items())
            },
            "trained_on": {k: ctx.summary.get(k) for k in ("spam", "ham") if k in ctx.summary},
            "learned": {"spam": learned[(name, "spam")], "ham": learned[(name, "ham")]},
            **_site_fit(ctx.site),
            **({"scoring": ctx.scoring.get("source", "custom")} if ctx.scoring else {}),
            **({"scoring_thresholds": ctx.scoring["thresholds"]} if ctx.scoring.get("thresholds") else {}),
        }
    return {
        "path": str(directory),
        "created": bundle.created,
        "spamcli_version": manifest.get("spamcli_version"),
        "format_version": manifest.get("format_version"),
        "features_version": manifest.get("features_version"),
        "learned_messages": sum(learned.values()),
        "contexts": contexts,
        **({"training": manifest["training"]} if "training" in manifest else {}),
    }


def _site_fit(layer) -> dict:
    """The site layer's gain and offset, and its regression's gain, fitted on a moderation export's
    decisions (site_calibration, site_regression); or without an export, the gain of the regression
    on the lessons (site_lessons)."""
    if layer is None or not layer.is_calibrated:
        return {}
    regression = layer.regression
    if regression is not None and regression.on_lessons:
        return {"lesson_regression": {"gain": regression.gain, "columns": len(regression.columns)}}
    return {
        "site_calibration": {
            "gain": layer.gain,
            "offset": layer.offset,
            "regression_gain": regression.gain if regression else None,
        }
    }
