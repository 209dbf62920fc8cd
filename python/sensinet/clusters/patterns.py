"""ReLU activation patterns as packed 64-bit words: hashing, distinct rows, unpacking to bits."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def pattern_hash(P: NDArray) -> NDArray:
    """A 64-bit mix of each row of packed words (splitmix64 finaliser per word); collisions are checked."""
    with np.errstate(over="ignore"):
        h = np.zeros(P.shape[0], dtype=np.uint64)
        for w in range(P.shape[1]):
            h = (h ^ P[:, w]) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
    return h


def unique_rows(P: NDArray) -> tuple:
    """(first index, inverse, counts) of the distinct rows of a (n, n_words) uint64 array."""
    if P.shape[1] == 1:
        _, first, inv, counts = np.unique(P[:, 0], return_index=True, return_inverse=True, return_counts=True)
        return first, inv.ravel(), counts, True
    h = pattern_hash(P)
    _, first, inv, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    if np.array_equal(P[first[inv]], P):
        return first, inv, counts, True
    # a hash collision (never seen in practice): fall back to comparing the raw bytes
    v = np.ascontiguousarray(P).view(np.dtype((np.void, 8 * P.shape[1]))).ravel()
    _, first, inv, counts = np.unique(v, return_index=True, return_inverse=True, return_counts=True)
    return first, inv.ravel(), counts, False


def unpack(P: NDArray, n_bits: int) -> NDArray:
    """(n, n_words) uint64 -> (n, n_bits) uint8 0/1, bit b = word b // 64, bit b % 64."""
    if n_bits == 0:
        return np.zeros((P.shape[0], 0), dtype=np.uint8)
    u8 = np.ascontiguousarray(P, dtype="<u8").view(np.uint8)
    return np.unpackbits(u8, axis=1, bitorder="little")[:, :n_bits]
