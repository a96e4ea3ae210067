"""Near-duplicate removal: MinHash signatures, LSH banding, clusters with one kept document each.

Two documents are near-duplicates when the Jaccard similarity of their sets of word n-grams
("shingles") is at least ``threshold``. Exact duplicates are removed before this step (in dbt, on
the text's sha256); this one finds the copies that differ by a version number, a parameter or a
timestamp — 43% of the OpenAPI directory's operations are such copies.

Everything is vectorized with numpy over a batch of documents, never a Python loop per word:

- **shingles**: the batch is lower-cased, joined with NUL separators and viewed as bytes; a word is
  a run of ``[0-9a-z_]`` or non-ASCII bytes. Each word gets a 64-bit polynomial hash from one
  prefix sum over the batch (``sum c_k B^(e-1-k)``, computed as ``B^(e-1) * (S[e] - S[s])`` with
  ``S`` the prefix sum of ``c_k B^-k``: ``B`` is odd, so it has an inverse mod 2^64); ``n``
  consecutive words of one document fold into a shingle hash. A document shorter than ``n``
  words is one shingle; one without a word has no signature and is never clustered (counted).
- **signatures**: ``num_perm`` random affine maps ``a x + b (mod 2^32)`` of the shingle hash's top
  32 bits (``a`` odd: each is a permutation of the 32-bit space), the minimum per document over its
  shingles. 32 bits halve the memory traffic of the one O(shingles x permutations) step; a chance
  collision (2^-32 per pair of shingles) does not move an estimate.
- **LSH**: ``bands`` bands of ``num_perm / bands`` rows; documents whose band rows are equal are
  candidates. Within a bucket every member is paired with the bucket's first member in priority
  order, and a pair is kept only if its signatures agree on at least ``threshold - verify_slack``
  of the positions (the MinHash estimate of their Jaccard similarity): banding alone lets in pairs
  well below the threshold (at 14 x 8, a pair at J = 0.6 collides 23% of the time).
- **clusters**: in priority order (the caller's: seed data first, then by ``doc_id``) the first
  document not yet removed is kept and every document paired with it is removed for it, with their
  estimated similarity; each removal is checked against the document it was removed for.

The settings are the stage's typed configuration; ``bench/near_dedup.py`` compares this with
datatrove's MinHash pipeline and plain datasketch; ``forge.text.dedup_eval`` measures recall and
precision against exact Jaccard similarity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from forge.core.stage import Stage, StageConfig

#: odd base of the word hash, and its inverse mod 2^64
_BASE = 0x100000001B3 * 2 + 1
_BASE_INV = pow(_BASE, -1, 1 << 64)
_FOLD = np.uint64(0x9E3779B97F4A7C15)
#: bytes that belong to a word: [0-9a-z_] (the batch is lower-cased first) and every non-ASCII byte
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[ord("0") : ord("9") + 1] = True
_WORD_BYTE[ord("a") : ord("z") + 1] = True
_WORD_BYTE[ord("_")] = True
_WORD_BYTE[128:] = True
#: signature value of a document without a single word (never equal to a real signature's row)
NO_SIGNATURE = np.uint32(0xFFFFFFFF)


class NearDedupConfig(StageConfig):
    """``near_dedup``: what counts as a near-duplicate, and the MinHash/LSH settings that find them."""

    speed_only: ClassVar[frozenset[str]] = frozenset({"workers", "batch_chars"})

    #: Jaccard similarity of two documents' word n-gram sets from which they are near-duplicates
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    #: words per shingle
    ngram: int = Field(5, ge=1, le=32)
    #: MinHash permutations (signature length)
    num_perm: int = Field(112, ge=8, le=1024)
    #: LSH bands; ``num_perm / bands`` rows per band (14 x 8: a pair at J = 0.8 collides 92% of the time)
    bands: int = Field(14, ge=1)
    #: a candidate pair is kept if its signatures agree on >= threshold - verify_slack of positions
    #: (None: no check, every LSH collision is a duplicate, as in datatrove). 0.05 keeps the recall
    #: of no check on the OpenAPI operations and more than doubles the precision (bench/near_dedup.py)
    verify_slack: float | None = Field(0.05, ge=0.0, le=1.0)
    #: seed of the permutations (same seed, same signatures)
    seed: int = 1
    #: processes computing signatures (speed only)
    workers: int = Field(2, ge=1)
    #: characters of text per batch handed to a worker (speed only; memory ~ 120 bytes per char)
    batch_chars: int = Field(2_000_000, ge=1_000)

    @model_validator(mode="after")
    def _bands_divide(self) -> NearDedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands


# --- shingles -----------------------------------------------------------------------------------
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``B^k`` and ``B^-k`` mod 2^64 for k < n (uint64 products wrap, which is the modulus).

    Grown by doubling (``x[m:2m] = x[:m] * B^m``): a few vectorized products, kept for the process.
    """
    pw, inv = _POWERS
    while len(pw) < n:
        m = len(pw)
        pw = np.concatenate([pw, pw * np.uint64(pow(_BASE, m, 1 << 64))])
        inv = np.concatenate([inv, inv * np.uint64(pow(_BASE_INV, m, 1 << 64))])
    _POWERS[:] = [pw, inv]
    return pw[:n], inv[:n]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every output bit depends on every input bit (uint64, wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def shingle_hashes(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each document's word ``ngram``-grams, as CSR: ``(hashes, offsets)``, the
    shingles of document ``i`` being ``hashes[offsets[i]:offsets[i+1]]`` (repeats included: a
    minimum does not care). Words are lower-cased runs of ``[0-9a-z_]`` and non-ASCII bytes."""
    n_docs = len(texts)
    joined = "\0".join(t.replace("\0", " ") for t in texts).lower().encode("utf-8", "surrogatepass")
    buf = np.frombuffer(joined, dtype=np.uint8)
    is_word = _WORD_BYTE[buf]
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    pw, inv = _powers(len(buf))
    prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
    np.cumsum(buf.astype(np.uint64) * inv, dtype=np.uint64, out=prefix[1:])
    words = _mix((prefix[ends] - prefix[starts]) * pw[ends - 1])
    word_doc = np.searchsorted(np.flatnonzero(buf == 0), starts)
    n_words = np.bincount(word_doc, minlength=n_docs)

    # n-grams inside one document: fold n consecutive word hashes, keep those not crossing a NUL
    m = len(words) - ngram + 1
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if m > 0:
        acc = words[:m].copy()
        for j in range(1, ngram):
            acc *= _FOLD
            acc ^= words[j : j + m]
        ok = word_doc[:m] == word_doc[ngram - 1 :]
        parts.append((word_doc[:m][ok], _mix(acc[ok])))
    # a document shorter than n words (but not empty) is one shingle of all its words
    short = np.flatnonzero((n_words > 0) & (n_words < ngram))
    if len(short):
        first = np.concatenate([[0], np.cumsum(n_words)])[short]
        acc = words[first].copy()
        for j in range(1, ngram):
            more = j < n_words[short]
            acc = np.where(more, (acc * _FOLD) ^ words[np.minimum(first + j, len(words) - 1)], acc)
        parts.append((short, _mix(acc)))
    docs = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    hashes = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.uint64)
    if len(short):  # the n-gram part is in document order already
        order = np.argsort(docs, kind="stable")
        docs, hashes = docs[order], hashes[order]
    offsets[1:] = np.cumsum(np.bincount(docs, minlength=n_docs))
    return hashes, offsets


# --- signatures ---------------------------------------------------------------------------------
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``num_perm`` affine maps ``a x + b (mod 2^32)``, ``a`` odd (a bijection of uint32)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int, *, block: int = 1 << 12
) -> np.ndarray:
    """MinHash signatures ``(n_docs, num_perm)`` uint32 from CSR shingle hashes; a document without
    shingles gets :data:`NO_SIGNATURE` everywhere. Shingles go through in blocks of about ``block``
    (aligned to documents), so memory is ``block * num_perm * 8`` bytes whatever the batch size."""
    a, b = permutations(num_perm, seed)
    n_docs = len(offsets) - 1
    out = np.full((n_docs, num_perm), NO_SIGNATURE, dtype=np.uint32)
    counts = np.diff(offsets)
    nonempty = np.flatnonzero(counts)
    if len(nonempty) == 0:
        return out
    # split the non-empty documents into runs of about `block` shingles
    cum = offsets[nonempty + 1]
    cut = np.searchsorted(cum, np.arange(block, int(cum[-1]), block), side="left")
    bounds = np.unique(np.concatenate([[0], cut + 1, [len(nonempty)]]))
    bounds = bounds[bounds <= len(nonempty)]
    scratch = np.empty((0, num_perm), dtype=np.uint32)
    # the top 32 bits of the (well mixed) 64-bit shingle hash: half the memory traffic of uint64
    hashes32 = (hashes >> np.uint64(32)).astype(np.uint32)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        docs = nonempty[lo:hi]
        s0, s1 = int(offsets[docs[0]]), int(offsets[docs[-1] + 1])
        x = hashes32[s0:s1]
        if scratch.shape[0] < len(x):
            scratch = np.empty((len(x), num_perm), dtype=np.uint32)
        values = scratch[: len(x)]
        np.multiply(x[:, None], a[None, :], out=values)
        values += b
        out[docs] = np.minimum.reduceat(values, offsets[docs] - s0, axis=0)
    return out


def text_signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of raw texts (:func:`shingle_hashes` then :func:`signatures`)."""
    hashes, offsets = shingle_hashes(texts, ngram)
    return signatures(hashes, offsets, num_perm, seed)


def _batch_signatures(job: tuple[list[str], int, int, int]) -> np.ndarray:
    """Worker entry point (module level: picklable)."""
    return text_signatures(*job)


def batched(texts: Iterator[str] | Sequence[str], batch_chars: int) -> Iterator[list[str]]:
    """Consecutive batches of about ``batch_chars`` characters (at least one text each)."""
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def corpus_signatures(texts: Iterator[str] | Sequence[str], cfg: NearDedupConfig) -> np.ndarray:
    """Signatures of every text, in input order, computed on ``cfg.workers`` processes."""
    from forge.core.parallel import ordered_map

    jobs = ((b, cfg.ngram, cfg.num_perm, cfg.seed) for b in batched(texts, cfg.batch_chars))
    parts = list(ordered_map(_batch_signatures, jobs, cfg.workers))
    if not parts:
        return np.zeros((0, cfg.num_perm), dtype=np.uint32)
    return np.concatenate(parts)


# --- LSH and clusters ---------------------------------------------------------------------------
#: buckets up to this size give all their pairs to the check (see :func:`candidate_pairs`)
SMALL_BUCKET = 32


def candidate_pairs(sig: np.ndarray, bands: int) -> np.ndarray:
    """Pairs ``(later, earlier)`` (int64) of documents that share a band; unique, sorted. A bucket of
    at most :data:`SMALL_BUCKET` documents gives all its pairs; a bigger one (a template shared by
    thousands of documents would give millions) pairs each member with the bucket's first document
    (lowest index) and with the member before it, which keeps similar members linked when the head
    is removed for a third document. Documents without a signature are left out."""
    n, num_perm = sig.shape
    rows = num_perm // bands
    live = np.flatnonzero(sig[:, 0] != NO_SIGNATURE) if n else np.zeros(0, dtype=np.int64)
    found: list[np.ndarray] = []
    for k in range(bands):
        band = sig[live, k * rows : (k + 1) * rows].astype(np.uint64)
        key = np.full(len(live), np.uint64(k), dtype=np.uint64)
        for j in range(rows):
            key = _mix(key * _FOLD ^ band[:, j])
        order = np.argsort(key, kind="stable")  # equal keys keep index order: the head comes first
        sorted_key = key[order]
        new_group = np.ones(len(order), dtype=bool)
        new_group[1:] = sorted_key[1:] != sorted_key[:-1]
        head_pos = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
        member = np.flatnonzero(~new_group)
        found.append(live[order[member]] * n + live[order[head_pos[member]]])  # to the head
        # every pair of a bucket of at most SMALL_BUCKET members; the one before in bigger ones
        group = np.cumsum(new_group)
        size = np.bincount(group)[group]
        for k in range(1, SMALL_BUCKET):
            later = np.arange(k, len(order))
            later = later[(group[later] == group[later - k]) & ((k == 1) | (size[later] <= SMALL_BUCKET))]
            if len(later) == 0:
                break
            found.append(live[order[later]] * n + live[order[later - k]])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1) if n else np.zeros((0, 2), dtype=np.int64)


def agreement(sig: np.ndarray, pairs: np.ndarray, *, block: int = 1 << 16) -> np.ndarray:
    """Share of equal signature positions per pair: the MinHash estimate of their Jaccard."""
    out = np.empty(len(pairs), dtype=np.float32)
    for lo in range(0, len(pairs), block):
        p = pairs[lo : lo + block]
        out[lo : lo + block] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


@dataclass(frozen=True)
class Clusters:
    """Near-duplicate clusters over ``n`` documents (indices in priority order).

    ``kept_index[i]`` is the document ``i`` is kept for (itself when kept, or when it is in no
    cluster); ``similarity[i]`` the estimated Jaccard of ``i`` and its kept document (1 for a kept
    one); ``cluster_size[i]`` the size of ``i``'s cluster (1: not a near-duplicate of anything).
    """

    kept_index: np.ndarray
    similarity: np.ndarray
    cluster_size: np.ndarray
    n_candidate_pairs: int
    n_pairs: int
    n_without_signature: int

    @property
    def is_kept(self) -> np.ndarray:
        return self.kept_index == np.arange(len(self.kept_index))


def cluster(sig: np.ndarray, cfg: NearDedupConfig) -> Clusters:
    """LSH candidates, checked against the threshold, then assigned greedily in priority order:
    the first document not yet removed is kept and every unassigned document paired with it is
    removed for it. So each removed document was checked against the very document it was removed
    for — no chains (A ~ B ~ C removing C for A although A and C differ), unlike connected
    components."""
    n = len(sig)
    pairs = candidate_pairs(sig, cfg.bands)
    n_candidates = len(pairs)
    if cfg.verify_slack is not None and len(pairs):
        pairs = pairs[agreement(sig, pairs) >= cfg.threshold - cfg.verify_slack]
    kept_index = np.arange(n)
    # adjacency grouped by the earlier document: earlier -> the later ones paired with it
    by_earlier = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))] if len(pairs) else pairs
    heads, starts = np.unique(by_earlier[:, 1], return_index=True) if len(pairs) else ([], [])
    ends = np.append(starts[1:], len(by_earlier)) if len(pairs) else []
    assigned = np.zeros(n, dtype=bool)
    for head, lo, hi in zip(
        np.asarray(heads).tolist(), np.asarray(starts).tolist(), np.asarray(ends).tolist(), strict=True
    ):
        if assigned[head]:
            continue  # removed for an earlier document: not a center
        later = by_earlier[lo:hi, 0]
        later = later[~assigned[later]]
        kept_index[later] = head
        assigned[later] = True
    sizes = np.bincount(kept_index, minlength=n)[kept_index] if n else np.zeros(0, dtype=np.int64)
    similarity = np.ones(n, dtype=np.float32)
    removed = np.flatnonzero(kept_index != np.arange(n))
    if len(removed):
        similarity[removed] = agreement(sig, np.stack([removed, kept_index[removed]], axis=1))
    n_empty = int((sig[:, 0] == NO_SIGNATURE).sum()) if n else 0
    return Clusters(kept_index, similarity, sizes, n_candidates, len(pairs), n_empty)


