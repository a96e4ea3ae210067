"""Learnable synthetic tokens for a float8-vs-bf16 loss-parity check, and the curves' plot and summary.

Uniform random tokens cannot show loss parity (the loss stays at ln V whatever the numerics), so the
parity runs train on `MotifTokens`: a fixed-seed set of `n_motifs` random token motifs of `motif_len`
tokens over the first `alphabet` ids, concatenated in random order. Inside a motif the next token is
determined by the motif so far, so the entropy rate is at most ln(n_motifs) / motif_len nats per token
(0.39 for 512 motifs of 16) against ln V = 10.8 for uniform tokens: the loss falls far, and a numerics
difference between two runs shows in the curve.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch


class TokenRows:
    """A BatchSource (training.loop) of synthetic rows: ``rows(n)`` gives ``n`` rows of ``seq_len + 1``
    tokens, cut here into inputs and next-token labels; no evaluation batches, no state to resume."""

    seq_len: int

    def rows(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def next_batch(self, n: int) -> dict[str, torch.Tensor]:
        rows = self.rows(n)
        return {"input_ids": rows[:, :-1].contiguous(), "labels": rows[:, 1:].contiguous()}

    def eval_batches(self, n: int, max_batches: int) -> list[dict[str, torch.Tensor]]:
        return []

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class MotifTokens(TokenRows):
    """Concatenated random motifs; the same seed gives the same stream."""

    def __init__(
        self, seq_len: int, seed: int = 0, n_motifs: int = 512, motif_len: int = 16, alphabet: int = 8192
    ) -> None:
        self.seq_len, self.motif_len = seq_len, motif_len
        g = torch.Generator().manual_seed(seed)
        self.motifs = torch.randint(0, alphabet, (n_motifs, motif_len), generator=g)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def entropy_bound_nats(self) -> float:
        """Upper bound of the stream's entropy rate (nats/token): one motif choice per motif_len tokens."""
        return math.log(self.motifs.shape[0]) / self.motif_len

    def stream(self, n_tokens: int) -> torch.Tensor:
        """`n_tokens` tokens of the stream, continuing where the last call stopped (whole motifs drawn)."""
        n = -(-n_tokens // self.motif_len)
        picks = torch.randint(0, self.motifs.shape[0], (n,), generator=self.gen)
        return self.motifs[picks].reshape(-1)[:n_tokens]

    def rows(self, n: int) -> torch.Tensor:
        return self.stream(n * (self.seq_len + 1)).view(n, self.seq_len + 1)


def conditional_entropy_nats(tokens: torch.Tensor, order: int = 2) -> float:
    """Plug-in estimate of H(next token | previous `order` tokens) in nats, from one token stream (biased
    low for contexts seen rarely; use a sample much longer than the number of distinct contexts)."""
    seq = tokens.tolist()
    ctx: Counter = Counter()
    joint: Counter = Counter()
    for i in range(order, len(seq)):
        c = tuple(seq[i - order : i])
        ctx[c] += 1
        joint[(c, seq[i])] += 1
    n = sum(joint.values())
    return -sum(k / n * math.log(k / ctx[c]) for (c, _), k in joint.items())


def relative_difference(a: list[float], b: list[float], tail: int = 10) -> dict[str, float]:
    """|b - a| / a on the last value and on the mean of the last `tail` values of two loss curves."""
    ta, tb = sum(a[-tail:]) / len(a[-tail:]), sum(b[-tail:]) / len(b[-tail:])
    return {"final": abs(b[-1] - a[-1]) / a[-1], "tail_mean": abs(tb - ta) / ta, "tail": tail}


def write_parity(
    out_base: str | Path, curves: dict[str, dict[int, float]], meta: dict[str, Any]
) -> dict[str, Any]:
    """Write `<out_base>.json` (both curves, the relative differences, `meta`) and `<out_base>.png` (the
    curves; skipped without matplotlib). `curves` maps a run name to {step: loss}; the first is the
    reference."""
    names = list(curves)
    ref, other = ([curves[n][s] for s in sorted(curves[n])] for n in names[:2])
    result = {**meta, "curves": {n: {str(s): v for s, v in sorted(c.items())} for n, c in curves.items()}}
    result["relative_difference"] = relative_difference(ref, other)
    result["within_1pct"] = result["relative_difference"]["tail_mean"] <= 0.01
    base = Path(out_base)
    base.with_suffix(".json").write_text(json.dumps(result, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return result
    fig, ax = plt.subplots(figsize=(7, 4))
    for n, c in curves.items():
        steps = sorted(c)
        ax.plot(steps, [c[s] for s in steps], label=n, linewidth=1)
    d = result["relative_difference"]
    ax.set(xlabel="step", ylabel="training loss (nats)", yscale="log",
           title=f"{meta.get('title', 'float8 vs bf16')}: final rel. diff {d['final']:.2%}, "
                 f"last-{d['tail']} mean {d['tail_mean']:.2%}")  # fmt: skip
    ax.axhline(
        meta.get("entropy_bound_nats", float("nan")), color="grey", linestyle=":", label="entropy bound"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(base.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return result
