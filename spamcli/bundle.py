"""The model bundle on disk: a directory with ``manifest.json`` and one ``.npz`` per model.

Layout (format version 1)::

    MODEL_DIR/
      manifest.json                      format, versions, contexts, languages, thresholds,
                                         feature settings, training summary, sha256 per file
      content-en-3f2a9c1b0d4e.npz        columns (int32), counts (2 x n, uint32 or float64), doc_counts
      content-multi-8b1c....npz          ... one file per (context, language) model
      learned-5d0e....json               messages learned later with ``spamcli learn`` (optional):
                                         sha256 of the normalised text -> class, context, models

Safety: loading reads JSON and the numbers of ``.npy`` arrays only (a plain numeric dtype, never a
pickle), after checking each file's sha256 against the manifest, so a model file can never run code.
Nor can one hang or exhaust memory before it is checked: every file must be a regular file within a
size bound (a FIFO, a symlink to ``/dev/zero`` or a 1 GB manifest is refused unread), each array's
``.npy`` header is checked against the manifest's ``n_features`` before its data is inflated, and
every manifest field and array must have its type and a sane, finite range (docs/FORMAT.md);
anything else is a :class:`ModelError` (exit 4). Atomicity: data files get content-addressed names
and are written first (a file of that name already there is kept only if it holds exactly the same
bytes, so saving over a damaged model repairs it); ``manifest.json`` is replaced last with
``os.replace`` (atomic on POSIX); files no manifest names any more are deleted by a later save, once
:data:`RETIRED_GRACE` seconds have passed since the manifest naming them was replaced: a reader that
has just read that manifest still finds its files (and should it stall for longer,
:func:`load_bundle` starts again from the new manifest). A crash at any point leaves the previous
manifest and its files intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import queue
import re
import stat
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, tempfiles
from .errors import ModelError, SpamcliError
from .langid import BACKENDS as LANG_BACKENDS
from .langid import shipped_file
from .model import KINDS, NaiveBayesModel
from .router import FALLBACK, ContextModel, Thresholds
from .text import FEATURES_VERSION, FeatureSettings

FORMAT_NAME = "spamcli-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SITE_DB = "site.sqlite"  # what the site's moderators taught (see site.py), beside the model


def default_model_dir() -> Path:
    """The model shipped with the package (``models/default`` in the source tree)."""
    override = os.environ.get("SPAMCLI_MODEL")
    if override:
        return Path(override)
    return shipped_file("default")


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
            raise _no_context(name, self.contexts)
        return self.contexts[name]


def _no_context(name: str, have) -> ModelError:
    return ModelError(f"model has no {name!r} context (it has: {', '.join(sorted(have)) or 'none'})")


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
    # Uncompressed: loading reads the arrays in place, with no decompression (the multilingual model
    # loaded in ~10 ms instead of ~80 ms), at about 1.7x the size on disk (benchmarks/README.md,
    # "Speed"). What numpy.savez writes (with its fixed timestamp: the same model is the same bytes,
    # so the same content-addressed name), but each array's data aligned to 64 bytes in the file,
    # so that none needs a copy to be aligned in memory.
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)  # its header pads to 64 bytes
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            pad = -(buf.tell() + zipfile.sizeFileHeader + len(info.filename) + 6) % _ALIGN
            info.extra = struct.pack("<HHH", _ALIGNMENT_FIELD, 2 + pad, _ALIGN) + bytes(pad)
            archive.writestr(info, member.getvalue())
    return buf.getvalue()


_ALIGN = 64
_ALIGNMENT_FIELD = 0xD935  # the zip extra field of Android's zipalign: the alignment, then padding


def _compact_counts(counts: np.ndarray) -> np.ndarray:
    """NB counts as uint32 when they are whole numbers that fit (they are, unless a caller added
    fractional values): half the bytes of float64, and exactly the same values once loaded.
    Row-major, as they are loaded (see _load_model), so that saving a loaded model again writes
    the same bytes."""
    counts = np.ascontiguousarray(counts, dtype=np.float64)
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
            os.chmod(tmp, tempfiles.mode())
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file (not a symlink) holding exactly ``data``; never blocks."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        return _read_regular(path, len(data), "model file") == data
    except (OSError, ModelError):
        return False


def _ensure_file(path: Path, data: bytes) -> None:
    """Content-addressed files are named by their data, so one of the same name usually holds it
    already; but one damaged since (or replaced by a FIFO or symlink) would stay damaged under the
    new manifest: compare, and rewrite it atomically unless it holds exactly ``data``."""
    if not _holds(path, data):
        _write_file_atomic(path, data)


_OUR_FILES = re.compile(r"manifest\.json|.+\.npz|learned-.+\.json")  # whose temporary files are ours


def _thresholds_dict(t: Thresholds) -> dict:
    return {"ham": t.ham, "spam": t.spam}


def _thresholds(data: dict) -> Thresholds:
    ham, spam = _number(data["ham"], "ham threshold", 0.0, 1.0), _number(data["spam"], "spam threshold", 0.0, 1.0)
    if not ham <= spam:
        raise ValueError(f"thresholds out of order: ham {ham}, spam {spam}")
    return Thresholds(ham=ham, spam=spam)


def _spam_at_fpr(data: dict) -> dict[str, float]:
    """Spam thresholds per false-positive budget: budget keys like "0.005", cuts in [0, 1]."""
    table = {}
    for budget, cut in data.items():
        try:
            ok = 0.0 < float(budget) < 1.0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"false-positive budget {budget!r} is not a rate")
        table[budget] = _number(cut, f"spam threshold at a false-positive budget of {budget}", 0.0, 1.0)
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
    """Write ``bundle`` to ``directory`` atomically (see module docstring). Writers that read the
    model before writing it (a merge, a change of counts) hold :func:`model_lock` around both."""
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
            _ensure_file(directory / name, data)
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
        _ensure_file(directory / name, data)
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


LOCK_FILE = ".lock"


@contextmanager
def model_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory/.lock`` (blocks until free; released on exit): ``flock`` on
    Unix, ``msvcrt`` locking on Windows (filelock). Held by every read-modify-write of a model
    directory (:func:`merge_context`, forgetting legacy learned messages), so none is lost."""
    from filelock import FileLock  # only for writers

    with FileLock(str(Path(directory) / LOCK_FILE)):
        yield


