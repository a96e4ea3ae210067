"""Packed-shard loader for continual pre-training (``contracts.packed``) and a resumable, rank-aware sampler.

Grain: a *window* is seq_len + 1 consecutive tokens of one shard; window i of a shard starts at token
i * seq_len, so consecutive windows overlap by one token and every token is a target exactly once.
Windows never cross shard boundaries (the tail of a shard shorter than a window is not used). The
last `holdout` windows of the whole stream are the eval slice and are never trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.packed import MANIFEST_NAME, read_manifest


class EpochSampler:
    """Deterministic shuffled order over `n_items` indices, one permutation per epoch, sharded by rank.

    Each call to `next_indices(batch_size)` consumes `batch_size * world_size` indices of the current
    permutation (the same on every rank) and returns this rank's `batch_size` of them. The position is
    plain data (`state()` / `load_state()`), so a resumed run sees exactly the batches it would have
    seen. An epoch ends when fewer than a global batch remain; the remainder is skipped (at most one
    global batch per epoch) and the next epoch starts with a new permutation.
    """

    def __init__(self, n_items: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n_items, self.seed, self.rank, self.world_size = n_items, seed, rank, world_size
        self.epoch, self.position = 0, 0
        self._perm: np.ndarray | None = None

    def _permutation(self) -> np.ndarray:
        if self._perm is None:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
        return self._perm

    def next_indices(self, batch_size: int) -> list[int]:
        global_batch = batch_size * self.world_size
        if global_batch > self.n_items:
            raise ValueError(
                f"only {self.n_items} training items, fewer than one global batch of {global_batch} "
                f"(micro_batch_size {batch_size} x world size {self.world_size}); add data or shrink the batch"
            )
        if self.position + global_batch > self.n_items:
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        chunk = self._permutation()[self.position : self.position + global_batch]
        self.position += global_batch
        return [int(i) for i in chunk[self.rank :: self.world_size]]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._perm = int(state["epoch"]), int(state["position"]), None


class PackedShards:
    """Memory-mapped windows over the shards of one manifest, split into train and held-out eval."""

    def __init__(self, shards_dir: str | Path, seq_len: int, holdout: int = 0) -> None:
        self.dir = Path(shards_dir)
        self.manifest = read_manifest(self.dir, require_shards=True)
        self.seq_len = seq_len
        dtype = np.dtype(self.manifest.dtype).newbyteorder("<")
        self._maps: list[np.memmap] = []
        starts: list[tuple[int, int]] = []  # (shard index, first token) of every window
        for i, shard in enumerate(self.manifest.shards):
            path = self.dir / shard["path"]
            if not path.is_file():
                raise FileNotFoundError(
                    f"packed shard listed in {self.dir / MANIFEST_NAME} not found: {path}"
                )
            size = path.stat().st_size
            expected = int(shard["n_tokens"]) * dtype.itemsize
            if size != expected:
                raise ValueError(
                    f"packed shard {path}: {size} bytes, manifest says {expected} ({shard['n_tokens']} tokens)"
                )
            self._maps.append(np.memmap(path, dtype=dtype, mode="r"))
            n_windows = (int(shard["n_tokens"]) - 1) // seq_len
            starts.extend((i, w * seq_len) for w in range(n_windows))
        if len(starts) <= holdout:
            raise ValueError(
                f"packed shards in {self.dir}: {len(starts)} windows of {seq_len + 1} tokens, need more than "
                f"the {holdout} held out for eval"
            )
        self._starts = starts
        self.n_train = len(starts) - holdout
        self.eval_indices = list(range(self.n_train, len(starts)))

    def window(self, index: int) -> np.ndarray:
        shard, start = self._starts[index]
        return np.asarray(self._maps[shard][start : start + self.seq_len + 1], dtype=np.int64)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """`input_ids` and next-token `labels`, both [len(indices), seq_len] int64."""
        rows = torch.from_numpy(np.stack([self.window(i) for i in indices]))
        return {"input_ids": rows[:, :-1].contiguous(), "labels": rows[:, 1:].contiguous()}


class PackedBatches:
    """Training batches: a PackedShards plus an EpochSampler over its training windows."""

    def __init__(self, shards: PackedShards, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.shards = shards
        self.sampler = EpochSampler(shards.n_train, seed, rank, world_size)
        self.rank, self.world_size = rank, world_size

    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        return self.shards.batch(self.sampler.next_indices(batch_size))

    def eval_batches(self, batch_size: int, max_batches: int) -> list[dict[str, torch.Tensor]]:
        """This rank's share of the held-out windows, in fixed order, as up to `max_batches` batches."""
        mine = self.shards.eval_indices[self.rank :: self.world_size]
        chunks = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)][:max_batches]
        return [self.shards.batch(c) for c in chunks]

    def state(self) -> dict[str, int]:
        return self.sampler.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state(state)
