"""Mixture selection by token ratios, and packed shards (contracts.packed): exact, atomic, streamable."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from contracts.packed import read_manifest
from forge.core.stats import StepStats
from forge.corpus.packing import iter_token_windows, pack_documents, select_mixture
from forge.corpus.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[3]


def _docs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    cats = ["agent", "code", "text"]
    words = [
        "alpha",
        "beta",
        "γάμμα",
        "🙂",
        "def",
        "return",
        "(x)",
        "{",
        "}",
        "\n",
        "café",
        "<tool_call>",
        "42",
    ]
    return [
        {
            "doc_id": f"d{i}",
            "category": cats[i % 3],
            "text": " ".join(rng.choices(words, k=rng.randint(1, 60))),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return train_tokenizer(
        [d["text"] for d in _docs(300, seed=1)], tmp_path_factory.mktemp("tok") / "tok", 400
    )


def _stream(out: Path, manifest: dict) -> np.ndarray:
    parts = [
        np.fromfile(out / s["path"], dtype=np.dtype(manifest["dtype"]).newbyteorder("<"))
        for s in manifest["shards"]
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint16)


def test_shards_decode_back_to_documents_plus_eos(tok_dir, tmp_path):
    docs = _docs(120)
    out = tmp_path / "packed"
    manifest = pack_documents(docs, tok_dir, out, shard_tokens=257, batch_size=16)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    stream = _stream(out, manifest)
    eos = manifest["eos_id"]
    assert eos == tok.eos_token_id == 0
    expected = np.concatenate(
        [np.array([*tok.encode(d["text"], add_special_tokens=False), eos]) for d in docs]
    )
    assert np.array_equal(stream, expected)
    # Split on EOS (documents contain no literal <|endoftext|>) and decode each back to its text.
    bounds = np.flatnonzero(stream == eos)
    starts = np.concatenate([[0], bounds[:-1] + 1])
    assert [tok.decode(stream[a:b].tolist()) for a, b in zip(starts, bounds, strict=True)] == [
        d["text"] for d in docs
    ]


def test_manifest_counts_and_shard_layout(tok_dir, tmp_path):
    docs = _docs(90)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    out = tmp_path / "packed"
    manifest = pack_documents(docs, tok_dir, out, shard_tokens=100, batch_size=7)
    assert set(manifest) == {
        "format",
        "dtype",
        "eos_id",
        "vocab_size",
        "tokenizer_dir",
        "n_tokens",
        "n_documents",
        "tokens_by_category",
        "shards",
        "fingerprint",
    }
    assert manifest["format"] == "hephaestus-packed-v1" and manifest["dtype"] == "uint16"
    assert manifest["vocab_size"] == len(tok)
    per_doc = {d["doc_id"]: len(tok.encode(d["text"], add_special_tokens=False)) + 1 for d in docs}
    assert manifest["n_documents"] == 90
    assert manifest["n_tokens"] == sum(per_doc.values()) == sum(s["n_tokens"] for s in manifest["shards"])
    for cat in ("agent", "code", "text"):
        assert manifest["tokens_by_category"][cat] == sum(
            per_doc[d["doc_id"]] for d in docs if d["category"] == cat
        )
    sizes = [s["n_tokens"] for s in manifest["shards"]]
    assert all(n == 100 for n in sizes[:-1]) and 0 < sizes[-1] <= 100
    assert [s["path"] for s in manifest["shards"]] == [f"shard_{i:05d}.bin" for i in range(len(sizes))]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", *(s["path"] for s in manifest["shards"])]
    )
    assert (
        read_manifest(out, verify=True).to_json()
        == manifest
        == json.loads((out / "manifest.json").read_text())
    )
    # Same input, same fingerprint; a different document changes it.
    again = pack_documents(docs, tok_dir, tmp_path / "again", shard_tokens=100)
    assert again["fingerprint"] == manifest["fingerprint"]
    other = pack_documents(
        [*docs[:-1], {**docs[-1], "text": "changed"}], tok_dir, tmp_path / "other", shard_tokens=100
    )
    assert other["fingerprint"] != manifest["fingerprint"]


def test_corrupted_shard_fails_verification(tok_dir, tmp_path):
    out = tmp_path / "packed"
    manifest = pack_documents(_docs(30), tok_dir, out, shard_tokens=64)
    shard = out / manifest["shards"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[0] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        read_manifest(out, verify=True)


def test_bad_rows_are_counted_not_packed(tok_dir, tmp_path):
    stats = StepStats("pack")
    docs = [
        *_docs(5),
        {"doc_id": "e", "category": "text", "text": ""},
        {"doc_id": "n", "text": "no category"},
    ]
    manifest = pack_documents(docs, tok_dir, tmp_path / "p", stats=stats)
    assert manifest["n_documents"] == 5
    assert stats.n_kept == 5 and dict(stats.dropped) == {"empty_or_missing_text": 1, "missing_category": 1}


def test_uint32_for_large_vocab(tmp_path):
    vocab = {"<|endoftext|>": 0, **{f"w{i}": i + 1 for i in range(70_000)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>").save_pretrained(tmp_path / "big")
    manifest = pack_documents(
        [{"doc_id": "a", "category": "code", "text": "w69999 w1 w65536"}], tmp_path / "big", tmp_path / "p"
    )
    assert manifest["dtype"] == "uint32"
    assert _stream(tmp_path / "p", manifest).tolist() == [70000, 2, 65537, 0]


def test_token_windows_span_shards(tok_dir, tmp_path):
    out = tmp_path / "packed"
    manifest = pack_documents(_docs(60), tok_dir, out, shard_tokens=50)
    stream = _stream(out, manifest)
    windows = list(iter_token_windows(out, 32))
    assert len(windows) == manifest["n_tokens"] // 32
    assert np.array_equal(np.concatenate(windows), stream[: len(windows) * 32])


def test_failed_run_leaves_previous_output_intact(tok_dir, tmp_path):
    out = tmp_path / "packed"
    before = pack_documents(_docs(40), tok_dir, out, shard_tokens=64)

    def dies():
        yield from _docs(200, seed=5)[:150]
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        pack_documents(dies(), tok_dir, out, shard_tokens=64, batch_size=8)
    assert read_manifest(out, verify=True).to_json() == before
    assert [p.name for p in tmp_path.iterdir()] == ["packed"]


def test_killed_process_leaves_previous_output_intact(tok_dir, tmp_path):
    out = tmp_path / "packed"
    before = pack_documents(_docs(40), tok_dir, out, shard_tokens=64)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from forge.corpus.packing import pack_documents
        def docs():
            for i in range(10_000):
                if i == 500:
                    os.kill(os.getpid(), signal.SIGKILL)  # mid-run, shards already on disk
                yield {{"doc_id": str(i), "category": "text", "text": "alpha beta café " * 20}}
        pack_documents(docs(), {str(tok_dir)!r}, {str(out)!r}, shard_tokens=64, batch_size=16)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    leftovers = [p for p in tmp_path.iterdir() if p.name != "packed"]
    assert leftovers and any(p.glob("shard_*.bin") for p in leftovers)  # the killed run had written shards
    assert read_manifest(out, verify=True).to_json() == before


# ---- mixture ---------------------------------------------------------------------------------


def _pool(seed: int, n: dict[str, int]) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    return {
        cat: [
            {"doc_id": f"{cat}{i}", "n_tokens": rng.randint(50, 500), "text": f"{cat} {i}"} for i in range(k)
        ]
        for cat, k in n.items()
    }


def test_mixture_follows_ratios_within_budget():
    pool = _pool(0, {"agent": 400, "code": 400, "text": 400})
    rows, report = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 60_000, seed=3)
    tokens = {c: sum(r["n_tokens"] for r in rows if r["category"] == c) for c in pool}
    for cat in pool:
        assert 20_000 - 500 < tokens[cat] <= 20_000  # never over target, short by less than one doc
        assert report["categories"][cat]["selected_tokens"] == tokens[cat]
        assert abs(report["achieved_ratios"][cat] - 1 / 3) < 0.01
        assert report["categories"][cat]["short"] is False
    assert report["n_tokens_selected"] == sum(tokens.values()) <= 60_000
    assert report["notes"] == []
    assert len({r["doc_id"] for r in rows}) == len(rows)  # no repeats by default
    assert len({r["category"] for r in rows[:30]}) == 3  # categories interleaved, not blocked


def test_mixture_reports_shortfall_honestly():
    pool = _pool(1, {"agent": 20, "code": 400, "text": 400})
    agent_total = sum(d["n_tokens"] for d in pool["agent"])
    rows, report = select_mixture(pool, {"agent": 1, "code": 1, "text": 1}, 60_000, seed=3)
    agent = report["categories"]["agent"]
    assert agent["short"] is True and agent["selected_tokens"] == agent_total == agent["available_tokens"]
    assert agent["shortfall_tokens"] == 20_000 - agent_total
    assert sum(1 for r in rows if r["category"] == "agent") == 20
    # The others keep their own targets; the achieved agent ratio is the real one, well below 1/3.
    assert report["categories"]["code"]["selected_tokens"] > 19_500
    assert report["achieved_ratios"]["agent"] == pytest.approx(agent_total / report["n_tokens_selected"])
    assert report["achieved_ratios"]["agent"] < 0.25
    assert any("'agent'" in note and "shortfall" in note for note in report["notes"])


def test_mixture_repeat_counts_epochs():
    pool = _pool(2, {"agent": 10, "code": 400})
    agent_total = sum(d["n_tokens"] for d in pool["agent"])
    target = 30_000
    rows, report = select_mixture(
        pool, {"agent": 1, "code": 1}, 2 * target, seed=1, allow_repeat=True, max_epochs=3
    )
    agent_rows = [r for r in rows if r["category"] == "agent"]
    assert sum(r["n_tokens"] for r in agent_rows) == 3 * agent_total  # capped at max_epochs
    assert sorted({r["epoch"] for r in agent_rows}) == [0, 1, 2]
    assert report["categories"]["agent"]["epochs"] == 3.0 and report["categories"]["agent"]["short"] is True
    assert all(r["epoch"] == 0 for r in rows if r["category"] == "code")
    # Enough epochs allowed: reaches the target (within one document).
    rows, report = select_mixture(
        pool, {"agent": 1, "code": 1}, 2 * target, seed=1, allow_repeat=True, max_epochs=1000
    )
    got = report["categories"]["agent"]["selected_tokens"]
    assert target - 500 < got <= target and report["categories"]["agent"]["epochs"] == pytest.approx(
        got / agent_total, abs=1e-3
    )


def test_mixture_is_deterministic_and_order_independent():
    pool = _pool(3, {"agent": 200, "code": 200, "text": 200})
    ratios = {"agent": 2, "code": 1, "text": 1}
    a, ra = select_mixture(pool, ratios, 20_000, seed=11)
    shuffled = {c: random.Random(9).sample(v, len(v)) for c, v in pool.items()}
    b, rb = select_mixture(shuffled, ratios, 20_000, seed=11)
    c, _ = select_mixture(pool, ratios, 20_000, seed=12)
    assert [r["doc_id"] for r in a] == [r["doc_id"] for r in b] and ra == rb
    assert {r["doc_id"] for r in a} != {r["doc_id"] for r in c}
    # A callable source (streamed twice) gives the same answer as the dict.
    d, rd = select_mixture(lambda cat: iter(pool.get(cat, [])), ratios, 20_000, seed=11)
    assert [r["doc_id"] for r in d] == [r["doc_id"] for r in a] and rd["categories"] == ra["categories"]


def test_mixture_counts_bad_rows_and_validates_input():
    pool = {
        "agent": [{"doc_id": "a", "n_tokens": 5}, {"doc_id": "a", "n_tokens": 5}, {"n_tokens": 5}],
        "spare": [],
    }
    rows, report = select_mixture(pool, {"agent": 1}, 100, seed=0)
    assert [r["doc_id"] for r in rows] == ["a"]
    assert report["dropped"]["dropped_by_reason"] == {"duplicate_doc_id": 1, "missing_doc_id": 1}
    assert report["unused_categories"] == ["spare"]
    with pytest.raises(ValueError):
        select_mixture(pool, {"agent": -1}, 100, seed=0)
    # Without n_tokens the estimate is len(text) / 4.
    rows, report = select_mixture({"text": [{"doc_id": "x", "text": "a" * 400}]}, {"text": 1}, 1000, seed=0)
    assert report["categories"]["text"]["available_tokens"] == 100
