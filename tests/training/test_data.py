import json

import numpy as np
import pytest

from training.data import EpochSampler, PackedBatches, PackedShards


def _shards(tmp_path, n_tokens=(101, 50), dtype="uint16"):
    shards = []
    start = 0
    for i, n in enumerate(n_tokens):
        np.arange(start, start + n, dtype=np.dtype(dtype).newbyteorder("<")).tofile(tmp_path / f"s{i}.bin")
        shards.append({"path": f"s{i}.bin", "n_tokens": n, "sha256": ""})
        start += n
    manifest = {"format": "hephaestus-packed-v1", "dtype": dtype, "eos_id": 0, "vocab_size": 70000,
                "tokenizer_dir": "", "n_tokens": start, "n_documents": 1, "shards": shards}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_windows_shift_by_one_and_stay_inside_shards(tmp_path, dtype):
    ds = PackedShards(_shards(tmp_path, dtype=dtype), seq_len=10, holdout=2)
    # shard 0: 101 tokens -> 10 windows; shard 1: 50 tokens -> 4 windows; 2 held out
    assert ds.n_train == 12 and ds.eval_indices == [12, 13]
    b = ds.batch([0, 9, 10])
    assert b["input_ids"].shape == (3, 10) and b["input_ids"].dtype.is_floating_point is False
    assert b["input_ids"][0].tolist() == list(range(0, 10)) and b["labels"][0].tolist() == list(range(1, 11))
    assert b["labels"][1].tolist()[-1] == 100  # last window of shard 0 ends at its last token
    assert b["input_ids"][2].tolist()[0] == 101  # next window starts in shard 1, not across the boundary


def test_sampler_is_deterministic_and_resumable():
    a = EpochSampler(20, seed=3)
    seq = [a.next_indices(4) for _ in range(12)]  # crosses two epoch boundaries
    assert sorted(i for batch in seq[:5] for i in batch) == list(range(20))
    b = EpochSampler(20, seed=3)
    for _ in range(7):
        b.next_indices(4)
    state = b.state()
    assert state == {"epoch": 1, "position": 8}
    c = EpochSampler(20, seed=3)
    c.load_state(state)
    assert [c.next_indices(4) for _ in range(5)] == seq[7:]
    assert seq[:5] != seq[5:10]  # a new permutation per epoch


def test_sampler_shards_global_batch_by_rank():
    ranks = [EpochSampler(16, seed=1, rank=r, world_size=2) for r in range(2)]
    single = EpochSampler(16, seed=1)
    for _ in range(3):
        got = [s.next_indices(2) for s in ranks]
        assert not set(got[0]) & set(got[1])
        assert sorted(got[0] + got[1]) == sorted(single.next_indices(4))


def test_too_little_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fewer than one global batch"):
        EpochSampler(3, seed=0).next_indices(4)
    with pytest.raises(ValueError, match="need more than the 20 held out"):
        PackedShards(_shards(tmp_path), seq_len=10, holdout=20)


def test_eval_batches_are_heldout_and_fixed(tmp_path):
    data = PackedBatches(PackedShards(_shards(tmp_path), seq_len=10, holdout=2), seed=0)
    ev = data.eval_batches(batch_size=4, max_batches=5)
    assert len(ev) == 1 and ev[0]["input_ids"][:, 0].tolist() == [121, 131]
    seen = {int(data.next_batch(4)["input_ids"][i, 0]) for _ in range(6) for i in range(4)}
    assert not seen & {121, 131}


def test_missing_manifest_and_shard_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "manifest.json")):
        PackedShards(tmp_path, seq_len=8)
    _shards(tmp_path)
    (tmp_path / "s1.bin").unlink()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "s1.bin")):
        PackedShards(tmp_path, seq_len=8)


def test_truncated_shard_and_wrong_format_are_errors(tmp_path):
    _shards(tmp_path)
    with open(tmp_path / "s0.bin", "r+b") as f:
        f.truncate(20)
    with pytest.raises(ValueError, match="s0.bin: 20 bytes, manifest says 202"):
        PackedShards(tmp_path, seq_len=8)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["format"] = "other"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="expected 'hephaestus-packed-v1'"):
        PackedShards(tmp_path, seq_len=8)
