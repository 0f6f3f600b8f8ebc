"""How input travels to ``classify``'s worker processes: unparsed lines and blocks of bytes.

With workers (:mod:`spamcli.parallel`), the reading process only reads: a pipe or terminal gives
:class:`RawLine` items, one per line, and a regular file :class:`RawBlock` items of about
:data:`BLOCK_BYTES` of whole lines each. The workers split and parse them (:func:`parse_items`)
into exactly the Records that :func:`~spamcli.records.read_records` gives, numbered alike. Inputs
in other formats (CSV, TSV, Parquet, Decidim) are parsed in the reading process and travel as
Records.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from .records import (
    BOM,
    LINE_FORMATS,
    ReadOptions,
    Record,
    Source,
    iter_lines,
    open_input,
    parse_line,
    read_format,
)


class RawLine(NamedTuple):
    """A line of a plain-text or JSON-lines input, not parsed yet (``raw`` None: too long).
    :func:`parse_items` makes it the Record that :func:`~spamcli.records.read_records` would have
    given."""

    fmt: str
    number: int
    raw: bytes | None


class RawBlock(NamedTuple):
    """Whole lines of a plain-text or JSON-lines file, not split yet, from line number ``first`` on;
    :func:`block_lines` splits them as :func:`~spamcli.records.iter_lines` would have."""

    fmt: str
    first: int
    data: bytes


BLOCK_BYTES = 1 << 18


def read_blocks(
    stream: BinaryIO, fmt: str, max_bytes: int, head: bytes = b"", block_bytes: int | None = None
) -> Iterator[RawBlock]:
    """``head + stream`` (a BOM at the start already dropped) as blocks of about ``block_bytes`` of
    whole lines. A line longer than ``max_bytes`` ends its block, cut to ``max_bytes + 1`` bytes
    (its rest is skipped here), so that :func:`block_lines` reports it as too long; memory stays
    bounded."""
    number, carry, block_bytes = 1, head, block_bytes or BLOCK_BYTES
    while chunk := stream.read(block_bytes):
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # one line in progress
            if len(data) <= max_bytes:
                carry = data
                continue
            yield RawBlock(fmt, number, data[: max_bytes + 1])
            number += 1
            carry = b""
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            continue
        yield RawBlock(fmt, number, data[:cut])
        number += data.count(b"\n", 0, cut)
        carry = data[cut:]
    if carry:
        yield RawBlock(fmt, number, carry)


def _numbered_lines(block: RawBlock, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    return enumerate(iter_lines(io.BytesIO(block.data), max_bytes, strip_bom=False), start=block.first)


def block_lines(block: RawBlock, max_bytes: int) -> list[RawLine]:
    """The lines of a :class:`RawBlock`, numbered, as :func:`read_raw` would have read them."""
    return [RawLine(block.fmt, number, raw) for number, raw in _numbered_lines(block, max_bytes)]


def read_raw(source: Source, opts: ReadOptions, blocks: bool = False) -> Iterator[Record | RawLine | RawBlock]:
    """The items of ``source`` for workers to parse: a plain-text or JSON-lines input as
    :class:`RawLine` items, or (``blocks``: for a regular file, which never makes its reader
    wait) as :class:`RawBlock` items; any other format as the Records of
    :func:`~spamcli.records.read_records`."""
    with open_input(source, opts) as (fmt, stream):
        if fmt not in LINE_FORMATS:
            yield from read_format(fmt, stream, source, opts)
        elif blocks:
            start = stream.read(len(BOM))
            yield from read_blocks(stream, fmt, opts.max_bytes, head=b"" if start == BOM else start)
        else:
            for number, raw in enumerate(iter_lines(stream, opts.max_bytes), start=1):
                yield RawLine(fmt, number, raw)


def parse_items(items: Iterable[Record | RawLine | RawBlock], opts: ReadOptions) -> Iterator[Record]:
    """The Records of :func:`read_raw` items: raw lines and blocks parsed, Records as they are."""
    for item in items:
        if isinstance(item, RawBlock):
            fmt = item.fmt
            for number, raw in _numbered_lines(item, opts.max_bytes):
                yield parse_line(fmt, number, raw, opts)
        elif isinstance(item, RawLine):
            yield parse_line(item.fmt, item.number, item.raw, opts)
        else:
            yield item
