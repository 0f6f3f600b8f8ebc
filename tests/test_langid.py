"""Language identification: the per-text cache of the fastText detector changes no answer."""

from __future__ import annotations

from spamcli.langid import UNKNOWN, FastTextDetector

TEXTS = [
    "Hello, how are you today?",
    "Bonjour, comment allez-vous aujourd'hui ?",
    "Hallo, wie geht es dir heute?",
    "สวัสดีครับ วันนี้เป็นอย่างไรบ้าง",
    "नमस्ते, आप कैसे हैं?",
    "",
    "   \n ",
]


def test_cached_answers_equal_fresh_predictions_and_the_cache_stays_bounded():
    fresh = [FastTextDetector().detect([text])[0] for text in TEXTS]  # one new detector per text
    detector = FastTextDetector()
    detector._CACHE_LIMIT = 3
    first = detector.detect(TEXTS + TEXTS[:2])  # repeats within a batch
    again = detector.detect(list(reversed(TEXTS)))  # answered from the cache where it holds them
    assert first == fresh + fresh[:2]
    assert again == list(reversed(fresh))
    assert [lang for lang, _ in fresh[:5]] == ["en", "fr", "de", "th", "hi"]
    assert fresh[5] == fresh[6] == (UNKNOWN, 0.0)
    assert len(detector._cache) <= 5  # emptied when full: never grows past the limit + one batch
    small = FastTextDetector()
    small._CACHE_LIMIT = 3
    assert small.detect(TEXTS[:2]) == fresh[:2]
    # a cached text and new ones that fill the cache, in one batch: still every answer
    assert small.detect([TEXTS[0], TEXTS[2], TEXTS[3]]) == [fresh[0], fresh[2], fresh[3]]
