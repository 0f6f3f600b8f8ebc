"""Language identification: which language is a text written in, and how sure are we.

Two backends behind one interface, :meth:`LanguageDetector.detect`, which maps a list of texts to
``(code, confidence)`` pairs:

- ``fasttext`` (default): fastText's ``lid.176.ftz`` (176 languages, 938 KB, shipped in
  ``models/``; CC BY-SA 3.0, by Facebook AI Research), loaded with the ``fasttext-numpy2`` binding.
  Works offline, ~50-100k texts/s.
- ``langdetect``: the Python port of Google's language-detection, seeded so it is deterministic.
  About 100x slower and weak on short texts; offered as an alternative, not a default.

Texts whose confidence is below the router's threshold are scored by the multilingual fallback
model (see :mod:`spamcli.router`), so a wrong guess on "Call me" costs little.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import ModelError

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
    return Path(str(resources.files("spamcli.models").joinpath("lid.176.ftz")))


def _clean(text: str) -> str:
    """fastText reads one line: no newlines, and a bounded sample is enough to tell a language."""
    return " ".join(text[:_SAMPLE_CHARS].split())


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
        import fasttext

        # fasttext prints a deprecation warning on load_model for some builds; keep stdout clean.
        try:
            self._model = fasttext.load_model(str(path))
        except ValueError as exc:
            raise ModelError(f"cannot load language-id model {path}: {exc}") from None
        self._cache: dict[str, tuple[str, float]] = {}

    _CACHE_LIMIT = 20_000

    def detect(self, texts: list[str]) -> list[tuple[str, float]]:
        """Predictions are remembered per cleaned text (bounded; emptied when full): streams repeat
        whole messages, and fastText costs ~20 µs a message. The answer is the same either way."""
        cache = self._cache
        cleaned = [_clean(t) for t in texts]
        # this call's answers in a local dict: the shared cache may be emptied by another thread
        found = {t: cache.get(t) for t in cleaned if t}
        todo = [t for t, answer in found.items() if answer is None]
        if todo:
            labels, probs = self._model.predict(todo, k=1)
            if len(cache) + len(todo) > self._CACHE_LIMIT:
                cache.clear()
            for text, label, prob in zip(todo, labels, probs):
                found[text] = cache[text] = (label[0].replace("__label__", ""), float(min(1.0, prob[0])))
        return [found[t] if t else (UNKNOWN, 0.0) for t in cleaned]


class LangdetectDetector(LanguageDetector):
    name = "langdetect"

    def __init__(self, seed: int = 0):
        from langdetect import DetectorFactory

        DetectorFactory.seed = seed
        self._factory = DetectorFactory()
        self._factory.load_profile(_langdetect_profiles())
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


def _langdetect_profiles() -> str:
    import langdetect

    return str(Path(langdetect.__file__).parent / "profiles")


@lru_cache(maxsize=4)
def get_detector(backend: str = "fasttext") -> LanguageDetector:
    """A shared detector per backend (loading fastText's model takes ~15 ms, once)."""
    if backend == "fasttext":
        return FastTextDetector()
    if backend == "langdetect":
        return LangdetectDetector()
    raise ValueError(f"unknown language backend {backend!r}; choose from {', '.join(BACKENDS)}")
