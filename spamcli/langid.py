"""Language identification: which language is a text written in, and how sure are we.

Two backends behind one interface, :meth:`LanguageDetector.detect`, which maps a list of texts to
``(code, confidence)`` pairs:

- ``fasttext`` (default): fastText's ``lid.176.ftz`` (176 languages, 938 KB, shipped in
  ``models/``; CC BY-SA 3.0, by Facebook AI Research). Predicted by the C extension
  ``spamcli._fastlid`` (spamcli/_fastlid.c), which gives exactly fastText's answer (same label,
  bit-identical float32 probability; tests/test_fastlid.py compares them) several times faster; the
  ``fasttext-numpy2`` binding when the extension is not built or cannot read the model, or when
  ``SPAMCLI_FASTTEXT_LIB=1``. Works offline.
- ``langdetect``: the Python port of Google's language-detection, seeded so it is deterministic.
  About 100x slower and weak on short texts; offered as an alternative, not a default.

Texts whose confidence is below the router's threshold are scored by the multilingual fallback
model (see :mod:`spamcli.router`), so a wrong guess on "Call me" costs little.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import ModelError, UsageError

UNKNOWN = "und"
BACKENDS = ("fasttext", "langdetect")
# fastText's cost grows with the text (~0.06 µs a character); the first 400 characters tell the
# language as well as 1,000 do: over the 38,069 texts of the shared datasets, cutting at 400 instead
# of 1,000 changed the chosen model of one (a mixed-language Telegram message) and saved ~25% of the
# language-id time.
_SAMPLE_CHARS = 400


def lid_model_path() -> Path:
    """Where ``lid.176.ftz`` is: ``$SPAMCLI_LID_MODEL`` if set, else the copy shipped in models/."""
    override = os.environ.get("SPAMCLI_LID_MODEL")
    if override:
        return Path(override)
    return shipped_file("lid.176.ftz")


def shipped_file(name: str) -> Path:
    """A file of the package ``spamcli.models`` (``models/`` in the source tree): looked up on its
    ``__path__``, which costs nothing, where ``importlib.resources`` took 2 ms to import."""
    from . import models

    return Path(next(iter(models.__path__))) / name


def _clean(text: str) -> str:
    """fastText reads one line: no newlines, and a bounded sample is enough to tell a language."""
    return " ".join(text[:_SAMPLE_CHARS].split())


def _load_fastlid(path: Path):
    """The C extension's model of ``path``; None when ``SPAMCLI_FASTTEXT_LIB=1``, when the extension
    is not built, or when it cannot read the file (the fasttext binding then loads it, or fails)."""
    if os.environ.get("SPAMCLI_FASTTEXT_LIB") == "1":
        return None
    try:
        from . import _fastlid
    except ImportError:
        return None
    try:
        return _fastlid.Model(str(path))
    except (ValueError, OSError, MemoryError):
        return None


class LoadedModels:
    """Language-id models read from disk, shared read-only by the detectors that use the same one.

    A detector is created per :class:`~spamcli.router.Pipeline` and owns its per-text answer
    cache; what it shares through :data:`LOADED` is only the model read from a file (fastText's
    ``lid.176.ftz``, a few MB in memory, ~3 ms to read; langdetect's profiles, ~1 s), which answers
    the same whoever asks. An entry is keyed by everything that decides what is loaded: the backend,
    the file's resolved path and identity (device, inode, size, modification time: a replaced file
    is read again) and the implementation chosen (``SPAMCLI_FASTTEXT_LIB``), so sharing never
    changes an answer; it saves the memory and the time of a second copy (a server scores messages
    and profiles with two pipelines, and its forked workers share what was loaded before the fork)."""

    def __init__(self) -> None:
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, load):
        """The model of ``key``, read by ``load()`` the first time (once, also from several threads)."""
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


LOADED = LoadedModels()


def _file_key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path),)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _load_fasttext(path: Path) -> tuple:
    """``(C extension's model, None)``, else ``(None, the fasttext binding's model)`` of ``path``."""
    fast = _load_fastlid(path)
    if fast is not None:
        return fast, None
    try:
        import fasttext
    except ImportError:
        raise UsageError(
            "language identification without spamcli's C extension needs the fasttext extra: "
            "pip install 'spamcli[fasttext]'"
        ) from None

    # fasttext prints a deprecation warning on load_model for some builds; keep stdout clean.
    try:
        return None, fasttext.load_model(str(path))
    except ValueError as exc:
        raise ModelError(f"cannot load language-id model {path}: {exc}") from None


class LanguageDetector:
    """Base class: ``detect(texts) -> [(code, confidence), ...]`` with ISO 639-1 style codes."""

    name = "base"

    def detect(self, texts: list[str]) -> list[tuple[str, float]]:
        raise NotImplementedError


class FastTextDetector(LanguageDetector):
    name = "fasttext"

    def __init__(self, model_path: Path | None = None):
        path = Path(model_path) if model_path else lid_model_path()
        if not path.is_file():
            raise ModelError(f"language-id model not found: {path}")
        key = ("fasttext", os.environ.get("SPAMCLI_FASTTEXT_LIB") == "1", *_file_key(path))
        self._fast, self._model = LOADED.get(key, lambda: _load_fasttext(path))
        if self._fast is not None:
            self._codes = {label: label.replace("__label__", "") for label in self._fast.labels}
        self._cache: dict[str, tuple[str, float]] = {}

    @property
    def implementation(self) -> str:
        """Which code predicts: ``"_fastlid"`` (the C extension) or ``"fasttext"`` (the binding)."""
        return "_fastlid" if self._fast is not None else "fasttext"

    def _predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """fastText's top label and probability of each cleaned, non-empty text. fastText gives no
        label when no path of its tree is likely enough: (UNKNOWN, 0.0), as for an empty text."""
        if self._fast is not None:
            codes = self._codes  # (label, float) or None; `p if p < 1.0 else 1.0` is min(1.0, p), faster
            return [
                (UNKNOWN, 0.0) if found is None else (codes[found[0]], found[1] if found[1] < 1.0 else 1.0)
                for found in self._fast.predict(texts)
            ]
        labels, probs = self._model.predict(texts, k=1)
        return [
            (label[0].replace("__label__", ""), float(min(1.0, prob[0]))) if len(label) else (UNKNOWN, 0.0)
            for label, prob in zip(labels, probs)
        ]

    _CACHE_LIMIT = 20_000

    def detect(self, texts: list[str]) -> list[tuple[str, float]]:
        """Predictions are remembered per cleaned text (bounded; emptied when full): streams repeat
        whole messages, and fastText costs ~5 µs a message (~20 µs with the binding). The answer is
        the same either way."""
        cache = self._cache
        cleaned = [_clean(t) for t in texts]
        # this call's answers in a local dict: the shared cache may be emptied by another thread
        found = {t: cache.get(t) for t in cleaned if t}
        todo = [t for t, answer in found.items() if answer is None]
        if todo:
            answers = self._predict(todo)
            if len(cache) + len(todo) > self._CACHE_LIMIT:
                cache.clear()
            for text, answer in zip(todo, answers):
                found[text] = cache[text] = answer
        return [found[t] if t else (UNKNOWN, 0.0) for t in cleaned]


class LangdetectDetector(LanguageDetector):
    name = "langdetect"

    def __init__(self, seed: int = 0):
        try:
            from langdetect import DetectorFactory
        except ImportError:
            missing = "the langdetect backend needs the langdetect extra: pip install 'spamcli[langdetect]'"
            raise UsageError(missing) from None

        DetectorFactory.seed = seed
        self._factory = LOADED.get(("langdetect", seed), lambda: _langdetect_factory(DetectorFactory))
        self._seed = seed

    def detect(self, texts: list[str]) -> list[tuple[str, float]]:
        from langdetect.lang_detect_exception import LangDetectException

        out = []
        for text in texts:
            detector = self._factory.create()
            detector.append(_clean(text))
            try:
                best = detector.get_probabilities()[0]
                out.append((best.lang.split("-")[0], float(best.prob)))
            except LangDetectException:
                out.append((UNKNOWN, 0.0))
        return out


def _langdetect_factory(factory_class):
    import langdetect

    factory = factory_class()
    factory.load_profile(str(Path(langdetect.__file__).parent / "profiles"))
    return factory


def new_detector(backend: str = "fasttext") -> LanguageDetector:
    """A new detector of ``backend``, with an empty answer cache of its own; the model it reads is
    shared with the other detectors of the same file (see :class:`LoadedModels`)."""
    if backend == "fasttext":
        return FastTextDetector()
    if backend == "langdetect":
        return LangdetectDetector()
    raise ValueError(f"unknown language backend {backend!r}; choose from {', '.join(BACKENDS)}")
