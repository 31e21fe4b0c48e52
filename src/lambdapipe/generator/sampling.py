"""O(1) weighted sampling (Vose's alias method) and fast identifiers."""

from __future__ import annotations

import random
from collections.abc import Sequence

# Version 4 and RFC 4122 variant bits of a random 128-bit integer.
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def uuid_from_bits(bits: int) -> str:
    """Format 128 random bits as a canonical lowercase version-4 UUID string."""
    h = "%032x" % ((bits & _UUID_CLEAR) | _UUID_SET)  # %-formatting is the fastest here
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def money(cents: int) -> str:
    """Integer cents as a money string with exactly two decimals."""
    if cents < 0:
        return "-" + money(-cents)
    return f"{cents // 100}.{cents % 100:02d}"


def cents(amount: str) -> int:
    """A two-decimal money string as integer cents."""
    return int(amount.replace(".", ""))


class AliasTable:
    """Draws index i with probability weights[i] / sum(weights) in O(1) with one uniform draw."""

    __slots__ = ("_alias", "_n", "_prob")

    def __init__(self, weights: Sequence[float]) -> None:
        n = len(weights)
        if n == 0:
            raise ValueError("AliasTable needs at least one weight")
        total = float(sum(weights))
        scaled = [w * n / total for w in weights]
        prob = [1.0] * n
        alias = list(range(n))
        small = [i for i, p in enumerate(scaled) if p < 1.0]
        large = [i for i, p in enumerate(scaled) if p >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        self._prob, self._alias, self._n = prob, alias, n

    def sample(self, rng: random.Random) -> int:
        """One index drawn with the table's weights."""
        u = rng.random() * self._n
        i = int(u)
        return i if u - i < self._prob[i] else self._alias[i]
