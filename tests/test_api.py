"""The Python API (SpamFilter) and the micro-batching under ``classify``."""

from __future__ import annotations

import pytest

from spamcli.records import Record
from spamcli.stream import micro_batches


def test_score_records_keeps_order_and_turns_bad_records_into_error_dicts(spam_filter):
    records = [
        Record(id="a", text="WIN a FREE iPhone at http://x.example"),
        Record(id="b", error="invalid UTF-8"),
        Record(id="c", text="see you at lunch", lang="en"),
    ]
    out = spam_filter.score_records(records)
    assert [item["id"] for item in out] == ["a", "b", "c"]
    assert out[1] == {"id": "b", "error": "invalid UTF-8"}
    assert out[2]["lang"] == "en"
    assert out[0]["score"] > out[2]["score"]


def test_with_thresholds_changes_labels_only(spam_filter):
    texts = ["WIN a FREE iPhone at http://x.example", "see you at lunch"]
    strict = spam_filter.with_thresholds(ham=0.0, spam=0.0)
    assert [v.label for v in strict.score(texts)] == ["spam", "spam"]
    assert [v.score for v in strict.score(texts)] == [v.score for v in spam_filter.score(texts)]


def test_classify_stream_yields_one_dict_per_record_in_order(spam_filter):
    records = [Record(id=i, text=f"message number {i}") for i in range(1, 2501)]
    out = list(spam_filter.classify_stream(iter(records)))
    assert [item["id"] for item in out] == list(range(1, 2501))


def test_micro_batches_keep_order_and_bound_batch_size():
    batches = list(micro_batches(range(1000), max_batch=64, max_wait=0.01))
    assert [x for batch in batches for x in batch] == list(range(1000))
    assert max(len(b) for b in batches) <= 64


def test_micro_batches_reraise_the_producers_exception_after_earlier_items():
    def failing():
        yield 1
        raise RuntimeError("reader failed")

    seen = []
    with pytest.raises(RuntimeError, match="reader failed"):
        for batch in micro_batches(failing(), max_batch=10, max_wait=0.01):
            seen.extend(batch)
    assert seen == [1]
