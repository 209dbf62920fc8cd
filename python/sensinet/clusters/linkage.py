"""Agglomerative merging of clusters: pairwise distances, size-weighted linkage, cutting the tree."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def pairwise(F: NDArray, by: str) -> NDArray:
    """Dense C x C distances: Hamming share of differing bits, or Euclidean distance of feature rows."""
    C = F.shape[0]
    if by == "hamming":
        B = F.astype(np.float64)
        n_bits = max(B.shape[1], 1)
        D = (B @ (1.0 - B).T + (1.0 - B) @ B.T) / n_bits
    else:
        D = np.empty((C, C))
        step = max(1, (1 << 22) // max(C * F.shape[1], 1))
        for s in range(0, C, step):
            diff = F[s:s + step, None, :] - F[None, :, :]
            D[s:s + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, np.inf)
    return D


def linkage_matrix(D: NDArray, weights: NDArray, linkage: str) -> NDArray:
    """Agglomerative clustering by the nearest-neighbour chain (valid for these reducible linkages).

    ``average`` is the weighted group average: d(k, i+j) = (w_i d(k, i) + w_j d(k, j)) / (w_i + w_j), i.e.
    every fine cluster counts with its weight (its number of samples when size-weighted). Returns the merges
    sorted by height as a SciPy-style linkage matrix (C - 1, 4): ids a, b (< C original, >= C merged), height,
    weight.
    """
    C = D.shape[0]
    D = D.copy()
    w = np.asarray(weights, dtype=np.float64).copy()
    active = np.ones(C, dtype=bool)
    raw = []  # (slot a, slot b, height); the merged cluster keeps slot min(a, b)
    chain: list = []
    n_active = C
    while n_active > 1:
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        a = chain[-1]
        row = D[a]
        bnn = int(np.argmin(row))
        if len(chain) > 1 and row[chain[-2]] <= row[bnn]:
            bnn = chain[-2]
        if len(chain) > 1 and bnn == chain[-2]:
            chain.pop()
            chain.pop()
            h = float(row[bnn])
            i, j = min(a, bnn), max(a, bnn)
            if linkage == "average":
                new = (w[i] * D[i] + w[j] * D[j]) / (w[i] + w[j])
            elif linkage == "complete":
                new = np.maximum(D[i], D[j])
            else:
                new = np.minimum(D[i], D[j])
            new[~active] = np.inf
            active[j] = False
            new[j] = np.inf
            new[i] = np.inf
            D[i, :] = new
            D[:, i] = new
            D[j, :] = np.inf
            D[:, j] = np.inf
            w[i] += w[j]
            raw.append((i, j, h))
            n_active -= 1
        else:
            chain.append(bnn)
    # sort by height (stable) and number the clusters as SciPy does
    order = sorted(range(len(raw)), key=lambda t: raw[t][2])
    parent = list(range(C))
    cid = list(range(C))  # slot -> current cluster id
    size = np.asarray(weights, dtype=np.float64).copy()
    Z = np.empty((len(raw), 4))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for step, t in enumerate(order):
        i, j, h = raw[t]
        ri, rj = find(i), find(j)
        a, b = sorted((cid[ri], cid[rj]))
        parent[rj] = ri
        size[ri] += size[rj]
        cid[ri] = C + step
        Z[step] = (a, b, h, size[ri])
    return Z


def cut(Z: NDArray, C: int, n_clusters: int) -> NDArray:
    """Group id (0..n_clusters-1, unordered) of each of the C leaves after the first C - n_clusters merges."""
    root = np.arange(2 * C - 1)
    for step in range(C - n_clusters - 1, -1, -1):  # top-down: a merged node's root is already final
        r = root[C + step]
        root[int(Z[step, 0])] = r
        root[int(Z[step, 1])] = r
    _, groups = np.unique(root[:C], return_inverse=True)
    return groups.ravel()
