"""The model bundle on disk: a directory with ``manifest.json`` and one ``.npz`` per model.

Layout (format version 1)::

    MODEL_DIR/
      manifest.json                      format, versions, contexts, languages, thresholds,
                                         feature settings, training summary, sha256 per file
      content-en-3f2a9c1b0d4e.npz        columns (int32), counts (2 x n, uint32 or float64), doc_counts
      content-multi-8b1c....npz          ... one file per (context, language) model
      learned-5d0e....json               messages learned later with ``spamcli learn`` (optional):
                                         sha256 of the normalised text -> class, context, models

Safety: loading reads JSON and ``numpy.load(..., allow_pickle=False)`` only, after checking each
file's sha256 against the manifest, so a model file can never run code. Atomicity: data files get
content-addressed names and are written first; ``manifest.json`` is replaced last with
``os.replace`` (atomic on POSIX). A crash at any point leaves the previous manifest and its files
intact, so the previous model stays loadable. Files no manifest names any more are deleted by a
later save, once :data:`RETIRED_GRACE` seconds have passed since the manifest naming them was
replaced: a reader that has just read that manifest still finds its files (and should it stall
for longer, :func:`load_bundle` starts again from the new manifest).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__, tempfiles
from .errors import ModelError
from .model import KINDS, NaiveBayesModel
from .router import ContextModel, Thresholds
from .text import FEATURES_VERSION, FeatureSettings

FORMAT_NAME = "spamcli-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def default_model_dir() -> Path:
    """The model shipped with the package (``models/default`` in the source tree)."""
    override = os.environ.get("SPAMCLI_MODEL")
    if override:
        return Path(override)
    return Path(str(resources.files("spamcli.models").joinpath("default")))


@dataclass
class Bundle:
    """All contexts of one model directory, plus its manifest metadata."""

    contexts: dict[str, ContextModel]
    created: str = ""
    spamcli_version: str = __version__
    path: Path | None = None
    extra: dict = field(default_factory=dict)
    learned: dict = field(default_factory=dict)  # see spamcli.learning

    def context(self, name: str) -> ContextModel:
        if name not in self.contexts:
            have = ", ".join(sorted(self.contexts)) or "none"
            raise ModelError(f"model has no {name!r} context (it has: {have})")
        return self.contexts[name]


# ---- writing ------------------------------------------------------------------------------
def _npz_bytes(model: NaiveBayesModel) -> bytes:
    buf = io.BytesIO()
    arrays = {
        "columns": model.columns.astype(np.int32),
        "counts": _compact_counts(model.counts),
        "doc_counts": model.doc_counts.astype(np.float64),
    }
    if model.kind == "nblr":
        arrays["coef_plain"] = np.asarray(model.coef_plain, dtype=np.float64)
        arrays["coef_nb"] = np.asarray(model.coef_nb, dtype=np.float64)
    # Uncompressed: loading is a copy, not a decompression (the multilingual model loads in ~10 ms
    # instead of ~80 ms), at about 1.7x the size on disk (benchmarks/README.md, "Speed").
    np.savez(buf, **arrays)
    return buf.getvalue()


def _compact_counts(counts: np.ndarray) -> np.ndarray:
    """NB counts as uint32 when they are whole numbers that fit (they are, unless a caller added
    fractional values): half the bytes of float64, and exactly the same values once loaded."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size and counts.min() >= 0 and counts.max() < 2**32 and np.array_equal(counts, np.floor(counts)):
        return counts.astype(np.uint32)
    return counts


