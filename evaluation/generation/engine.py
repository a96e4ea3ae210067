"""Fast greedy generation for HF Llama-style causal LMs: static KV cache, continuous batching.

Why: ``model.generate`` on left-padded batches spends most of its time on Python/kernel-launch
overhead and on padding; an evaluation set of ~1,400 prompts x 64 tokens is launch-bound on a
GPU. This engine keeps the model's own modules (so numerics follow the model) and replaces only
the attention kernel and the cache:

* **Static KV cache** -- one preallocated ``[slots, kv_heads, max_len, head_dim]`` tensor pair per
  layer; a slot's token at position ``p`` lives at index ``p`` (no padding inside the cache).
* **Continuous batching** -- ``slots`` requests decode together; prompts wait in a queue sorted by
  length and a finished slot is refilled by prefilling the next prompts (left-padded, in groups
  bounded by ``prefill_tokens``).
* **Device-side stopping** -- stop tokens, stop token sequences and the token budget are checked
  in the step itself; the host reads the ``active`` flags only every ``sync_every`` steps (or when
  a budget is known to run out), so there is no per-step host sync.
* **CUDA graphs** -- on CUDA the decode step (forward, argmax, stop checks, state update) is
  captured once per attention-length bucket and replayed; if capture fails the engine logs why
  and runs the same step eagerly. CPU runs the same code path without graphs.

Greedy outputs equal ``model.generate(do_sample=False)``'s (exactly in fp32; bf16 rounding can
differ with batch composition). Grain of :meth:`Engine.generate_ids`: one list of generated token
ids per prompt, in input order, including the stop token that ended it (as ``generate`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evaluation.generation import kernels

log = logging.getLogger(__name__)

#: Model types whose decoder layers use full causal attention through ``ALL_ATTENTION_FUNCTIONS``.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


class EngineUnsupported(RuntimeError):
    """The model cannot run on the engine (callers fall back to ``model.generate``)."""


@dataclass(frozen=True)
class EngineConfig:
    """Engine knobs. ``slots``: concurrent sequences; ``sync_every``: decode steps between host
    reads of the finished flags; ``prefill_tokens``: padded tokens per prefill call;
    ``attend_bucket``: attention length is rounded up to this many positions (one CUDA graph per
    bucket); ``cuda_graphs``: capture the decode step on CUDA (ignored on CPU)."""

    slots: int = 64
    sync_every: int = 8
    prefill_tokens: int = 16384
    attend_bucket: int = 256
    cuda_graphs: bool = True


def check_supported(model: Any) -> None:
    """Raise :class:`EngineUnsupported` unless ``model`` is a decoder the engine handles exactly."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise EngineUnsupported(f"model_type {model_type!r} not in {SUPPORTED_MODEL_TYPES}")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        raise EngineUnsupported("sliding-window attention is not implemented by the engine")
    if getattr(config, "is_encoder_decoder", False):
        raise EngineUnsupported("encoder-decoder models are not supported")


