"""A set of a build's custom_ids that costs about 8 bytes an id, not about 90.

A build must refuse a custom_id used twice anywhere in its files, and a build of millions of
requests runs in constant memory but for this set.  Apart from the builder because it is a
data structure with a trade-off of its own (a hash collision reads as a duplicate), tested on
its own.
"""

from __future__ import annotations

from array import array


class SeenIds:
    """The custom_ids of one build, in about 8 bytes each.

    A Python set of a million ids takes about 90 MB; this open-addressing table keeps only
    each id's 64-bit hash.  Two different ids share a hash with a probability of about
    n²/2⁶⁵ (3·10⁻⁸ for a million ids): then the second is reported as a duplicate.  Python
    randomises string hashes per process, so such a coincidence does not repeat on a re-run.
    """

    _MASK64 = (1 << 64) - 1

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 << 17))  # 1 MB: no growth below 65,536 ids
        self._mask = len(self._slots) - 1
        self._count = 0

    def add(self, custom_id: str) -> bool:
        """Remember ``custom_id``; ``False`` if it was already there."""
        key = hash(custom_id) & self._MASK64 or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        slot = key & mask
        while found := slots[slot]:
            if found == key:
                return False
            slot = (slot + 1) & mask
        slots[slot] = key
        self._count += 1
        if self._count * 2 > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask = len(self._slots) - 1
        self._count = 0
        for key in old:
            if key:
                self._place(key)

    def _place(self, key: int) -> None:
        slot = key & self._mask
        while self._slots[slot]:
            slot = (slot + 1) & self._mask
        self._slots[slot] = key
        self._count += 1