def merge_context(directory: Path, ctx: ContextModel, warn: Callable[[str], None] | None = None) -> Path:
    """Write ``ctx`` into the model at ``directory`` (created if need be) as its context
    ``ctx.context``, keeping the model's other contexts and the messages learned into them, under
    :func:`model_lock` (a concurrent ``spamcli learn`` waits instead of being overwritten). An
    existing model that cannot be read is replaced, after ``warn(message)``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with model_lock(directory):
        existing, learned = {}, {}
        if (directory / MANIFEST).exists():
            try:
                old = load_bundle(directory)
                existing = dict(old.contexts)
                # messages learned into other contexts stay; this context's models are new
                learned = {k: v for k, v in old.learned.items() if v.get("context") != ctx.context}
            except SpamcliError as exc:
                if warn is not None:
                    warn(f"replacing unreadable model in {directory}: {exc}")
        existing[ctx.context] = ctx
        return save_bundle(Bundle(contexts=existing, learned=learned), directory)


# ---- reading ------------------------------------------------------------------------------
# Every file is checked before it is read: a regular file (a FIFO would block the open, a symlink to
# /dev/zero never end), and no larger than its kind of file can be. The bounds are far above what
# training writes: the shipped manifest is 25 kB, a model file at most ~36 bytes per feature.
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_LEARNED_BYTES = 256 * 2**20
MODEL_FILE_BYTES_PER_FEATURE = 40  # columns int32 + counts 2 x float64 + two float64 coefficient rows
MODEL_FILE_OVERHEAD = 2**16  # zip and .npy headers


class _MissingFile(ModelError):
    """A data file the manifest names is not there (perhaps removed by a writer since)."""


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, after checking it is a regular file of at most ``limit`` bytes
    (stat first, then an ``O_NONBLOCK`` open and fstat, so neither a FIFO nor a device is read)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelError(f"{what} is not a regular file: {path}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise _MissingFile(f"{what} missing: {path} ({exc.strerror})") from None
    except OSError as exc:
        raise ModelError(f"{what} missing: {path} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # replaced between the stat and the open
            raise ModelError(f"{what} is not a regular file: {path}")
        if info.st_size > limit:
            raise ModelError(f"{what} is too large ({info.st_size} bytes, at most {limit}): {path}")
        data = handle.read(limit + 1)  # a file that grows meanwhile is still read only this far
    if len(data) > limit:
        raise ModelError(f"{what} is too large (over {limit} bytes): {path}")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _parse_json(data: bytes):
    """JSON without NaN/Infinity; deep nesting and huge integers are ValueError, not a crash."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _number(value: object, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A JSON number, finite and in ``[low, high]``; ValueError otherwise (no text, no booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{what} is out of range") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{what} is out of range: {value!r}")
    return number