def near_duplicates(texts: Sequence[str], cfg: NearDedupConfig) -> Clusters:
    """Cluster ``texts`` (in priority order: the first of each cluster is kept)."""
    return cluster(corpus_signatures(texts, cfg), cfg)


# --- the stage ----------------------------------------------------------------------------------
#: one row per document in a near-duplicate cluster of two or more (read by dbt as a source)
NEAR_DUPLICATE_CLUSTERS = pa.schema(
    [
        ("cluster_id", pa.string()),
        ("doc_id", pa.string()),
        ("is_kept", pa.bool_()),
        ("kept_doc_id", pa.string()),
        ("similarity_to_kept", pa.float32()),
        ("cluster_size", pa.int64()),
        ("category", pa.string()),
        ("source", pa.string()),
        ("n_chars", pa.int64()),
    ]
)
#: the table this stage reads: exact duplicates and disallowed licenses already removed
CANDIDATES_TABLE = "int_exact_deduplicated_corpus_documents"


def run_near_dedup(
    cfg: NearDedupConfig, *, out_dir: Path, warehouse: Path, table: str = CANDIDATES_TABLE
) -> dict[str, Any]:
    """Cluster the corpus candidates of ``table`` (seed documents first, then by ``doc_id``: the
    first of a cluster is kept) and write the clustered ones to ``out_dir/part-0.parquet``."""
    from forge.core.io import write_parquet
    from forge.core.warehouse import connect

    order = "order by is_seed desc, doc_id"
    with connect(warehouse) as con:
        meta = con.sql(f"select doc_id, category, subcategory, n_chars from {table} {order}").arrow()
        if isinstance(meta, pa.RecordBatchReader):
            meta = meta.read_all()
        reader = con.sql(f"select text from {table} {order}").to_arrow_reader(10_000)
        texts = (t for batch in reader for t in batch.column(0).to_pylist())
        sig = corpus_signatures(texts, cfg)
    if len(sig) != meta.num_rows:
        raise RuntimeError(f"{table}: {meta.num_rows} rows but {len(sig)} signatures (table changed?)")
    found = cluster(sig, cfg)
    members = np.flatnonzero(found.cluster_size > 1)
    doc_ids = np.asarray(meta.column("doc_id").to_pylist(), dtype=object)
    categories = meta.column("category").to_pylist()
    kept_ids = doc_ids[found.kept_index[members]]
    table_out = pa.table(
        {
            "cluster_id": pa.array(kept_ids.tolist(), pa.string()),
            "doc_id": pa.array(doc_ids[members].tolist(), pa.string()),
            "is_kept": pa.array(found.is_kept[members]),
            "kept_doc_id": pa.array(kept_ids.tolist(), pa.string()),
            "similarity_to_kept": pa.array(found.similarity[members]),
            "cluster_size": pa.array(found.cluster_size[members].astype(np.int64)),
            "category": meta.column("category").take(pa.array(members)),
            "source": meta.column("subcategory").take(pa.array(members)),
            "n_chars": meta.column("n_chars").take(pa.array(members)).cast(pa.int64()),
        },
        schema=NEAR_DUPLICATE_CLUSTERS,
    )
    write_parquet(out_dir / "part-0.parquet", table_out, NEAR_DUPLICATE_CLUSTERS)
    removed = np.flatnonzero(~found.is_kept)
    by_category = Counter(categories[i] for i in removed)
    sources = meta.column("subcategory").to_pylist()
    by_source = Counter(f"{categories[i]}/{sources[i]}" for i in removed)
    return {
        "n_documents": int(meta.num_rows),
        "n_clusters": int(found.is_kept[members].sum()),
        "n_removed": len(removed),
        "removed_by_category": dict(sorted(by_category.items())),
        "removed_by_source": dict(sorted(by_source.items())),
        "n_candidate_pairs": found.n_candidate_pairs,
        "n_pairs_over_threshold": found.n_pairs,
        "n_without_words": found.n_without_signature,
    }


NEAR_DEDUP_STAGE = Stage("near_dedup", NearDedupConfig, run_near_dedup)
