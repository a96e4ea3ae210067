import pytest
import torch

from training.data import EpochSampler
from training.prefetch import Prefetcher


class Counting:
    """A BatchSource whose batches are the sampler's indices, so order and position are visible."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sampler, self.calls, self.fail_at = EpochSampler(50, seed=3), 0, fail_at

    def next_batch(self, n):
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("shard vanished")
        return {"input_ids": torch.tensor(self.sampler.next_indices(n))}

    def eval_batches(self, n, k):
        return [{"input_ids": torch.arange(n)}]

    def state(self):
        return self.sampler.state()

    def load_state(self, s):
        self.sampler.load_state(s)


def test_prefetched_batches_and_state_match_the_source():
    plain, pre = Counting(), Prefetcher(Counting(), batch_size=4, depth=3)
    for _ in range(5):
        assert torch.equal(pre.next_batch(4)["input_ids"], plain.next_batch(4)["input_ids"])
    assert pre.state() == plain.state() == {"epoch": 0, "position": 20}  # not the read-ahead position
    saved = pre.state()
    expected = [plain.next_batch(4)["input_ids"] for _ in range(3)]
    resumed = Prefetcher(Counting(), batch_size=4)
    resumed.load_state(saved)
    assert all(torch.equal(resumed.next_batch(4)["input_ids"], e) for e in expected)
    pre.close()
    resumed.close()
    assert pre.source.state() == saved  # closing rewinds the read-ahead
    with pytest.raises(ValueError, match="micro-batch 4"):
        resumed.next_batch(8)


def test_reader_errors_surface_in_the_caller():
    pre = Prefetcher(Counting(fail_at=3), batch_size=2)
    pre.next_batch(2), pre.next_batch(2)
    with pytest.raises(OSError, match="shard vanished"):
        pre.next_batch(2)
