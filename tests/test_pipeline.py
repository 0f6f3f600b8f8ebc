"""Two loaded models in one process: each scores through its own pipeline, alone, interleaved with
the other, from many threads at once and in worker pools side by side, exactly as it scores alone."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import REPO

from spamcli.api import load_filter
from spamcli.bundle import Bundle, save_bundle
from spamcli.records import ReadOptions, Record, read_records
from spamcli.text import FeatureSettings
from spamcli.training import TrainOptions, train_context

SAMPLES = REPO / "datasets" / "samples"
# Different feature settings on purpose: a vectoriser, a column count or a cache shared between the
# two would hash one model's texts into the other's columns (or past the end of its arrays).
SETTINGS_A = FeatureSettings(n_features=2**16)
SETTINGS_B = FeatureSettings(n_features=2**12, char_ngrams=None, binary=False, max_chars=200)


def _train(directory: Path, settings: FeatureSettings, flip: bool) -> Path:
    records = [r for r in read_records(str(SAMPLES / "messages.csv"), ReadOptions(need_label=True)) if not r.error]
    if flip:  # the second model calls spam what the first calls ham
        records = [replace(r, label=1 - r.label) for r in records]
    ctx, _ = train_context(records, TrainOptions(settings=settings, min_per_class=5, dedupe=False, jobs=1))
    save_bundle(Bundle(contexts={"content": ctx}), directory)
    return directory


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pipelines")
    return _train(root / "a", SETTINGS_A, flip=False), _train(root / "b", SETTINGS_B, flip=True)


def _texts() -> list[str]:
    texts = [r.text for r in read_records(str(SAMPLES / "messages.csv")) if not r.error]
    for name in ("ham.txt", "spam.txt", "decidim.txt"):
        texts += [line for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def _key(verdicts) -> list[tuple]:
    return [(v.score, v.label, v.lang, v.lang_confidence, v.model, v.reasons) for v in verdicts]


def test_two_models_score_alone_interleaved_and_from_eight_threads_as_each_does_alone(two_models):
    texts = _texts()
    langs = [None if i % 3 else "en" for i in range(len(texts))]  # detected, and given
    # the references: each model loaded and scoring on its own, one text at a time
    reference = {}
    for name, path in zip("ab", two_models):
        alone = load_filter(path)
        reference[name] = [_key(alone.score([t], [lang], explain=3))[0] for t, lang in zip(texts, langs)]
        del alone
    differ = sum(a[0] != b[0] for a, b in zip(reference["a"], reference["b"]))
    assert differ >= len(texts) * 0.9  # the two models disagree: a mix-up would show
    filters = {"a": load_filter(two_models[0]), "b": load_filter(two_models[1])}
    assert filters["a"].pipeline.vectoriser.settings == SETTINGS_A
    assert filters["b"].pipeline.vectoriser.settings == SETTINGS_B
    assert filters["a"].pipeline.detector is not filters["b"].pipeline.detector

    def check(name: str, idx: list[int], explain: int) -> None:
        got = _key(filters[name].score([texts[i] for i in idx], [langs[i] for i in idx], explain=explain))
        want = [reference[name][i] if explain else reference[name][i][:-1] + (None,) for i in idx]
        assert got == want, name

    for i in range(len(texts)):  # interleaved, text by text, in one thread
        for name in "ab" if i % 2 else "ba":
            check(name, [i], explain=3)
    check("a", list(range(len(texts))), explain=0)  # whole batches, in turn
    check("b", list(range(len(texts))), explain=3)

    def work(seed: int) -> int:
        rng = random.Random(seed)
        for _ in range(40):
            idx = rng.sample(range(len(texts)), rng.randint(1, 12))
            check(rng.choice("ab"), idx, explain=rng.choice((0, 3)))
        return seed

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(32))) == list(range(32))


def test_two_worker_pools_of_different_models_run_side_by_side(two_models, monkeypatch):
    """Each pool's workers get their own scorer from the pool initializer: two pools made at the same
    moment, from two threads, score with their own model (a scorer set in the parent before forking
    would be the last one set, for both)."""
    from spamcli import parallel

    texts = _texts() * 4
    records = [Record(id=i, text=t) for i, t in enumerate(texts)]
    filters = [load_filter(path) for path in two_models]
    reference = [f.score_records(records, explain=2) for f in filters]
    assert [r["score"] for r in reference[0]] != [r["score"] for r in reference[1]]
    both_made = threading.Barrier(2, timeout=60)

    class Pool(parallel.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            both_made.wait()  # both threads have set up their scorer: now fork
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Pool)

    def run(k: int) -> list[dict]:
        batches = filters[k].classify_batches(records, explain=2, max_batch=16, max_wait=None, jobs=2)
        return [item for batch in batches for item in batch]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, (0, 1)))
    assert results == reference
