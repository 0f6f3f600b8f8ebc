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


def test_the_shared_cache_is_safe_across_threads():
    import sys
    import threading

    detector = FastTextDetector()
    detector._CACHE_LIMIT = 5  # emptied all the time, while other threads look up
    texts = [f"{t} {i}" for i in range(40) for t in TEXTS[:5]]
    expected = {t: FastTextDetector().detect([t])[0] for t in texts}
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for start in range(offset, len(texts), 7):
                batch = texts[start : start + 9]
                assert detector.detect(batch) == [expected[t] for t in batch]
        except BaseException as exc:  # noqa: BLE001 - collected for the main thread
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures[:1]
