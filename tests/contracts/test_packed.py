"""The packed-shard manifest: one writer shape, one reader, and both packages use them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import forge.corpus.packing
import training.data
from contracts.packed import FORMAT, Manifest, dtype_for_vocab, read_manifest


def _write(tmp_path, ids=(5, 6, 7, 0), **overrides):
    data = np.asarray(ids, dtype="<u2").tobytes()
    (tmp_path / "shard_00000.bin").write_bytes(data)
    shard = {"path": "shard_00000.bin", "n_tokens": len(ids), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = Manifest(
        dtype="uint16", eos_id=0, vocab_size=10, tokenizer_dir="tok", n_tokens=len(ids), shards=[shard],
        n_documents=1, tokens_by_category={"text": len(ids)}, fingerprint="abc",
    ).to_json()  # fmt: skip
    manifest.update(overrides)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_written_manifest_reads_back_identically(tmp_path):
    written = _write(tmp_path)
    assert written["format"] == FORMAT
    manifest = read_manifest(tmp_path, verify=True)
    assert manifest.to_json() == written and manifest.itemsize == 2


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_manifest(tmp_path)
    _write(tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="dtype must be uint16 or uint32"):
        read_manifest(tmp_path)
    _write(tmp_path, shards=[])
    assert read_manifest(tmp_path).shards == []
    with pytest.raises(ValueError, match="lists no shards"):
        read_manifest(tmp_path, require_shards=True)
    _write(tmp_path)
    (tmp_path / "shard_00000.bin").write_bytes(np.asarray([5, 6, 7, 1], dtype="<u2").tobytes())
    read_manifest(tmp_path)  # sizes only checked with verify
    with pytest.raises(ValueError, match="sha256 mismatch"):
        read_manifest(tmp_path, verify=True)


def test_dtype_follows_vocab_size():
    assert dtype_for_vocab(65535) == "uint16" and dtype_for_vocab(65536) == "uint32"


def test_writer_and_loader_share_the_one_definition():
    assert forge.corpus.packing.FORMAT is FORMAT
    assert forge.corpus.packing.read_manifest is read_manifest is training.data.read_manifest


def test_older_manifest_without_lineage_reads_and_says_so(tmp_path):
    from contracts.packed import locate_token

    written = _write(tmp_path)
    for key in ("sampling", "sources", "lineage"):
        written.pop(key)
    (tmp_path / "manifest.json").write_text(json.dumps(written))
    manifest = read_manifest(tmp_path, verify=True)
    assert manifest.lineage == {} and manifest.sources == {} and manifest.sampling is None
    with pytest.raises(ValueError, match="no lineage index"):
        locate_token(tmp_path, 0, 0)
