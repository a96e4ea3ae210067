"""Recall and precision of a near-duplicate removal, measured against exact Jaccard similarity.

The truth is the exact Jaccard similarity of two documents' sets of word n-grams, shingled as
``forge.text.dedup.shingle_hashes`` does (64-bit hashes; a chance collision is ~2^-64 per pair of
distinct shingles). Checking all pairs is quadratic, so both sides are sampled:

- **recall**: for a random sample of documents, *every* document whose Jaccard with it is at least
  ``threshold`` is found — exactly, with prefix filtering (if ``J(A, B) >= t`` then ``B`` contains
  one of the ``|A| - ceil(t |A|) + 1`` rarest shingles of ``A``, so those shingles' postings hold
  every such ``B``; each candidate's Jaccard is then computed). A true pair is *caught* when at most
  one of its two documents survives the removal.
- **precision**: for a random sample of removed documents, the Jaccard with the document each was
  removed for; a removal is right when it is at least ``threshold``.

A method is handed in only as ``kept_index`` (the document each one was kept for, itself when
kept), so ours, datatrove's and datasketch's results are scored the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from forge.text.dedup import batched, shingle_hashes


class ShingleSets:
    """Each document's set of shingle hashes (sorted, unique) and an inverted index over them."""

    def __init__(self, texts: Sequence[str], ngram: int, *, batch_chars: int = 2_000_000) -> None:
        docs, hashes = [], []
        base = 0
        for batch in batched(texts, batch_chars):
            h, off = shingle_hashes(batch, ngram)
            docs.append(np.repeat(np.arange(base, base + len(batch)), np.diff(off)))
            hashes.append(h)
            base += len(batch)
        doc = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
        h = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        order = np.lexsort((h, doc))
        doc, h = doc[order], h[order]
        keep = np.ones(len(h), dtype=bool)
        keep[1:] = (doc[1:] != doc[:-1]) | (h[1:] != h[:-1])
        self.doc, self.hash = doc[keep], h[keep]
        self.offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum(np.bincount(self.doc, minlength=len(texts)))
        by_hash = np.argsort(self.hash, kind="stable")
        self.post_hash, self.post_doc = self.hash[by_hash], self.doc[by_hash]
        uniq, counts = np.unique(self.post_hash, return_counts=True)
        self.df = counts[np.searchsorted(uniq, self.hash)]  # document frequency, per (doc, shingle)

    def set_of(self, i: int) -> np.ndarray:
        return self.hash[self.offsets[i] : self.offsets[i + 1]]

    def size(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def jaccard(self, i: int, j: int) -> float:
        a, b = self.set_of(i), self.set_of(j)
        if len(a) == 0 and len(b) == 0:
            return 1.0
        inter = len(np.intersect1d(a, b, assume_unique=True))
        return inter / (len(a) + len(b) - inter)

    def neighbors(self, i: int, threshold: float) -> list[tuple[int, float]]:
        """Every other document with exact Jaccard >= ``threshold`` with document ``i``."""
        a = self.size(i)
        if a == 0:
            return []
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        rarest = self.hash[lo:hi][np.lexsort((self.hash[lo:hi], self.df[lo:hi]))]
        prefix = rarest[: a - math.ceil(threshold * a - 1e-9) + 1]
        left = np.searchsorted(self.post_hash, prefix, side="left")
        right = np.searchsorted(self.post_hash, prefix, side="right")
        cands = np.unique(np.concatenate([self.post_doc[x:y] for x, y in zip(left, right, strict=True)]))
        sizes = self.offsets[cands + 1] - self.offsets[cands]
        cands = cands[(cands != i) & (sizes >= threshold * a - 1e-9) & (sizes * threshold <= a + 1e-9)]
        out = []
        for j in cands.tolist():
            sim = self.jaccard(i, j)
            if sim >= threshold:
                out.append((j, sim))
        return out


def pair_metrics(
    texts: Sequence[str],
    kept_index: np.ndarray,
    threshold: float,
    *,
    ngram: int = 5,
    n_sample: int = 2000,
    seed: int = 0,
    sets: ShingleSets | None = None,
) -> dict[str, Any]:
    """Recall and precision of ``kept_index`` (see the module docstring) on sampled pairs.

    ``recall`` is None when the sampled documents have no true near-duplicate, ``precision`` None
    when nothing was removed."""
    kept_index = np.asarray(kept_index)
    n = len(texts)
    if len(kept_index) != n:
        raise ValueError(f"kept_index has {len(kept_index)} entries for {n} texts")
    sets = sets or ShingleSets(texts, ngram)
    rng = np.random.default_rng(seed)
    removed = kept_index != np.arange(n)

    sample = rng.choice(n, size=min(n_sample, n), replace=False) if n else np.zeros(0, dtype=np.int64)
    n_true = n_caught = 0
    for i in sample.tolist():
        for j, _ in sets.neighbors(i, threshold):
            n_true += 1
            n_caught += bool(removed[i] or removed[j])

    gone = np.flatnonzero(removed)
    checked = rng.choice(gone, size=min(n_sample, len(gone)), replace=False) if len(gone) else gone
    n_right = sum(sets.jaccard(i, int(kept_index[i])) >= threshold for i in checked.tolist())
    return {
        "recall": n_caught / n_true if n_true else None,
        "precision": n_right / len(checked) if len(checked) else None,
        "n_true_pairs": n_true,
        "n_removals_checked": len(checked),
        "n_sampled_documents": len(sample),
    }