def read_manifest(directory: Path) -> dict:
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        what = "model path is not a directory" if os.path.lexists(directory) else "model directory not found"
        raise ModelError(f"{what}: {directory}")
    if not os.path.lexists(path):
        raise ModelError(f"not a spamcli model (no {MANIFEST}): {directory}")
    raw = _read_regular(path, MAX_MANIFEST_BYTES, "model manifest")
    try:
        manifest = _parse_json(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"corrupt model manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelError(f"not a spamcli model manifest: {path}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"model manifest has no format version: {path}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"model format version {version} is newer than this spamcli supports ({FORMAT_VERSION}); upgrade spamcli"
        )
    features_version = manifest.get("features_version", 1)
    if isinstance(features_version, bool) or not isinstance(features_version, int) or features_version < 1:
        raise ModelError(f"model manifest has a malformed features version: {path}")
    if features_version > FEATURES_VERSION:
        raise ModelError("model uses a newer feature version than this spamcli; upgrade spamcli")
    return manifest


# The arrays of a model file: dtype kinds allowed, and the shape each must have (k = columns).
_ARRAYS = {"columns": "iu", "counts": "uif", "doc_counts": "uif"}
_NBLR_ARRAYS = {"coef_plain": "f", "coef_nb": "f"}


def _npz_arrays(data: bytes, path: Path, names: dict[str, str], n_features: int) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the .npz ``data``, each read only after its .npy header declares a
    plain numeric dtype and at most ``2 * n_features`` elements, and the member holds exactly that
    many bytes (so a deflated member claiming billions of floats is refused before it is inflated).

    A stored (not deflated) member, as :func:`save_bundle` writes, becomes a read-only view of
    ``data`` where it is aligned for its dtype (no copy: the whole file's sha256 is checked
    already), else a copy; a deflated one is inflated. Only numbers are read: nothing here unpickles."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: info for info in archive.infolist()}
            arrays = {}
            for name, kinds in names.items():
                info = members.get(f"{name}.npy")
                if info is None:
                    raise ModelError(f"model file has no {name!r} array: {path}")
                if info.file_size > 2 * n_features * 8 + MODEL_FILE_OVERHEAD:  # before inflating anything
                    raise ModelError(f"model file array {name!r} is too large ({info.file_size} bytes): {path}")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise ModelError(f"model file array {name!r} has .npy version {version}: {path}")
                    header = member.tell()
                if dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype or dtype.itemsize > 8:
                    raise ModelError(f"model file array {name!r} has dtype {dtype}: {path}")
                elements = math.prod(shape)
                if elements > 2 * n_features:
                    raise ModelError(f"model file array {name!r} is too large ({elements} values): {path}")
                if header + elements * dtype.itemsize != info.file_size:
                    raise ModelError(f"model file array {name!r} does not hold what its header says: {path}")
                if info.compress_type == zipfile.ZIP_STORED:
                    buffer, offset = data, _member_start(data, info) + header
                else:
                    buffer, offset = archive.read(info), header
                flat = np.frombuffer(buffer, dtype=dtype, count=elements, offset=offset)
                if not flat.flags.aligned:  # numpy's own loops would copy it at every use
                    flat = flat.copy()
                arrays[name] = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
            return arrays
    except (ValueError, OSError, EOFError, struct.error, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ModelError(f"model file unreadable: {path}: {exc}") from None


def _member_start(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where the bytes of the stored zip member ``info`` begin in ``data`` (after its local header)."""
    fields = struct.unpack_from(zipfile.structFileHeader, data, info.header_offset)
    if fields[0] != zipfile.stringFileHeader or info.compress_size != info.file_size:
        raise ValueError(f"bad zip member {info.filename!r}")
    start = info.header_offset + zipfile.sizeFileHeader + fields[10] + fields[11]  # + name, extra field
    if start + info.file_size > len(data):
        raise ValueError(f"zip member {info.filename!r} runs past the end of the file")
    return start


def _check_arrays(path: Path, n_features: int, columns, counts, docs, coefs) -> None:
    """What scoring relies on: sorted distinct columns below ``n_features``, finite counts >= 0."""
    k = len(columns)
    if columns.ndim != 1 or counts.shape != (2, k) or docs.shape != (2,):
        raise ModelError(f"model file has inconsistent shapes: {path}")
    if any(c is not None and c.shape != columns.shape for c in coefs):
        raise ModelError(f"model file has inconsistent shapes: {path}")
    if k and (columns[0] < 0 or columns[-1] >= n_features or np.any(np.diff(columns) <= 0)):
        raise ModelError(f"model file columns are not sorted, distinct and below n_features: {path}")
    for values in (counts, docs):
        if values.dtype.kind == "u":  # (uint32, as save_bundle writes whole counts: nothing to check)
            continue
        if not (values.dtype.kind == "i" or np.all(np.isfinite(values))) or not np.all(values >= 0):
            raise ModelError(f"model file counts are negative or not finite: {path}")
    if any(c is not None and not np.all(np.isfinite(c)) for c in coefs):
        raise ModelError(f"model file coefficients are not finite: {path}")


def _load_model(directory: Path, entry: dict, settings: FeatureSettings, digests: _Digests) -> NaiveBayesModel:
    if not isinstance(entry, dict):
        raise ValueError(f"model entry is not an object: {entry!r}")
    kind = entry.get("kind", "nb")
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r} in {directory}; upgrade spamcli")
    n_features = entry["n_features"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features != settings.n_features:
        raise ValueError(f"n_features {n_features!r} is not the features' {settings.n_features}")
    alpha = _number(entry["alpha"], "alpha", 0.0)
    if alpha <= 0:
        raise ValueError(f"alpha is out of range: {alpha!r}")
    floors, calib = entry.get("norm_floors", {}), entry.get("calibration", {})
    if not isinstance(floors, dict) or not isinstance(calib, dict):
        raise ValueError("norm_floors and calibration must be objects")
    scalars = {
        "intercept": _number(entry.get("intercept", 0.0), "intercept"),
        "floor_plain": _number(floors.get("plain", 0.0), "norm_floors.plain", 0.0),
        "floor_nb": _number(floors.get("nb", 0.0), "norm_floors.nb", 0.0),
        "calib_a": _number(calib.get("a", 1.0), "calibration.a"),
        "calib_b": _number(calib.get("b", 0.0), "calibration.b"),
    }
    path = directory / str(entry["file"])
    data = _verified_bytes(directory, entry, MODEL_FILE_BYTES_PER_FEATURE * n_features + MODEL_FILE_OVERHEAD, digests)
    names = {**_ARRAYS, **(_NBLR_ARRAYS if kind == "nblr" else {})}
    arrays = _npz_arrays(data, path, names, n_features)
    columns = arrays["columns"]
    # copies, which learning adds to; row-major, as scoring reads a row at a time (training may give
    # column-major counts: summing a row of 516k columns then took 10 ms instead of 0.5 ms)
    counts = np.array(arrays["counts"], dtype=np.float64, order="C")
    docs = arrays["doc_counts"].astype(np.float64)
    # views of the file's bytes where they are float64 already (read-only: nothing writes to them)
    coefs = tuple(arrays[c].astype(np.float64, copy=False) if kind == "nblr" else None for c in _NBLR_ARRAYS)
    _check_arrays(path, n_features, columns, arrays["counts"], arrays["doc_counts"], coefs)  # as stored
    return NaiveBayesModel(
        kind=kind,
        coef_plain=coefs[0],
        coef_nb=coefs[1],
        n_features=n_features,
        alpha=alpha,
        columns=columns.astype(np.int32, copy=False),
        counts=counts,
        doc_counts=docs,
        **scalars,
    )


class _Digests:
    """The sha256 checks of the files one load reads, run in a thread while the loader goes on
    parsing and checking them (hashlib lets go of the GIL, so on a second CPU the ~15 ms of hashing
    the shipped model overlap the rest). Nothing loaded is used before :meth:`check` has found every
    digest right, and a file that is corrupt says so rather than what parsing it found."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._bad: list[Path] = []

    def add(self, data: bytes, digest: str, path: Path) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spamcli-sha256", daemon=True)
            self._thread.start()
        self._todo.put((data, digest, path))

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            data, digest, path = item
            if not _digest_matches(data, digest):
                self._bad.append(path)

    def check(self) -> None:
        """Wait for the checks; ModelError for the first file whose sha256 is not the manifest's."""
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
            self._thread = None
        if self._bad:
            raise _corrupt(self._bad[0])


def _digest_matches(data: bytes, digest: str) -> bool:
    return hashlib.sha256(data).hexdigest() == digest


def _corrupt(path: Path) -> ModelError:
    return ModelError(f"model file is corrupt (sha256 mismatch): {path}")


def _verified_bytes(directory: Path, entry: dict, limit: int, digests: _Digests | None = None) -> bytes:
    """A data file named by the manifest, after checking its name is safe, that it is a regular
    file of at most ``limit`` bytes, and that its sha256 matches (``digests``: left to it, to check
    before the data is used)."""
    name, digest = entry["file"], entry["sha256"]
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise ModelError(f"model manifest names an unsafe file: {name!r}")
    if not isinstance(digest, str):
        raise ValueError(f"sha256 is not text: {digest!r}")
    path = directory / name
    data = _read_regular(path, limit, "model file")
    if digests is not None:
        digests.add(data, digest, path)
    elif not _digest_matches(data, digest):
        raise _corrupt(path)
    return data


def _load_learned(directory: Path, entry: dict | None) -> dict:
    """The learned-messages table (sha256 -> entry), verified like the model files."""
    if not entry:
        return {}
    if not isinstance(entry, dict):
        raise ModelError(f"model manifest's learned entry is malformed: {directory}")
    try:
        learned = _parse_json(_verified_bytes(directory, entry, MAX_LEARNED_BYTES))
    except (KeyError, TypeError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"learned-messages file is unreadable ({exc!r}): {directory}") from None
    if not isinstance(learned, dict):
        raise ModelError(f"learned-messages file is malformed: {directory}")
    return learned


def _attach_site(directory: Path, contexts: dict[str, ContextModel]) -> None:
    """Give each context what its site's moderators taught (``site.sqlite``, see site.py)."""
    if not (directory / SITE_DB).is_file():  # before importing sqlite3: most models served read-only have none
        return
    from . import site

    with site.reading(directory):
        con = site.connect(directory, reader=True)
        try:
            con.execute("BEGIN")  # one snapshot: a refit between two reads would pair counts and fits of two moments
            for name, ctx in contexts.items():
                ctx.site = site.SiteLayer.read(con, name)
                ctx.learned_labels.update(site.labels_of(con, name))
        finally:
            if con.in_transaction:
                con.execute("COMMIT")
            con.close()


def _load_context(directory: Path, name: str, ctx: dict, digests: _Digests) -> ContextModel:
    """One context of the manifest, every field checked (ValueError, TypeError or KeyError if not)."""
    settings = FeatureSettings.from_dict(ctx["features"])
    entries = ctx["models"]
    if not isinstance(entries, dict) or FALLBACK not in entries:
        raise ValueError(f"no {FALLBACK!r} model")
    known = ctx.get("known_languages")
    if known is not None and not (isinstance(known, list) and all(isinstance(lang, str) for lang in known)):
        raise ValueError(f"known_languages is not a list of language codes: {known!r}")
    backend = ctx.get("lang_backend", "fasttext")
    if backend not in LANG_BACKENDS:
        raise ValueError(f"unknown lang_backend {backend!r}")
    summary, scoring = ctx.get("summary", {}), ctx.get("scoring", {})
    if not isinstance(summary, dict) or not isinstance(scoring, dict):
        raise ValueError("summary and scoring must be objects")
    if scoring:
        _check_scoring(scoring)
    models = {}
    for lang, entry in entries.items():
        try:
            models[lang] = _load_model(directory, entry, settings, digests)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = str(exc) if type(exc) is ValueError else repr(exc)
            raise ValueError(f"model {lang!r}: {detail}") from None
    return ContextModel(
        context=name,
        settings=settings,
        models=models,
        thresholds=_thresholds(ctx["thresholds"]),
        model_thresholds={lang: _thresholds(e["thresholds"]) for lang, e in entries.items() if "thresholds" in e},
        spam_at_fpr={
            key: _spam_at_fpr(entry["spam_at_fpr"])
            for key, entry in [("", ctx), *entries.items()]
            if "spam_at_fpr" in entry
        },
        min_lang_confidence=_number(ctx.get("min_lang_confidence", 0.5), "min_lang_confidence", 0.0, 1.0),
        known_languages=known,
        unseen_language_threshold=_number(
            ctx.get("unseen_language_threshold", 0.97), "unseen_language_threshold", 0.0, 1.0
        ),
        lang_backend=backend,
        summary=summary,
        scoring=dict(scoring),
    )


def _check_scoring(scoring: dict) -> None:
    """A profile context's signal weights, as ``--scoring`` would be checked (and its trusted-domain
    patterns compiled): a bad one is the model's error, not the user's."""
    from .errors import UsageError
    from .scoring import DomainMatcher, ScoringConfig

    try:
        DomainMatcher(ScoringConfig.from_dict(scoring).trusted_domains)
    except UsageError as exc:
        raise ValueError(f"scoring: {exc}") from None


@dataclass
class TeachingView:
    """What teaching (``spamcli learn``) needs of a model directory, read from its manifest alone:
    each context's feature settings and what an older spamcli learned into the base counts. The
    model's arrays are not read, so a ``learn`` costs a manifest read, not a model load."""

    settings: dict[str, FeatureSettings]
    learned: dict

    def context_settings(self, name: str) -> FeatureSettings:
        if name not in self.settings:
            raise _no_context(name, self.settings)
        return self.settings[name]


_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)  # what a manifest's wrong field raises


def _malformed(exc: Exception, where: str, directory: Path) -> ModelError:
    detail = str(exc) if type(exc) is ValueError else repr(exc)
    return ModelError(f"model manifest is incomplete or malformed{where}: {detail}: {directory}")


def read_teaching_view(directory: Path) -> TeachingView:
    """The :class:`TeachingView` of the model at ``directory`` (ModelError, exit code 4, if its
    manifest is not a readable spamcli manifest)."""
    manifest = read_manifest(directory)
    try:
        contexts = manifest["contexts"]
        settings = {name: FeatureSettings.from_dict(ctx["features"]) for name, ctx in contexts.items()}
    except _MALFORMED as exc:
        raise _malformed(exc, "", directory) from None
    if not settings:
        raise ModelError(f"model has no contexts: {directory}")
    return TeachingView(settings=settings, learned=_load_learned(Path(directory), manifest.get("learned")))


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
    where = ""
    digests = _Digests()
    try:
        try:
            for ctx_name, ctx in manifest["contexts"].items():
                where = f" (context {ctx_name!r})"
                contexts[ctx_name] = _load_context(directory, ctx_name, ctx, digests)
        finally:
            digests.check()  # on an error too: a corrupt file is reported as such
    except _MALFORMED as exc:
        raise _malformed(exc, where, directory) from None
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
