"""Packed shards (contracts.packed): exact, atomic, streamable, resumable, with token-level lineage."""

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
from forge.corpus.packing import iter_token_windows, pack_documents, work_dir_for
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
    manifest = pack_documents(docs, tok_dir, out, shard_tokens=257, part_rows=16)
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
    manifest = pack_documents(docs, tok_dir, out, shard_tokens=100, part_rows=7)
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
        "sampling",
        "sources",
        "lineage",
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
        ["manifest.json", "spans.parquet", "documents.parquet", *(s["path"] for s in manifest["shards"])]
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
        pack_documents(dies(), tok_dir, out, shard_tokens=64, part_rows=8)
    assert read_manifest(out, verify=True).to_json() == before
    # what the failed run finished is kept beside it, hidden, for the next run to resume from
    assert sorted(p.name for p in tmp_path.iterdir()) == [".packed.work", "packed"]


# ---- resume and lineage -----------------------------------------------------------------------


class _Stop(Exception):
    pass


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_packing_resumes_after_a_failure_and_matches_an_uninterrupted_run(tok_dir, tmp_path, monkeypatch):
    docs = _docs(300, seed=7)
    whole = pack_documents(docs, tok_dir, tmp_path / "whole", shard_tokens=97, part_rows=40)
    assert len(whole["shards"]) > 6

    out = tmp_path / "resumed"
    done: list[int] = []

    def stop_after_three(i: int) -> None:
        done.append(i)
        if len(done) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        pack_documents(docs, tok_dir, out, shard_tokens=97, part_rows=40, on_shard=stop_after_three)
    assert not out.exists() and sorted(
        p.name for p in (work_dir_for(out) / "shards").glob("shard_*.bin")
    ) == [f"shard_{i:05d}.bin" for i in range(3)]
    # The rerun tokenizes nothing again and writes only the shards the first run did not finish.
    import forge.corpus.spool as spool

    encoded: list[int] = []
    real = spool._write_part
    monkeypatch.setattr(spool, "_write_part", lambda *a, **k: encoded.append(1) or real(*a, **k))
    written: list[int] = []
    resumed = pack_documents(docs, tok_dir, out, shard_tokens=97, part_rows=40, on_shard=written.append)
    assert encoded == [] and written == list(range(3, len(whole["shards"])))
    assert resumed == {**whole, "tokenizer_dir": whole["tokenizer_dir"]}
    assert _files(out) == _files(tmp_path / "whole")
    assert not work_dir_for(out).exists()


def test_changed_input_is_not_resumed_from_stale_parts(tok_dir, tmp_path):
    docs = _docs(200, seed=8)
    out = tmp_path / "p"

    def stop(i: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        pack_documents(docs, tok_dir, out, shard_tokens=64, part_rows=30, on_shard=stop)
    changed = [*docs[:100], {**docs[100], "text": "something else entirely"}, *docs[101:]]
    got = pack_documents(changed, tok_dir, out, shard_tokens=64, part_rows=30)
    fresh = pack_documents(changed, tok_dir, tmp_path / "fresh", shard_tokens=64, part_rows=30)
    assert got["fingerprint"] == fresh["fingerprint"] and _files(out) == _files(tmp_path / "fresh")


def test_killed_process_keeps_the_old_output_and_resumes_to_the_same_bytes(tok_dir, tmp_path):
    out = tmp_path / "packed"
    before = pack_documents(_docs(40), tok_dir, out, shard_tokens=64)
    docs = [{"doc_id": str(i), "category": "text", "text": f"alpha {i} beta café " * 9} for i in range(400)]
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from forge.corpus.packing import pack_documents
        docs = [{{"doc_id": str(i), "category": "text", "text": f"alpha {{i}} beta café " * 9}} for i in range(400)]
        kill = lambda i: os.kill(os.getpid(), signal.SIGKILL) if i == 4 else None  # mid-run
        pack_documents(docs, {str(tok_dir)!r}, {str(out)!r}, shard_tokens=128, part_rows=50, on_shard=kill)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert read_manifest(out, verify=True).to_json() == before  # the old output is untouched
    assert len(list((work_dir_for(out) / "shards").glob("shard_*.bin"))) == 5
    written: list[int] = []
    pack_documents(docs, tok_dir, out, shard_tokens=128, part_rows=50, on_shard=written.append)
    whole = pack_documents(docs, tok_dir, tmp_path / "whole", shard_tokens=128, part_rows=50)
    assert written[0] == 5 and len(written) == len(whole["shards"]) - 5
    assert _files(out) == _files(tmp_path / "whole")


def test_every_token_maps_to_its_document(tok_dir, tmp_path):
    import pyarrow.parquet as pq

    from contracts.packed import locate_token

    docs = [{**d, "source_uri": f"file:///{d['doc_id']}.txt", "subcategory": "s"} for d in _docs(80, seed=3)]
    out = tmp_path / "packed"
    manifest = pack_documents(docs, tok_dir, out, shard_tokens=53)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    spans = pq.read_table(out / "spans.parquet").to_pylist()
    assert sum(s["length"] for s in spans) == manifest["n_tokens"]
    # spans tile every shard without gaps, in order
    for i, shard in enumerate(manifest["shards"]):
        mine = [s for s in spans if s["shard"] == i]
        assert [s["offset"] for s in mine] == list(np.cumsum([0] + [s["length"] for s in mine[:-1]]))
        assert sum(s["length"] for s in mine) == shard["n_tokens"]
    # a document's pieces, read back from the shards, are its ids + EOS
    stream = _stream(out, manifest)
    by_doc: dict[str, list[int]] = {}
    for s in spans:
        a = s["shard"] * 53 + s["offset"]
        by_doc.setdefault(s["doc_id"], []).extend(stream[a : a + s["length"]].tolist())
    for d in docs:
        assert by_doc[d["doc_id"]] == [*tok.encode(d["text"], add_special_tokens=False), 0]
    # locate_token: a document continued from one shard into the next is found from both sides
    cont = next(s for s in spans if s["doc_token_start"] > 0)
    hit = locate_token(out, f"shard_{cont['shard']:05d}.bin", cont["offset"])
    assert hit["doc_id"] == cont["doc_id"] and hit["token_in_document"] == cont["doc_token_start"]
    assert hit["source_uri"] == f"file:///{cont['doc_id']}.txt" and hit["subcategory"] == "s"
    before = locate_token(out, cont["shard"] - 1, 52)
    assert before["doc_id"] == cont["doc_id"] and before["token_in_document"] == cont["doc_token_start"] - 1
    assert hit["token_id"] == int(stream[cont["shard"] * 53 + cont["offset"]])
    with pytest.raises(ValueError, match="outside shard"):
        locate_token(out, 0, 53)
    with pytest.raises(ValueError, match="no shard named"):
        locate_token(out, "shard_99999.bin", 0)


def test_nothing_to_pack_is_an_empty_manifest_not_a_crash(tok_dir, tmp_path):
    stats = StepStats("pack")
    manifest = pack_documents(
        [{"doc_id": "e", "category": "text", "text": ""}], tok_dir, tmp_path / "p", stats=stats
    )
    assert (
        manifest["n_tokens"] == 0
        and manifest["shards"] == []
        and dict(stats.dropped) == {"empty_or_missing_text": 1}
    )
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "p" / "spans.parquet").num_rows == 0