class Engine:
    """Greedy continuous-batching generator bound to one model (see module docstring)."""

    def __init__(
        self,
        model: Any,
        stop_token_ids: Sequence[int],
        stop_sequences: Sequence[Sequence[int]] = (),
        config: EngineConfig | None = None,
    ) -> None:
        check_supported(model)
        self.model = model
        self.config = config or EngineConfig()
        if self.config.slots < 1 or self.config.sync_every < 1:
            raise ValueError("slots and sync_every must be >= 1")
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cfg = model.config
        self.n_layers = int(cfg.num_hidden_layers)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.stops = torch.tensor(sorted(set(int(t) for t in stop_token_ids)) or [-1], device=self.device)
        self.stop_seqs, self.stop_seq_pad = kernels.pack_sequences(stop_sequences, self.device)
        self.graphs_ok = self.config.cuda_graphs and self.device.type == "cuda"
        self.stats: dict[str, Any] = {}

    # ----------------------------------------------------------------------------- public API
    def generate_ids(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Generated token ids for each prompt (input order), at most ``max_new_tokens`` each."""
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if not prompts:
            return []
        if any(len(p) == 0 for p in prompts):
            raise ValueError("empty prompt: the engine needs at least one prompt token")
        max_len = max(len(p) for p in prompts) + max_new_tokens
        slots = min(self.config.slots, len(prompts))
        state = kernels.DecodeState.allocate(
            slots,
            max_len,
            max_new_tokens,
            self.n_layers,
            self.kv_heads,
            self.head_dim,
            self.dtype,
            self.device,
        )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), kernels.engine_attention(self.model, state):
                return self._run(state, [list(map(int, p)) for p in prompts], max_new_tokens)
        finally:
            self.model.train(was_training)

    # ---------------------------------------------------------------------------- scheduling
    def _run(self, state: kernels.DecodeState, prompts: list[list[int]], max_new: int) -> list[list[int]]:
        queue = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths prefill together
        queue.reverse()  # pop() from the end takes the shortest first
        outputs: list[list[int] | None] = [None] * len(prompts)
        owner = [-1] * state.slots  # prompt index per slot, -1 when free
        budget = [0] * state.slots  # decode steps until the token budget surely ends the slot
        end_pos = [0] * state.slots  # last cache position the slot can reach (host-side bound)
        steps = prefills = 0
        graphs: dict[int, Any] = {}
        while queue or any(o >= 0 for o in owner):
            free = [s for s in range(state.slots) if owner[s] < 0]
            if free and queue:
                admitted = self._admit(state, prompts, queue, free, max_new)
                prefills += len(admitted)
                for slot, index in admitted:
                    owner[slot], budget[slot] = index, max_new - 1
                    end_pos[slot] = len(prompts[index]) + max_new
            live = [s for s in range(state.slots) if owner[s] >= 0]
            n_steps = max(1, min([self.config.sync_every] + [budget[s] for s in live if budget[s] > 0]))
            if all(budget[s] <= 0 for s in live):
                n_steps = 0  # every live slot ended on its prefill token
            attend = kernels.round_up(max(end_pos[s] for s in live), self.config.attend_bucket, state.max_len)
            for _ in range(n_steps):
                self._step(state, attend, graphs)
            steps += n_steps
            for s in live:
                budget[s] -= n_steps
            active = state.active.tolist()  # the only host sync of the loop
            done = [s for s in live if not active[s]]
            if done:
                for slot, ids in zip(done, state.harvest(done), strict=True):
                    outputs[owner[slot]] = ids
                    owner[slot] = -1
        self.stats.update(decode_steps=steps, prefilled=prefills, graphs=len(graphs), slots=state.slots)
        return [o if o is not None else [] for o in outputs]

    def _admit(
        self,
        state: kernels.DecodeState,
        prompts: list[list[int]],
        queue: list[int],
        free: list[int],
        max_new: int,
    ) -> list[tuple[int, int]]:
        """Prefill the next prompts into ``free`` slots, in groups of at most ``prefill_tokens`` padded tokens."""
        admitted: list[tuple[int, int]] = []
        while free and queue:
            group: list[int] = []
            while len(group) < len(free) and queue:
                width = len(prompts[queue[-1]])  # queue is sorted: the newest member is the widest
                if group and width * (len(group) + 1) > self.config.prefill_tokens:
                    break
                group.append(queue.pop())
            slots = [free.pop(0) for _ in group]
            first = self._prefill(state, [prompts[i] for i in group], slots)
            state.start(
                slots,
                [len(prompts[i]) for i in group],
                first,
                self.stops,
                max_new,
                self.stop_seqs,
                self.stop_seq_pad,
            )
            admitted += list(zip(slots, group, strict=True))
        return admitted

    def _prefill(self, state: kernels.DecodeState, batch: list[list[int]], slots: list[int]) -> torch.Tensor:
        """Run the prompts (left-padded), write their K/V into ``slots``; return the first greedy tokens."""
        width = max(len(p) for p in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        lengths = torch.tensor([len(p) for p in batch])
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
        ids, lengths = ids.to(self.device), lengths.to(self.device)
        offsets = width - lengths  # left padding per row
        positions = (torch.arange(width, device=self.device)[None, :] - offsets[:, None]).clamp(min=0)
        state.mode = kernels.PrefillMode(torch.tensor(slots, device=self.device), offsets, width)
        mask = kernels.prefill_mask(offsets, width, self.dtype)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1
        )
        state.mode = None
        return out.logits[:, -1, :].argmax(dim=-1)

    # ------------------------------------------------------------------------------- decoding
    def _step(self, state: kernels.DecodeState, attend: int, graphs: dict[int, Any]) -> None:
        """One decode step for every slot, replayed from a CUDA graph when one could be captured.

        The first step of each attention bucket runs eagerly (on a side stream, as warm-up); the
        step is then captured -- capturing runs nothing -- and later steps replay the graph."""
        graph = graphs.get(attend)
        if graph is not None:
            graph.replay()
            return
        if not self.graphs_ok:
            self._decode(state, attend)
            return
        kernels.warm_up(lambda: self._decode(state, attend), self.device)
        try:
            graphs[attend] = kernels.capture(lambda: self._decode(state, attend), self.device)
        except Exception as exc:  # capture is an optimisation: the eager step computes the same
            log.warning("CUDA graph capture failed (%s: %s); decoding eagerly", type(exc).__name__, exc)
            self.graphs_ok = False
            self.stats["graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
            torch.cuda.synchronize(self.device)

    def _decode(self, state: kernels.DecodeState, attend: int) -> None:
        state.mode = kernels.DecodeMode(attend)
        mask = kernels.decode_mask(state.pos, attend, self.dtype)
        out = self.model(
            input_ids=state.tokens[:, None],
            attention_mask=mask,
            position_ids=state.pos[:, None],
            use_cache=False,
            logits_to_keep=1,
        )
        state.mode = None
        state.advance(out.logits[:, -1, :].argmax(dim=-1), self.stops, self.stop_seqs, self.stop_seq_pad)