def _write_file_atomic(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or what it held before, never part of it (see tempfiles.py)."""
    fd, tmp = tempfiles.create(path)
    try:
        with os.fdopen(fd, "wb") as handle:  # locked until closed, which is after the rename
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_OUR_FILES = re.compile(r"manifest\.json|.+\.npz|learned-.+\.json")  # whose temporary files are ours


def _thresholds_dict(t: Thresholds) -> dict:
    return {"ham": t.ham, "spam": t.spam}


def _thresholds(data: dict) -> Thresholds:
    ham, spam = float(data["ham"]), float(data["spam"])
    if not 0.0 <= ham <= spam <= 1.0:
        raise ValueError(f"thresholds out of order: ham {ham}, spam {spam}")
    return Thresholds(ham=ham, spam=spam)


def _spam_at_fpr(data: dict) -> dict[str, float]:
    table = {str(budget): float(cut) for budget, cut in data.items()}
    if not all(0.0 <= cut <= 1.0 for cut in table.values()):
        raise ValueError(f"spam thresholds per false-positive budget out of range: {table}")
    return table


def _context_manifest(ctx: ContextModel, files: dict[str, dict]) -> dict:
    return {
        "features": ctx.settings.to_dict(),
        "thresholds": _thresholds_dict(ctx.thresholds),
        **({"spam_at_fpr": ctx.spam_at_fpr[""]} if "" in ctx.spam_at_fpr else {}),
        "min_lang_confidence": ctx.min_lang_confidence,
        "known_languages": ctx.known_languages,
        "unseen_language_threshold": ctx.unseen_language_threshold,
        "lang_backend": ctx.lang_backend,
        "models": files,
        "summary": ctx.summary,
        **({"scoring": ctx.scoring} if ctx.scoring else {}),
    }


RETIRED_GRACE = 60.0  # seconds a data file stays after the manifest naming it was replaced


def _named_files(directory: Path) -> set[str]:
    """The data files the current manifest of ``directory`` names (none if it has none)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        entries = [e for ctx in manifest["contexts"].values() for e in ctx["models"].values()]
        entries += [manifest["learned"]] if "learned" in manifest else []
        return {str(e["file"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _remove_retired(directory: Path, keep: set[str], retiring: set[str]) -> None:
    """Delete the data files no manifest has named for :data:`RETIRED_GRACE` seconds.

    ``retiring``: those the manifest just replaced named. A reader may have read that manifest an
    instant ago and not yet opened them, so they are kept, their modification time set to now:
    from then on it tells since when no manifest names them. A file left by a save that crashed
    before its manifest was written is removed likewise, once its write is that old."""
    now = time.time()
    for path in [*directory.glob("*.npz"), *directory.glob("learned-*.json")]:
        if path.name in keep:
            continue
        try:
            if path.name in retiring:
                os.utime(path, (now, now))
            elif path.stat().st_mtime < now - RETIRED_GRACE:
                path.unlink()
        except OSError:  # gone already, or not ours to touch: a later save tries again
            pass


def save_bundle(bundle: Bundle, directory: Path) -> Path:
    """Write ``bundle`` to ``directory`` atomically (see module docstring). Callers writing one
    directory at a time are serialised by the caller (the CLI holds ``learning.model_lock``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tempfiles.remove_stale(directory, _OUR_FILES)  # of a save that was killed (SIGKILL)
    named_before = _named_files(directory)
    contexts_manifest = {}
    written: set[str] = set()
    for ctx_name, ctx in bundle.contexts.items():
        files = {}
        for lang, model in sorted(ctx.models.items()):
            data = _npz_bytes(model)
            digest = hashlib.sha256(data).hexdigest()
            name = f"{ctx_name}-{lang}-{digest[:12]}.npz"
            if not (directory / name).exists():
                _write_file_atomic(directory / name, data)
            written.add(name)
            files[lang] = {
                "file": name,
                "sha256": digest,
                "kind": model.kind,
                "alpha": model.alpha,
                "intercept": model.intercept,
                "norm_floors": {"plain": model.floor_plain, "nb": model.floor_nb},
                "n_features": model.n_features,
                "calibration": {"a": model.calib_a, "b": model.calib_b},
                "thresholds": _thresholds_dict(ctx.thresholds_for(lang)),
                **({"spam_at_fpr": ctx.spam_at_fpr[lang]} if lang in ctx.spam_at_fpr else {}),
                "examples": {"ham": int(model.doc_counts[0]), "spam": int(model.doc_counts[1])},
            }
        contexts_manifest[ctx_name] = _context_manifest(ctx, files)
    learned_entry = {}
    if bundle.learned:
        data = json.dumps(bundle.learned, sort_keys=True).encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        name = f"learned-{digest[:12]}.json"
        if not (directory / name).exists():
            _write_file_atomic(directory / name, data)
        written.add(name)
        learned_entry = {"learned": {"file": name, "sha256": digest, "messages": len(bundle.learned)}}
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "features_version": FEATURES_VERSION,
        "spamcli_version": __version__,
        "created": bundle.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "contexts": contexts_manifest,
        **bundle.extra,
        **learned_entry,
    }
    _write_file_atomic(directory / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
    _remove_retired(directory, keep=written, retiring=named_before - written)
    return directory


# ---- reading ------------------------------------------------------------------------------
def read_manifest(directory: Path) -> dict:
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelError(f"model directory not found: {directory}")
    if not path.is_file():
        raise ModelError(f"not a spamcli model (no {MANIFEST}): {directory}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"corrupt model manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelError(f"not a spamcli model manifest: {path}")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ModelError(f"model manifest has no format version: {path}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"model format version {version} is newer than this spamcli supports ({FORMAT_VERSION}); upgrade spamcli"
        )
    if manifest.get("features_version", 1) > FEATURES_VERSION:
        raise ModelError("model uses a newer feature version than this spamcli; upgrade spamcli")
    return manifest


def _load_model(directory: Path, entry: dict) -> NaiveBayesModel:
    path = directory / entry["file"]
    data = _verified_bytes(directory, entry)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            columns, counts, docs = arrays["columns"], arrays["counts"], arrays["doc_counts"]
            kind = entry.get("kind", "nb")
            coefs = (arrays["coef_plain"], arrays["coef_nb"]) if kind == "nblr" else (None, None)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"model file unreadable: {path}: {exc}") from None
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r} in {path}; upgrade spamcli")
    if counts.shape != (2, len(columns)) or docs.shape != (2,):
        raise ModelError(f"model file has inconsistent shapes: {path}")
    if kind == "nblr" and any(c.shape != columns.shape for c in coefs):
        raise ModelError(f"model file has inconsistent shapes: {path}")
    calib = entry.get("calibration", {})
    return NaiveBayesModel(
        kind=kind,
        coef_plain=coefs[0],
        coef_nb=coefs[1],
        intercept=float(entry.get("intercept", 0.0)),
        floor_plain=float(entry.get("norm_floors", {}).get("plain", 0.0)),
        floor_nb=float(entry.get("norm_floors", {}).get("nb", 0.0)),
        n_features=int(entry["n_features"]),
        alpha=float(entry["alpha"]),
        columns=columns.astype(np.int32),
        counts=counts.astype(np.float64),
        doc_counts=docs.astype(np.float64),
        calib_a=float(calib.get("a", 1.0)),
        calib_b=float(calib.get("b", 0.0)),
    )


class _MissingFile(ModelError):
    """A data file the manifest names is not there (perhaps removed by a writer since)."""


def _verified_bytes(directory: Path, entry: dict) -> bytes:
    """A data file named by the manifest, after checking its name is safe and its sha256 matches."""
    name = entry["file"]
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"model manifest names an unsafe file: {name!r}")
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise _MissingFile(f"model file missing: {path} ({exc.strerror})") from None
    except OSError as exc:
        raise ModelError(f"model file missing: {path} ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ModelError(f"model file is corrupt (sha256 mismatch): {path}")
    return data


def _load_learned(directory: Path, entry: dict | None) -> dict:
    """The learned-messages table (sha256 -> entry), verified like the model files."""
    if not entry:
        return {}
    try:
        learned = json.loads(_verified_bytes(directory, entry).decode("utf-8"))
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"learned-messages file is unreadable ({exc!r}): {directory}") from None
    if not isinstance(learned, dict):
        raise ModelError(f"learned-messages file is malformed: {directory}")
    return learned


def _attach_site(directory: Path, contexts: dict[str, ContextModel]) -> None:
    """Give each context what its site's moderators taught (``site.sqlite``, see site.py)."""
    import sqlite3

    from . import site

    path = directory / site.SITE_DB
    if not path.is_file():
        return
    try:
        con = site.connect(directory)
        try:
            for name, ctx in contexts.items():
                ctx.site = site.SiteLayer.read(con, name)
                ctx.learned_labels.update(site.labels_of(con, name))
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ModelError(f"site database unreadable: {path}: {exc}") from None


LOAD_ATTEMPTS = 5  # manifests read in turn while a writer keeps replacing them (see load_bundle)


def load_bundle(directory: Path | None = None, with_site: bool = True) -> Bundle:
    """Load and verify a model directory (default: the shipped model); ``with_site``: with what
    its moderators taught (``spamcli learn``) added to the scores.

    A reader never sees half a swap: it reads one manifest, then the files that manifest names,
    which a writer keeps for :data:`RETIRED_GRACE` seconds after replacing it (see save_bundle).
    Should one be gone all the same (a reader stalled that long), and the manifest has been
    replaced meanwhile, the load starts again from the new manifest; a file missing from the
    current manifest is an error (exit code 4)."""
    directory = Path(directory) if directory else default_model_dir()
    tempfiles.remove_stale(directory, _OUR_FILES)  # of a save that was killed (SIGKILL)
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        manifest = read_manifest(directory)
        try:
            return _load_manifest(directory, manifest, with_site)
        except _MissingFile:
            if attempt == LOAD_ATTEMPTS or read_manifest(directory) == manifest:
                raise
    raise AssertionError("unreachable")


def _load_manifest(directory: Path, manifest: dict, with_site: bool) -> Bundle:
    contexts = {}
    try:
        for ctx_name, ctx in manifest["contexts"].items():
            models = {lang: _load_model(directory, e) for lang, e in ctx["models"].items()}
            contexts[ctx_name] = ContextModel(
                context=ctx_name,
                settings=FeatureSettings.from_dict(ctx["features"]),
                models=models,
                thresholds=_thresholds(ctx["thresholds"]),
                model_thresholds={
                    lang: _thresholds(e["thresholds"]) for lang, e in ctx["models"].items() if "thresholds" in e
                },
                spam_at_fpr={
                    name: _spam_at_fpr(entry["spam_at_fpr"])
                    for name, entry in [("", ctx), *ctx["models"].items()]
                    if "spam_at_fpr" in entry
                },
                min_lang_confidence=float(ctx.get("min_lang_confidence", 0.5)),
                known_languages=ctx.get("known_languages"),
                unseen_language_threshold=float(ctx.get("unseen_language_threshold", 0.97)),
                lang_backend=str(ctx.get("lang_backend", "fasttext")),
                summary=ctx.get("summary", {}),
                scoring=dict(ctx.get("scoring", {})),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"model manifest is incomplete or malformed ({exc!r}): {directory}") from None
    if not contexts:
        raise ModelError(f"model has no contexts: {directory}")
    extra = {k: v for k, v in manifest.items() if k in ("training",)}
    learned = _load_learned(directory, manifest.get("learned"))
    for key, entry in learned.items():
        ctx_name, _, digest = key.partition(":")
        if ctx_name in contexts and isinstance(entry, dict) and entry.get("label") in ("spam", "ham"):
            contexts[ctx_name].learned_labels[digest] = entry["label"]
    if with_site:
        _attach_site(directory, contexts)
    return Bundle(
        contexts=contexts,
        learned=learned,
        created=manifest.get("created", ""),
        spamcli_version=manifest.get("spamcli_version", ""),
        path=directory,
        extra=extra,
    )
