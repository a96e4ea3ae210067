"""Near-duplicate removal: shingles, signatures, clusters, and recall/precision against exact Jaccard."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydantic import ValidationError

from forge.text.dedup import NO_SIGNATURE, NearDedupConfig, near_duplicates, shingle_hashes, text_signatures
from forge.text.dedup_eval import ShingleSets, pair_metrics

CFG = NearDedupConfig(workers=1)


def _corpus(n_base: int = 150, copies: int = 2, seed: int = 0) -> tuple[list[str], list[int]]:
    """Random word documents, each followed by ``copies`` near-copies (one word in 120 changed)."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    texts, origin = [], []
    for b in range(n_base):
        words = [rng.choice(vocab) for _ in range(120)]
        texts.append(" ".join(words))
        origin.append(b)
        for _ in range(copies):
            w = list(words)
            w[rng.randrange(len(w))] = "changed"
            texts.append(" ".join(w))
            origin.append(b)
    return texts, origin


def test_shingles_ignore_case_and_punctuation_and_respect_document_bounds():
    a, b = "Hello, World! This is one test.", "hello world this is ONE test"
    h, off = shingle_hashes([a, b, "short doc", "", "!!!"], 5)
    assert off.tolist() == [0, 2, 4, 5, 5, 5]
    assert h[0:2].tolist() == h[2:4].tolist()  # same words, same shingles
    assert h[4] not in h[:4]
    # the same text in another batch position hashes the same (no position leaks into hashes)
    h2, off2 = shingle_hashes(["x " * 30, b], 5)
    assert h2[off2[1] : off2[2]].tolist() == h[2:4].tolist()


def test_non_ascii_words_and_nul_bytes():
    h, off = shingle_hashes(
        ["naïve café résumé über straße", "naive cafe resume uber strasse", "a\0b c d e f"], 3
    )
    assert off[1] - off[0] == 3 and off[2] - off[1] == 3
    assert set(h[0:3].tolist()).isdisjoint(h[3:6].tolist())
    assert off[3] - off[2] == 4  # the NUL is a space, not a document boundary


def test_signature_agreement_estimates_jaccard():
    texts, _ = _corpus(n_base=40, copies=1)
    sig = text_signatures(texts, 5, 256, seed=3)
    sets = ShingleSets(texts, 5)
    errors = [abs((sig[i] == sig[i + 1]).mean() - sets.jaccard(i, i + 1)) for i in range(0, 80, 2)]
    assert np.mean(errors) < 0.04  # std error at 256 permutations is about 0.025
    unrelated = [(sig[i] == sig[i + 2]).mean() for i in range(0, 76, 2)]
    assert max(unrelated) < 0.1
    assert (text_signatures([""], 5, 16, 1) == NO_SIGNATURE).all()


def test_clusters_keep_the_first_copy_and_find_every_planted_copy():
    texts, origin = _corpus()
    found = near_duplicates(texts, CFG)
    kept = found.kept_index
    assert found.is_kept.sum() == 150
    for i, o in enumerate(origin):
        assert origin[kept[i]] == o
        assert kept[i] == origin.index(o)  # the first one (priority order) is kept
    assert (found.similarity[~found.is_kept] > 0.8).all()
    assert (found.cluster_size == 3).all()


def test_below_threshold_is_not_a_duplicate():
    rng = random.Random(1)
    words = [f"v{rng.randrange(10_000)}" for _ in range(200)]
    half = words[:100] + [f"x{i}" for i in range(100)]  # Jaccard ~ 1/3 with the original
    found = near_duplicates([" ".join(words), " ".join(half)], CFG)
    assert found.is_kept.all()


def test_parallel_workers_give_the_same_clusters():
    texts, _ = _corpus(n_base=60)
    one = near_duplicates(texts, CFG)
    two = near_duplicates(texts, NearDedupConfig(workers=2, batch_chars=5_000))
    assert (one.kept_index == two.kept_index).all()


def test_config_is_strict_and_checked():
    with pytest.raises(ValidationError, match="multiple of bands"):
        NearDedupConfig(num_perm=100, bands=14)
    with pytest.raises(ValidationError, match="extra"):
        NearDedupConfig(treshold=0.7)
    assert NearDedupConfig(workers=8).fingerprint_fields() == NearDedupConfig().fingerprint_fields()


def test_exact_neighbors_match_brute_force():
    texts, _ = _corpus(n_base=30, copies=2)
    texts += [" ".join(t.split()[:90]) for t in texts[:10]]  # J ~ 0.7: under 0.8, over 0.6
    sets = ShingleSets(texts, 5)
    for t in (0.6, 0.8):
        for i in range(0, len(texts), 7):
            brute = {j for j in range(len(texts)) if j != i and sets.jaccard(i, j) >= t}
            assert {j for j, _ in sets.neighbors(i, t)} == brute


def test_pair_metrics_score_perfect_lazy_and_greedy_removals():
    texts, origin = _corpus(n_base=50)
    first = {o: origin.index(o) for o in set(origin)}
    perfect = np.array([first[o] for o in origin])
    m = pair_metrics(texts, perfect, 0.8, n_sample=len(texts))
    assert m["recall"] == 1.0 and m["precision"] == 1.0 and m["n_true_pairs"] == 300

    nothing = pair_metrics(texts, np.arange(len(texts)), 0.8, n_sample=len(texts))
    assert nothing["recall"] == 0.0 and nothing["precision"] is None

    wrong = np.arange(len(texts))
    wrong[3] = 0  # document 3 (another base) removed for document 0
    bad = pair_metrics(texts, wrong, 0.8, n_sample=len(texts))
    assert bad["precision"] == 0.0 and 0 < bad["recall"] < 1


def test_stage_reads_the_candidates_and_writes_the_cluster_table(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    from forge.text.dedup import CANDIDATES_TABLE, NEAR_DEDUP_STAGE

    texts, origin = _corpus(n_base=20, copies=1)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            f"create table {CANDIDATES_TABLE} (doc_id varchar, category varchar, subcategory varchar, "
            "n_chars bigint, is_seed boolean, text varchar)"
        )
        rows = [
            # the copy is a seed document: seed first, so it is the one kept
            (f"doc{i:03d}", "agent" if o % 2 else "text", "api_doc", len(t), i % 2 == 1, t)
            for i, (t, o) in enumerate(zip(texts, origin, strict=True))
        ]
        con.executemany(f"insert into {CANDIDATES_TABLE} values (?, ?, ?, ?, ?, ?)", rows)
    cfg = NEAR_DEDUP_STAGE.parse({"workers": 1})
    meta = NEAR_DEDUP_STAGE.run(cfg, out_dir=tmp_path / "out", warehouse=warehouse)
    assert meta["n_documents"] == 40 and meta["n_clusters"] == 20 and meta["n_removed"] == 20
    assert meta["removed_by_category"] == {"agent": 10, "text": 10}
    table = pq.read_table(tmp_path / "out" / "part-0.parquet").to_pylist()
    assert len(table) == 40
    kept = {r["doc_id"] for r in table if r["is_kept"]}
    assert kept == {f"doc{i:03d}" for i in range(1, 40, 2)}  # the seed copies
    for r in table:
        assert r["cluster_id"] == r["kept_doc_id"] and r["cluster_size"] == 2
        assert (r["similarity_to_kept"] == 1.0) == r["is_kept"] or r["similarity_to_kept"] > 0.8
