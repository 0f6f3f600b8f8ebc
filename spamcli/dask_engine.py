"""``--engine dask``: the same model over a partitioned dataset on a Dask cluster.

A *partitioned dataset* is a directory (every ``.jsonl``/``.ndjson``/``.json``/``.csv``/``.tsv``/
``.parquet``/``.pq``/``.txt`` file in it, sorted by name), a glob (``'data/part-*.parquet'``) or a
list of files. Each file is one partition, read on a worker with the same readers as the local
path, so the input files must be readable by the workers under the same path (a shared or
network filesystem, or the same copy on every machine). The model is sent to the workers once
(``Client.scatter``), so it needs to be on the client machine only.

- ``classify``: each worker scores its partitions with :class:`~spamcli.api.SpamFilter`; the
  client writes the results file by file in input order: the same lines as
  ``spamcli classify FILE1 FILE2 ...`` over the same files.
- ``train``: workers read the partitions and hash the texts (the costly steps); the client runs
  the rest of :func:`~spamcli.training.train_context` (cleaning, cross-validation, the regression),
  so the model equals the one trained locally on the same files in the same order. Past
  ``--max-rows`` clean records (200,000 by default) the Naive Bayes counts still take every
  record (hashed on the workers, chunk by chunk) while the regression, calibration and
  thresholds use a uniform sample of that many, whose hashed rows (about 3.5 KB per message at the
  default features) are what the client holds.

Dask is an optional dependency: ``pip install 'spamcli[dask]'``.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError

PARTITION_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq", ".txt")
TRANSFORM_CHUNK = 20_000


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files of a partitioned dataset: directories and globs expanded, sorted; files as given."""
    files: list[str] = []
    for item in inputs:
        if item == "-":
            raise UsageError("--engine dask reads files (a directory, glob or list), not stdin")
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).iterdir() if p.suffix.lower() in PARTITION_SUFFIXES)
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
        else:
            found = [item]
        if not found:
            raise InputError(f"no partition files in {item}")
        files.extend(found)
    return files


@contextmanager
def session(scheduler: str | None, workers: int = 2) -> Iterator:
    """A Dask client, closed on exit: to ``scheduler`` (``tcp://host:8786``) or, without one, to a
    LocalCluster of ``workers`` single-threaded processes started (and stopped) here."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--engine dask needs Dask: pip install 'spamcli[dask]'") from None
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _classify_partition(bundle, context: str, thresholds, path: str, opts, explain: int, batch: int) -> list[dict]:
    from .api import SpamFilter
    from .records import read_records

    spam_filter = SpamFilter(bundle, context, thresholds)
    out: list[dict] = []
    records = read_records(path, opts)
    while chunk := list(itertools.islice(records, batch)):
        out.extend(spam_filter.score_records(chunk, explain=explain))
    return out


def classify_partitions(
    client, spam_filter, files: list[str], opts, explain: int = 0, batch: int = 1024
) -> Iterator[list[dict]]:
    """Output dicts per partition, in the order of ``files``."""
    bundle = client.scatter(spam_filter.bundle, broadcast=True)
    futures = client.map(
        _classify_partition,
        [bundle] * len(files),
        [spam_filter.context_name] * len(files),
        [spam_filter.override] * len(files),
        files,
        opts=opts,
        explain=explain,
        batch=batch,
        pure=False,
    )
    for future in futures:
        yield future.result()
        future.release()


def _read_partition(path: str, opts) -> list:
    from .records import Record, read_records

    return [Record(id=r.id, text=r.text, lang=r.lang, label=r.label, error=r.error) for r in read_records(path, opts)]


def read_partitions(client, files: list[str], opts) -> Iterator:
    """All records of the partitions, in order (read on the workers)."""
    for future in client.map(_read_partition, files, opts=opts, pure=False):
        yield from future.result()
        future.release()


def _transform_chunk(texts: list[str], settings):
    from .text import Vectoriser

    return Vectoriser(settings).transform(texts)


def transformer(client):
    """A ``transform(texts, settings)`` for :func:`~spamcli.training.train_context` that hashes
    chunks of texts on the workers; the same rows as :meth:`Vectoriser.transform`."""
    from .text import SparseRows

    def transform(texts: list[str], settings) -> SparseRows:
        chunks = [texts[i : i + TRANSFORM_CHUNK] for i in range(0, len(texts), TRANSFORM_CHUNK)]
        parts = [f.result() for f in client.map(_transform_chunk, chunks, settings=settings, pure=False)]
        offsets = np.cumsum([0] + [p.indptr[-1] for p in parts])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + off for p, off in zip(parts, offsets)])
        return SparseRows(
            indptr=indptr.astype(np.int64),
            indices=np.concatenate([p.indices for p in parts]) if parts else np.zeros(0, np.int32),
            data=np.concatenate([p.data for p in parts]) if parts else np.zeros(0, np.float32),
            n_features=settings.n_features,
        )

    return transform
