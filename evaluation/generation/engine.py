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
  captured once per attention-length bucket (``varlen`` decode: once per cache size, as it reads
  each slot's own length) and replayed (``totals["graph_captures"]``, their host time in
  ``totals["graph_capture_ms"]``); if capture fails the engine logs why
  and runs the same step eagerly. CPU runs the same code path without graphs.
* **KV reuse across calls (keyed requests)** -- with ``keys`` (e.g. a conversation id per prompt)
  the cache persists between calls: a key keeps its slot and the slot its K/V, and the next prompt
  of that key prefills only what its token ids do not share with what the slot holds; a new key
  copies the longest shared prefix another slot holds (same tools, same system prompt). The
  bookkeeping is :mod:`evaluation.generation.prefix_cache`; the prefill of the rest is
  :class:`kernels.ExtendMode`. The decode step is the same.

Greedy outputs equal ``model.generate(do_sample=False)``'s (exactly in fp32; bf16 rounding can
differ with batch composition, and, with keys, with what was reused). Grain of :meth:`Engine.generate_ids`: one list of generated token
ids per prompt, in input order, including the stop token that ended it (as ``generate`` does).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import torch
from torch.profiler import record_function

from evaluation.generation import grouped, kernels
from evaluation.generation.prefix_cache import BLOCK, Plan, SlotTable, common_prefix, shared_tokens

log = logging.getLogger(__name__)

#: Model types whose decoder layers use full causal attention through ``ALL_ATTENTION_FUNCTIONS``.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")

#: :meth:`Engine.generate_ids`'s ``feed``: the (key, generated ids) of prompts that finished in, the
#: (key, prompt ids) to admit next out
Feed = Callable[[list[tuple[Hashable, list[int]]]], Sequence[tuple[Hashable, Sequence[int]]]]


class EngineUnsupported(RuntimeError):
    """The model cannot run on the engine (callers fall back to ``model.generate``)."""


@dataclass(frozen=True)
class EngineConfig:
    """Engine knobs. ``slots``: concurrent sequences; ``sync_every``: decode steps between host
    reads of the finished flags; ``prefill_tokens``: padded tokens per prefill call;
    ``attend_bucket``: attention length is rounded up to this many positions (one CUDA graph per
    bucket); ``cuda_graphs``: capture the decode step on CUDA (ignored on CPU);
    ``decode_attention``: the decode step's attention kernel, one of :data:`kernels.DECODE_KERNELS`,
    or ``auto`` (the default): for a bf16/fp16 model on an sm_90 GPU (H100/H200) ``grouped``
    (:mod:`evaluation.generation.grouped`: every prefix several slots hold read once per step for all of
    them, at every depth it is shared; Triton), on other GPUs ``flex`` where Triton is installed
    (FlexAttention's compiled decoding kernel, :func:`kernels.decode_flex`), else ``varlen``; ``sdpa``
    elsewhere. On an H200 over BFCL's 800 multi-turn conversations grouped took 34.0 and 32.0 s against
    flex's 37.0 and 36.3 s in two runs (single-turn 5.6 vs 6.0 and 5.2 vs 5.5 s); over BFCL's real decode
    batches its step ties flex at flex's best (``bench/results/2026-12-03_grouped_decode_h200.txt``).
    Earlier, over the same conversations: flex 40.6 s, varlen
    47.8 s (both with varlen prefill; ``bench/results/2026-12-03_bfcl_multi_turn_flex_h200.txt``); flex
    with shared reads (``shared_reads``) and packed prefill 29-35 s over three runs;
    varlen was 0.98-1.52x sdpa per step (``bench/decode_attention.py``). ``cascade`` (keyed requests;
    elsewhere it is ``varlen``): slots whose caches hold the same first tokens (the same tools and
    system prompt) read that prefix once per group, from one member's cache, and each its own rest
    (:func:`kernels.decode_cascade`); over BFCL's multi-turn rounds that is 0.39x the positions varlen
    reads, but on the H200 it was no faster than varlen (its group calls are few long sequences):
    opt-in.

    ``prefill_attention`` (keyed requests, whose prefill attends what the slot already holds):
    ``sdpa`` gathers the rows' cached K/V and attends under a mask; ``varlen`` reads the cache in
    place with the flash kernel's variable-length form (:func:`kernels.extend_varlen`; bf16/fp16 on
    CUDA, its reference elsewhere); ``packed``: ``varlen`` with the rows' new tokens packed into one
    sequence, so the forward computes no padding (BFCL multi-turn rounds padded to 1.77x their new tokens
    on the CPU bench) and groups are bounded by real tokens (:meth:`Engine._prefill_packed`); ``auto``
    (the default): ``packed`` for a bf16/fp16 model on CUDA, ``sdpa`` elsewhere. On an H200, BFCL's 800
    multi-turn conversations with flex decode: 29.0 s packed vs 34.7 s varlen, one run
    (``bench/results/2026-12-03_bfcl_multi_turn_packed_h200.txt``); varlen vs sdpa: 14.3 s vs 17.5 s
    for 200 of them.

    Keyed requests only: ``max_len``: cache positions per slot at most (the cache grows to what the
    prompts need, up to this and the model's ``max_position_embeddings``; a longer request is
    refused); ``share_min_tokens``: a prefix shared with another slot is copied when at least this
    many tokens match (else recomputed); ``prefill_keys`` (``sdpa`` prefill, which gathers the
    rows' cached K/V; ``varlen`` reads it in place): rows x attended cache positions per
    prefill call (bounds the K/V read at once); ``feed_chunk``: finished prompts handed to
    ``generate_ids``'s ``feed`` at a time (the GPU prefills what one chunk returned while the host
    works on the next; over BFCL's 800 conversations on an H200, chunks of 32, 64 and 128 took 1.17x,
    1.04x and 0.97x the rounds' time: smaller chunks mean more, smaller prefills and less reuse);
    ``feed_overlap``: ``feed`` runs in a worker thread while the other slots go on decoding (see
    ``Engine.generate_ids``; there 1.06x the rounds' time, the host's work hidden but the halves of
    the window decoding apart part of the time:
    ``bench/results/2026-12-04_bfcl_multi_turn_fed_overlap_h200.txt``); ``prefill_ramp``: a keyed
    admission's first prefill group takes at most this many new tokens, each next one twice as many up
    to ``prefill_tokens`` (0, the default: every group up to ``prefill_tokens``) -- the GPU waits for the
    first group's host planning only, and later groups are planned while the previous ones prefill (the
    first plan of each of BFCL's 14 rounds kept an H200 idle ~36 ms). Off by default: not yet measured
    on a GPU (``bench/multi_turn_device.sh ramp``); ``shared_reads`` (``flex`` decode): slots whose caches hold the same first
    tokens read that prefix's whole blocks from one member's cache, side by side, so it comes from
    HBM once per group and step (:func:`kernels.decode_flex`); off: each slot reads its own copy;
    ``flex_split``: CTAs per (slot, K/V head) of the flex decoding kernel (:func:`kernels.flex_plan`);
    0 (the default): 4 when the step reads shared prefixes, else PyTorch's default (1 for 256 slots).
    On an H200, one step's attention over a BFCL-like batch (``bench/flex_decode.py``): shared reads
    with 4 CTAs 0.83 ms, with PyTorch's 1.14 ms, each slot its own copy 1.12-1.14 ms, varlen 1.59 ms.
    ``flex_rows`` > 1: that many slots' queries share a row of the flex kernel
    (:func:`kernels.packed_flex_plan`), so a block any of them reads -- a group's shared prefix above all
    -- comes from HBM once per row rather than once per slot; with ``flex_split`` 0 the row is split
    over :data:`kernels.FLEX_PACKED_SPLIT` CTAs. Off by default: on an H200, 4 slots a row took 0.76 ms
    for the step above (1.14x) but the 800 conversations the same 33 s; 8 and 16 a row were slower (the
    tile computes every listed block for all its slots: 1.1 and 2.1 ms;
    ``bench/results/2026-12-03_bfcl_multi_turn_packed_rows_h200.txt``). ``share_blocks`` (``flex``):
    every whole block that several decoding slots hold is read from the first of them in sorted order
    (:meth:`kernels.CascadeGroups.fill_blocks`), at every depth a prefix is shared -- BFCL's rounds share
    tools among many conversations and first turns among pairs, and the groups above keep only one depth
    per slot: over BFCL's 17 rounds the distinct whole blocks are 0.22x the positions the slots hold,
    against 0.39x with the groups (CPU, ``--host-only``). Off by default: on an H200 BFCL's 17 real decode
    batches took 12.64 ms vs 12.49 ms with the groups (``bench/flex_decode.py --batches``), the 800
    conversations 31.0 vs 32.1 s, both within noise. ``flex_options``: the flex decoding kernel's Triton
    options (``BLOCK_N``, ``num_stages``, ``num_warps``; empty: PyTorch's choice; ``None``, the default:
    :data:`kernels.FLEX_DECODE_OPTIONS` -- three stages, 1.22x on those batches -- on sm_90, where they
    were measured, PyTorch's elsewhere: a GPU with less shared memory per block may not fit three stages); the packed layout (``flex_rows`` > 1) takes
    PyTorch's. ``flex_cascade`` > 0 (``flex``, keyed, with ``shared_reads``' groups): cascade attention in
    two flex calls (:func:`kernels.cascade_flex_plan`): each group's whole shared blocks once, with up to
    this many members' queries in one kernel row (the blocks' scores computed once for all of them, as one
    tile), then each slot's own blocks, merged by their log-sum-exps -- the shared prefix is read and
    scored once per row rather than once per member. Off by default: slower on an H200 though it reads 0.49x
    the positions -- BFCL's 17 real decode batches 22.1-25.2 ms (4 layouts) vs 13.8 ms with the shared reads,
    the 800 conversations 35.0 vs 33.2 s (``bench/results/2026-12-03_bfcl_multi_turn_cascade_compiled_h200.txt``).

    ``compile_layers``: the decode step runs each decoder layer ``torch.compile``-d
    (:func:`kernels.compiled_layers`; the attention stays the engine's, behind a graph break), so
    inductor fuses the layer's small ops -- norms, rotary, SwiGLU's product, residual adds -- that
    otherwise run as ~20 kernels a layer around the matmuls. The first step compiles (once per layer and
    decode batch shape). Rounding is eager's (:func:`kernels.layer_options`; on the CPU the bf16 tokens are then
    eager's, on an H200 they still differed). Off by default: no faster on an H200 -- the 800 conversations
    32.0 vs 32.1 s and 33.6 vs 32.6 s in two runs (31.2 vs 33.2 s in an earlier one without eager's rounding),
    and the first pass pays ~2.5 s of compiles
    (``bench/results/2026-12-03_bfcl_multi_turn_cascade_compiled_h200.txt``).

    ``max_cache_bytes``: the K/V cache (all slots, layers, keys and values) takes at most this many bytes;
    ``None``, the default: on CUDA, :data:`CACHE_MEMORY_FRACTION` of the memory it could have when it is
    allocated or grown (the device's free memory, the allocator's unused reserve, and the cache's own),
    elsewhere no bound. A call whose slots at the length its prompts need would pass it runs with fewer
    slots (keyed: the slots past them are dropped, their keys prefilled afresh next time; more prompts
    than slots are served in turn, as always), and a call that cannot fit one slot is refused before
    anything runs: the alternative was a CUDA out-of-memory error halfway (a well-answering model's BFCL
    conversations reach ~13k tokens: 256 slots of a Llama-3.2-1B's cache would need ~110 GB)."""

    slots: int = 64
    sync_every: int = 8
    prefill_tokens: int = 16384
    prefill_ramp: int = 0
    attend_bucket: int = 256
    cuda_graphs: bool = True
    decode_attention: str = "auto"
    max_len: int = 32768
    share_min_tokens: int = 64
    prefill_keys: int = 262144
    prefill_attention: str = "auto"
    feed_chunk: int = 128
    shared_reads: bool = True
    flex_split: int = 0
    flex_rows: int = 1
    share_blocks: bool = False
    flex_options: tuple[tuple[str, int], ...] | None = None
    flex_cascade: int = 0
    compile_layers: bool = False
    max_cache_bytes: int | None = None
    feed_overlap: bool = False


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


#: the share of the memory it could have that the K/V cache takes at most on CUDA (the rest: activations,
#: the decode step's graphs, the allocator's fragments); see ``EngineConfig.max_cache_bytes``
CACHE_MEMORY_FRACTION = 0.9


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


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
        if min(self.config.slots, self.config.sync_every, self.config.feed_chunk, self.config.flex_rows) < 1:
            raise ValueError("slots, sync_every, feed_chunk and flex_rows must be >= 1")
        if self.config.decode_attention not in ("auto", *kernels.DECODE_KERNELS):
            raise ValueError(
                f"decode_attention {self.config.decode_attention!r} is not 'auto' or one of "
                f"{kernels.DECODE_KERNELS}"
            )
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cfg = model.config
        self.n_layers = int(cfg.num_hidden_layers)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.stops = torch.tensor(sorted(set(int(t) for t in stop_token_ids)) or [-1], device=self.device)
        self.stop_seqs, self.stop_seq_pad = kernels.pack_sequences(stop_sequences, self.device)
        self.graphs_ok = self.config.cuda_graphs and self.device.type == "cuda"
        #: the decode kernel used: ``varlen`` needs the flash kernel's dtypes on CUDA (elsewhere its
        #: reference runs: CPU tests); a CUDA model in fp32 decodes with ``sdpa`` instead, said here
        flash = self.device.type == "cuda" and self.dtype in (torch.bfloat16, torch.float16)
        self.decode_attention = self.config.decode_attention
        if self.decode_attention == "auto":  # Triton kernels; fp32 keeps sdpa (exact vs generate)
            hopper = self.device.type == "cuda" and torch.cuda.get_device_capability(self.device) == (9, 0)
            if not flash:
                self.decode_attention = "sdpa"
            elif hopper and grouped.available(self.device, self.head_dim):
                self.decode_attention = "grouped"  # where it was measured
            else:
                self.decode_attention = "flex" if find_spec("triton") else "varlen"
        elif (
            self.decode_attention == "grouped"
            and self.device.type == "cuda"
            and not (flash and grouped.available(self.device, self.head_dim))
        ):
            log.warning(
                "decode_attention 'grouped' needs Triton, bf16/fp16 and a power-of-two head dim on CUDA: using %r",
                "varlen" if flash else "sdpa",
            )
            self.decode_attention = "varlen" if flash else "sdpa"
        elif self.decode_attention in ("varlen", "cascade") and self.device.type == "cuda" and not flash:
            log.warning(
                "decode_attention %r needs bf16/fp16 on CUDA, not %s: using 'sdpa'",
                self.decode_attention,
                self.dtype,
            )
            self.decode_attention = "sdpa"
        #: the keyed prefill's attention kernel (``EngineConfig.prefill_attention``), on the same terms
        if self.config.prefill_attention not in ("auto", "sdpa", "varlen", "packed"):
            raise ValueError(
                f"prefill_attention {self.config.prefill_attention!r} is not 'auto', 'sdpa', 'varlen' or 'packed'"
            )
        #: the flex decoding kernel's Triton options (``EngineConfig.flex_options`` resolved)
        self.flex_options = self.config.flex_options
        if self.flex_options is None:
            hopper = self.device.type == "cuda" and torch.cuda.get_device_capability(self.device) == (9, 0)
            self.flex_options = kernels.FLEX_DECODE_OPTIONS if hopper else ()
        self.prefill_attention = self.config.prefill_attention
        if self.prefill_attention == "auto":
            self.prefill_attention = "packed" if flash else "sdpa"
        if self.prefill_attention in ("varlen", "packed") and self.device.type == "cuda" and not flash:
            log.warning(
                "prefill_attention %r needs bf16/fp16 on CUDA, not %s: using 'sdpa'",
                self.prefill_attention,
                self.dtype,
            )
            self.prefill_attention = "sdpa"
        #: the last call's counts: ``prefilled`` requests, ``prefilled_tokens`` computed by prefills,
        #: ``reused_tokens`` already in the request's slot, ``copied_tokens`` copied from another
        #: slot, ``evictions`` (keys that lost their slot), decode steps, graphs, slots
        self.stats: dict[str, Any] = {}
        #: the token counts and evictions summed over every call of this engine
        self.totals: Counter[str] = Counter()
        self.table: SlotTable | None = None  # keyed requests: what each slot holds
        self._keyed: kernels.DecodeState | None = None  # keyed requests: the cache kept between calls
        self._keyed_graphs: dict[
            tuple[int, int, int], Any
        ] = {}  # decode graphs per (bucket, slot range), until a resize
        #: ``cascade`` decode (keyed): the shared-prefix groups per slot range, until a resize
        self._cascade: dict[tuple[int, int], kernels.CascadeGroups | grouped.SegmentTables] = {}
        #: ``compile_layers``: each decoder layer's compiled forward, made on the first decode step
        self._compiled: list[Any] = []

    # ----------------------------------------------------------------------------- public API
    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        keys: Sequence[Hashable] | None = None,
        slot_range: range | None = None,
        feed: Feed | None = None,
        on_decode: Callable[[], None] | None = None,
    ) -> list[list[int]]:
        """Generated token ids for each prompt (input order), at most ``max_new_tokens`` each.

        ``keys`` (one per prompt, distinct): the cache is kept after the call and a later prompt
        with the same key reuses what its slot holds (see the module docstring); without keys each
        call starts from an empty cache. ``slot_range`` (keyed calls; within ``config.slots``): the
        call's prompts take slots in this range only, and its decode steps compute these slots only,
        so calls on disjoint ranges (lanes, :func:`evaluation.bfcl.multi_turn.run_conversations`)
        leave each other's slots alone and cost what their own slots cost (a key keeps to one range;
        shared prefixes are still copied from any slot). A keyed prompt that does not fit a slot's
        cache with its ``max_new_tokens`` raises ``ValueError`` before anything runs (never truncated).

        ``feed`` (keyed calls, all slots): the call goes on with the prompts ``feed`` returns. Each time
        prompts finish, ``feed([(key, ids), ...])`` is called with them, ``config.feed_chunk`` at a
        time, each chunk's returned prompts admitted (their prefill queued on the GPU) before the next
        chunk is fed -- so the host's work there (a conversation's next turn: executing its calls,
        rendering and tokenizing its next prompt) runs while the GPU prefills the last chunk's -- and
        returns ``[(key, prompt), ...]`` to admit (a key finished, or a new one; keys being fed are
        not evicted meanwhile); the call has all of ``config.slots`` (within the cache budget) for the
        keys ``feed`` brings, and the cache grows if a fed prompt needs it. The call returns when no
        prompt is left and ``feed`` returned none; every prompt's ids, fed ones included, go to
        ``feed`` once.

        With ``config.feed_overlap``, ``feed`` runs in a worker thread while the slots still generating
        go on decoding: all prompts finished since the last call go to it at once, its prompts are
        admitted at the next host sync after it returns, and prompts finishing meanwhile wait for the
        next call. While slots are free and nothing is queued, ``feed([])`` is called too (it may return
        new keys; once it returns none it is not asked again): so a caller that starts with half its
        conversations has the other half prepared while the first half decodes, and the halves then
        take turns, one decoding while the host answers the other. ``feed`` must not use the model or
        the engine; the decode loop's host syncs release the GIL, and the interpreter's switch interval
        is 1 ms during the call (the loop takes the GIL back sooner from a busy ``feed``).

        ``on_decode`` is called once, as soon as the call's first decode steps are queued on the GPU
        (after the first admissions' host work: ordering, planning, prefill launches): the moment for a
        caller to start host work of its own in another thread (the next round's first prompts,
        :meth:`evaluation.bfcl.multi_turn._Rounds.prefetch_soon`), which would otherwise compete for the
        GIL with the admissions while the GPU waits on them."""
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if not prompts:
            return []
        if any(len(p) == 0 for p in prompts):
            raise ValueError("empty prompt: the engine needs at least one prompt token")
        # token id lists (a tokenizer's) copied as they are; other sequences (tensors, arrays) made
        # lists of ints: ``map(int, ...)`` over BFCL's 3,336 multi-turn prompts was ~0.5 s of host time
        ids = [p.copy() if type(p) is list else list(map(int, p)) for p in prompts]
        if keys is None:
            length = self._cache_positions(max(len(p) for p in prompts) + max_new_tokens)
            state = kernels.DecodeState.allocate(
                self._fit_slots(min(self.config.slots, len(prompts)), length, 1, None),
                length,
                max_new_tokens,
                self.n_layers,
                self.kv_heads,
                self.head_dim,
                self.dtype,
                self.device,
            )
        else:
            keys = list(keys)
            if len(keys) != len(ids) or len(set(keys)) != len(keys):
                raise ValueError("keys must be one per prompt, all distinct")
            if slot_range is not None and not (
                0 <= slot_range.start < slot_range.stop <= self.config.slots and slot_range.step == 1
            ):
                raise ValueError(
                    f"slot_range {slot_range} is not a range of slots within 0..{self.config.slots}"
                )
            held = self.table.slot_of if self.table is not None and slot_range is not None else {}
            outside = [k for k in keys if k in held and held[k] not in slot_range]
            if outside:
                raise ValueError(
                    f"key {outside[0]!r} holds slot {held[outside[0]]}, outside slot_range {slot_range}"
                )
            if feed is not None and slot_range is not None:
                raise ValueError("feed takes all the slots: no slot_range")
            with record_function("engine.cache"):  # sized (grown) for the call's prompts
                state = self._keyed_state(ids, keys, max_new_tokens, slot_range, fed=feed is not None)
        if feed is not None and keys is None:
            raise ValueError("feed needs keyed prompts")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), kernels.engine_attention(self.model, state):
                return self._run(
                    state, ids, max_new_tokens, keys, slot_range or range(state.slots), feed, on_decode
                )
        except BaseException:
            if keys is not None:  # the table may name K/V that was never written: start over
                self.reset()
            raise
        finally:
            self.model.train(was_training)

    @property
    def max_cache_len(self) -> int:
        """Cache positions a keyed slot can reach: ``config.max_len``, bounded by the model's positions."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return min(self.config.max_len, limit) if isinstance(limit, int) else self.config.max_len

    def _cache_positions(self, n: int) -> int:
        """Positions to allocate per slot for ``n`` needed: ``flex`` decodes whole blocks of the cache, so
        its length is a multiple of :data:`kernels.FLEX_BLOCK` (positions past ``n`` are never read)."""
        return -(-n // kernels.FLEX_BLOCK) * kernels.FLEX_BLOCK if self.decode_attention == "flex" else n

    def reset(self) -> None:
        """Drop the keyed cache (its memory too); the next keyed call prefills everything."""
        self._keyed, self.table, self._keyed_graphs, self._cascade = None, None, {}, {}

    def _keyed_state(
        self,
        prompts: list[list[int]],
        keys: list[Hashable],
        max_new: int,
        slot_range: range | None = None,
        fed: bool = False,
    ) -> kernels.DecodeState:
        """The persistent cache, allocated or grown to fit the call: as many slots as keys (up to
        ``config.slots``; all of them for a ``fed`` call, whose feed may bring more keys), as many
        positions as the longest prompt needs; x1.5 at least when it grows, so it seldom regrows."""
        cap = self.max_cache_len
        for i, prompt in enumerate(prompts):
            if len(prompt) + max_new > cap:
                raise ValueError(
                    f"prompt {i}: {len(prompt)} tokens + {max_new} new exceed the {cap} cache positions "
                    "of a slot (EngineConfig.max_len, max_position_embeddings); refused, not truncated"
                )
        need = self._cache_positions(
            kernels.round_up(max(len(p) for p in prompts) + max_new, self.config.attend_bucket, cap)
        )
        state, table = self._keyed, self.table
        least = slot_range.stop if slot_range is not None else 0
        if state is None or table is None:
            wanted = self.config.slots if fed else min(self.config.slots, len(keys))
            slots = self._fit_slots(max(least, wanted), need, least, None)
            state = kernels.DecodeState.allocate(
                slots, need, max_new, self.n_layers, self.kv_heads, self.head_dim, self.dtype, self.device
            )
            self._keyed, self.table = state, SlotTable(slots, self.config.share_min_tokens)
            return state
        slots, length = state.slots, state.max_len
        wanted = self.config.slots if fed else min(self.config.slots, len(table.slot_of.keys() | set(keys)))
        if wanted > slots:
            slots = min(self.config.slots, max(wanted, slots * 2))
        slots = max(slots, least)
        if need > length:
            grown = kernels.round_up(max(need, length * 3 // 2), self.config.attend_bucket, cap)
            length = self._cache_positions(grown)
            fit = self._slots_within(length, state)[0]
            if fit is not None and fit < slots:  # no headroom past the budget: the length needed only
                length = max(need, state.max_len)
        slots = self._fit_slots(slots, length, least, state)
        if (slots, length, max_new) != (state.slots, state.max_len, state.max_new):
            start = time.perf_counter()
            if slots < state.slots:  # the budget holds fewer slots of this length: drop the last ones
                state.shrink_slots(slots)
                table.shrink(slots)
                self.totals["cache_shrinks"] += 1
            state.resize(slots, length, max_new)
            self.totals["cache_resizes"] += 1
            self.totals["cache_resize_ms"] += round((time.perf_counter() - start) * 1e3)
            table.grow(state.slots)
            self._keyed_graphs, self._cascade = {}, {}  # captured with the old tensors and sizes
        return state

    def max_slot_positions(self) -> int:
        """Cache positions one slot can have: :attr:`max_cache_len`, and within the cache budget (see
        ``EngineConfig.max_cache_bytes``) as things stand now."""
        fit = self._slots_within(1, self._keyed)[0]  # positions of one slot within the budget
        if fit is None:
            return self.max_cache_len
        if self.decode_attention == "flex":
            fit = fit // kernels.FLEX_BLOCK * kernels.FLEX_BLOCK
        return min(self.max_cache_len, fit)

    def _cache_budget(self, state: kernels.DecodeState | None) -> int | None:
        """Bytes the K/V cache may take (``EngineConfig.max_cache_bytes``; see there)."""
        if self.config.max_cache_bytes is not None:
            return self.config.max_cache_bytes
        if self.device.type != "cuda":
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        unused = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        held = state.nbytes() if state is not None else 0
        return int((free + unused + held) * CACHE_MEMORY_FRACTION)

    def _slots_within(self, length: int, state: kernels.DecodeState | None) -> tuple[int | None, int, int]:
        """``(slots, bytes per slot, budget)``: how many slots of ``length`` positions the cache budget
        holds (``None``: no budget)."""
        budget = self._cache_budget(state)
        per_slot = length * self.n_layers * 2 * self.kv_heads * self.head_dim * _element_size(self.dtype)
        return (None if budget is None else budget // per_slot), per_slot, budget or 0

    def _fit_slots(self, slots: int, length: int, least: int, state: kernels.DecodeState | None) -> int:
        """``slots``, or as many slots of ``length`` positions as the cache budget holds (at least
        ``least`` and 1: else ``ValueError``, before anything runs)."""
        fit, per_slot, budget = self._slots_within(length, state)
        if fit is None or slots <= fit:
            return slots
        if fit < max(least, 1):
            raise ValueError(
                f"the K/V cache cannot hold {max(least, 1)} slot(s) of {length} positions "
                f"({per_slot / 2**30:.2f} GiB each) within {budget / 2**30:.2f} GiB "
                "(EngineConfig.max_cache_bytes, or the device's memory): shorter prompts, fewer new tokens "
                "or a larger budget"
            )
        self.totals["cache_slot_caps"] += 1
        return fit

    # ---------------------------------------------------------------------------- scheduling
    def _run(
        self,
        state: kernels.DecodeState,
        prompts: list[list[int]],
        max_new: int,
        keys: list[Hashable] | None = None,
        lane: range | None = None,
        feed: Feed | None = None,
        on_decode: Callable[[], None] | None = None,
    ) -> list[list[int]]:
        lane = lane or range(state.slots)
        view = state if len(lane) == state.slots else state.narrow(lane.start, lane.stop)
        if keys is None:
            queue = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths together
        else:
            with record_function("engine.order"):
                queue = self._keyed_order(prompts, keys)
        queue.reverse()  # pop() from the end takes the shortest first
        counts: Counter[str] = Counter()
        outputs: list[list[int] | None] = [None] * len(prompts)
        initial = len(prompts)  # ``feed`` appends to prompts, keys and outputs
        owner = [-1] * state.slots  # prompt index per slot, -1 when free
        budget = [0] * state.slots  # decode steps until the token budget surely ends the slot
        end_pos = [0] * state.slots  # last cache position the slot can reach (host-side bound)
        steps = prefills = 0
        regroup, saved = True, 0  # cascade: groups to (re)compute before the next step; positions saved
        graphs: dict[tuple[int, int, int], Any] = {} if keys is None else self._keyed_graphs  # keyed: kept
        finished: list[int] = []  # prompts done since ``feed`` was last called
        worker = (
            _FeedWorker(feed) if feed is not None and keys is not None and self.config.feed_overlap else None
        )
        try:
            while queue or any(o >= 0 for o in owner) or finished or (worker is not None and worker.busy):
                if worker is not None and worker.busy and (worker.done() or all(o < 0 for o in owner)):
                    with record_function("engine.feed_wait"):  # blocks only when no slot is decoding
                        new = worker.result()
                    if self._take_fed(new, state, prompts, keys, outputs, queue, max_new, graphs):
                        regroup = True
                free = [s for s in lane if owner[s] < 0]
                if free and queue:
                    with record_function("engine.admit"):  # phases named for the profiler's timeline
                        if keys is None:
                            admitted = self._admit(state, prompts, queue, free, max_new)
                            counts["prefilled_tokens"] += sum(len(prompts[i]) for _, i in admitted)
                        else:
                            # being fed: their next prompt is coming, their slots are not evicted
                            protect = {keys[i] for i in finished}
                            if worker is not None:
                                protect.update(keys[i] for i in worker.feeding)
                            admitted = self._admit_keyed(
                                state, prompts, keys, queue, free, max_new, counts, protect
                            )
                    prefills += len(admitted)
                    regroup = regroup or bool(admitted)
                    for slot, index in admitted:
                        owner[slot], budget[slot] = index, max_new - 1
                        end_pos[slot] = len(prompts[index]) + max_new
                live = [s for s in range(state.slots) if owner[s] >= 0]
                if worker is not None:
                    idle = not queue and any(owner[s] < 0 for s in lane)
                    if not worker.busy and (finished or (idle and worker.asks_more)):
                        with record_function("engine.feed"):
                            worker.submit([(keys[i], outputs[i] or []) for i in finished], finished[:])
                        finished.clear()
                    if not live:
                        continue  # waits for the worker at the top (nothing to decode meanwhile)
                elif finished or not live:
                    # Answer the finished prompts first, a chunk at a time: each chunk's next prompts are
                    # admitted (their prefill queued on the GPU) before the host works on the next chunk, and
                    # decoding resumes for all slots at once (decoding between chunks staggered a round's
                    # slots: 1,207 decode steps and 0.92x the rounds' speed on an H200). No prompts left and
                    # none finished: the end.
                    if self._feed(feed, state, finished, prompts, keys, outputs, queue, max_new, graphs):
                        regroup = True
                    continue
                n_steps = max(1, min([self.config.sync_every] + [budget[s] for s in live if budget[s] > 0]))
                if all(budget[s] <= 0 for s in live):
                    n_steps = 0  # every live slot ended on its prefill token
                attend = kernels.round_up(
                    max(end_pos[s] for s in live), self.config.attend_bucket, state.max_len
                )
                # varlen reads each slot's own length whatever ``attend`` says (it only bounds them), so its
                # steps attend the whole cache: one graph per lane and cache size, not one per bucket
                bound = state.max_len if self.decode_attention in kernels.PER_SLOT_KERNELS else attend
                groups = None
                sharing = self.decode_attention in ("cascade", "grouped") or self.config.shared_reads
                if self.decode_attention in kernels.SHARING_KERNELS and sharing and keys is not None:
                    groups = self._cascade.get((lane.start, lane.stop))
                    if groups is None and self.decode_attention == "grouped":
                        fold = int(self.model.config.num_attention_heads) // self.kv_heads
                        groups = grouped.SegmentTables(len(lane), self.kv_heads, fold, self.device)
                        self._cascade[(lane.start, lane.stop)] = groups
                    elif groups is None:
                        groups = kernels.CascadeGroups.allocate(len(lane), self.device)
                        self._cascade[(lane.start, lane.stop)] = groups
                    if regroup and self.decode_attention == "grouped":
                        with record_function("engine.regroup"):
                            order, lcp = self._sorted_holders(live, lane)
                            saved = groups.fill(
                                order, lcp, len(live), self.config.share_min_tokens
                            ).shared_positions
                        regroup = False
                    elif regroup and self.decode_attention == "flex" and self.config.share_blocks:
                        with record_function("engine.regroup"):
                            order, lcp = self._sorted_holders(live, lane)
                            blocks = state.max_len // kernels.FLEX_BLOCK
                            groups.fill_blocks(order, lcp, blocks)
                        # positions read from another slot's copy of the same block
                        saved = kernels.FLEX_BLOCK * sum(
                            sum(source != s for source in row)
                            for s, row in enumerate(kernels.block_sources(order, lcp, blocks))
                        )  # fmt: skip
                        regroup = False
                    elif regroup:
                        with record_function("engine.regroup"):
                            shared = self._shared_prefixes(live, lane)
                            groups.fill(shared, len(lane), self.kv_heads * state.max_len)
                        # K/V positions a step does not read because a group reads its prefix once (flex:
                        # from the L2 cache rather than HBM, whole blocks of it)
                        grain = kernels.FLEX_BLOCK if self.decode_attention == "flex" else 1
                        saved = sum(
                            (len(members) - 1) * (length // grain * grain) for members, length in shared
                        )
                        regroup = False
                    counts["decode_shared_positions"] += n_steps * saved
                with record_function("engine.decode"):
                    for _ in range(n_steps):
                        self._step(view, bound, graphs, (bound, lane.start, lane.stop), groups)
                if on_decode is not None:  # the GPU has steps queued: the caller's own host work may start
                    on_decode, started = None, on_decode
                    started()
                # K/V positions the decode attention covers: every slot to ``attend`` (sdpa, matmul), or
                # each live slot to its own position (varlen; host-side bound: a slot stopped early counts)
                counts["decode_kv_positions"] += len(lane) * attend * n_steps
                counts["decode_live_positions"] += sum(
                    n_steps * (end_pos[s] - budget[s]) + n_steps * (n_steps - 1) // 2 for s in live
                )
                steps += n_steps
                for s in live:
                    budget[s] -= n_steps
                with record_function("engine.sync"):
                    active = state.active.tolist()  # the only host sync of the loop
                done = [s for s in live if not active[s]]
                if done:
                    if feed is not None:
                        finished += [owner[s] for s in done]
                    with record_function("engine.harvest"):
                        self._harvest(state, done, owner, outputs, prompts, keys)
        finally:
            if worker is not None:
                worker.close()
        counts.update(
            dict.fromkeys(
                (
                    "prefilled_tokens",
                    "prefill_calls",
                    "reused_tokens",
                    "copied_tokens",
                    "evictions",
                    "decode_kv_positions",
                    "decode_live_positions",
                    "decode_shared_positions",
                ),
                0,
            )
        )
        self.totals.update(counts)
        self.stats.update(
            counts, decode_steps=steps, prefilled=prefills, graphs=len(graphs), slots=state.slots
        )
        return [o if o is not None else [] for o in outputs[:initial]]  # fed prompts' went to feed

    def _sorted_holders(self, live: list[int], lane: range) -> tuple[list[int], list[int]]:
        """``flex`` block sharing: the lane's slots (indices within ``lane``) sorted by the ids they hold,
        live ones first, and the ids each holds alike with the next (0 past the live ones)."""
        ids, held = self.table.ids, self.table.held_hashes
        order = sorted(live, key=held)
        lcp = [common_prefix(ids[a], ids[b]) for a, b in zip(order, order[1:], strict=False)]
        rest = sorted(set(lane) - set(live))
        lcp += [0] * (len(lane) - 1 - len(lcp))  # a slot not decoding shares nothing
        return [s - lane.start for s in order + rest], lcp

    def _shared_prefixes(self, live: list[int], lane: range) -> list[tuple[list[int], int]]:
        """``cascade``: groups of live slots (indices within ``lane``) whose caches hold the same first
        tokens, at least ``share_min_tokens`` of them in whole blocks, and that length. Sorted by the ids
        they hold, slots with a common prefix are neighbours; a group is a run of neighbours whose longest
        prefix shared with a neighbour has the same length."""
        ids, held = self.table.ids, self.table.held_hashes
        # sorted by their blocks' chain hashes (a 16th of the tokens to compare), equal prefixes are still
        # neighbours; the shared length is then confirmed token by token
        order = sorted(live, key=held)
        n = len(order)
        lcp = [common_prefix(ids[a], ids[b]) // BLOCK * BLOCK for a, b in zip(order, order[1:], strict=False)]
        depth = [max(lcp[i - 1] if i else 0, lcp[i] if i < n - 1 else 0) for i in range(n)]
        groups, i = [], 0
        while i < n:
            j = i + 1
            while j < n and depth[j] == depth[i] and lcp[j - 1] >= depth[i]:
                j += 1
            if depth[i] >= max(self.config.share_min_tokens, 1) and j - i > 1:
                groups.append(([order[k] - lane.start for k in range(i, j)], depth[i]))
            i = j
        return groups

    def _feed(
        self,
        feed: Feed | None,
        state: kernels.DecodeState,
        finished: list[int],
        prompts: list[list[int]],
        keys: list[Hashable] | None,
        outputs: list[list[int] | None],
        queue: list[int],
        max_new: int,
        graphs: dict[tuple[int, int, int], Any],
    ) -> bool:
        """Hand the ``finished`` prompts' ids to ``feed`` and queue the prompts it returns (growing the
        cache when one needs it; the decode graphs are then recaptured). Whether any came back."""
        if feed is None or not finished or keys is None:
            return False
        chunk = finished[: self.config.feed_chunk]  # the rest after this chunk's prompts are admitted
        del finished[: len(chunk)]
        with record_function("engine.feed"):
            new = list(feed([(keys[i], outputs[i] or []) for i in chunk]))
        return self._take_fed(new, state, prompts, keys, outputs, queue, max_new, graphs)

    def _take_fed(
        self,
        new: list[tuple[Hashable, Sequence[int]]],
        state: kernels.DecodeState,
        prompts: list[list[int]],
        keys: list[Hashable],
        outputs: list[list[int] | None],
        queue: list[int],
        max_new: int,
        graphs: dict[tuple[int, int, int], Any],
    ) -> bool:
        """Queue the prompts ``feed`` returned (growing the cache when one needs it; the decode graphs
        are then recaptured). Whether there were any."""
        if not new:
            return False
        cap = self.max_cache_len
        known = set(keys[i] for i in queue)
        for key, prompt in new:
            ids = prompt.copy() if type(prompt) is list else list(map(int, prompt))  # as generate_ids does
            if not ids or len(ids) + max_new > cap:
                raise ValueError(
                    f"fed prompt of key {key!r}: {len(ids)} tokens (+{max_new} new) is empty or exceeds the "
                    f"{cap} cache positions of a slot"
                )
            if key in known:
                raise ValueError(f"fed key {key!r} is already queued")
            known.add(key)
            prompts.append(ids)
            keys.append(key)
            outputs.append(None)
            queue.append(len(prompts) - 1)  # popped first: a fed key holds its slot, it evicts nothing
        need = self._cache_positions(
            kernels.round_up(max(len(p) for _, p in new) + max_new, self.config.attend_bucket, cap)
        )
        if need > state.max_len:
            length = kernels.round_up(max(need, state.max_len * 3 // 2), self.config.attend_bucket, cap)
            length = self._cache_positions(length)
            fit = self._slots_within(length, state)[0]
            if fit is not None and fit < state.slots:  # no headroom: the length needed only
                length = need
            # the slots hold fed conversations now: fewer of them cannot be had halfway through a call
            self._fit_slots(state.slots, length, state.slots, state)
            state.resize(state.slots, length, max_new)
            graphs.clear()  # captured with the old tensors
            self._cascade.clear()
        return True

    def _harvest(
        self,
        state: kernels.DecodeState,
        done: list[int],
        owner: list[int],
        outputs: list[list[int] | None],
        prompts: list[list[int]],
        keys: list[Hashable] | None,
    ) -> None:
        """The finished slots' tokens to their prompts' outputs; the slots are free again (keyed: the
        table records what each now holds)."""
        for slot, ids in zip(done, state.harvest(done), strict=True):
            outputs[owner[slot]] = ids
            if keys is not None:  # the last token was generated, never fed: no K/V for it
                if len(self.table.ids[slot]) == len(prompts[owner[slot]]):  # stored at admission
                    self.table.extend(slot, ids[:-1])
                else:
                    self.table.store(slot, prompts[owner[slot]] + ids[:-1])
            owner[slot] = -1

    def _keyed_order(self, prompts: list[list[int]], keys: list[Hashable]) -> list[int]:
        """Keys that hold a slot first (they evict nothing), then by tokens left to prefill."""
        table = self.table

        def order(i: int) -> tuple[bool, int]:
            slot = table.slot_of.get(keys[i])
            if slot is None:
                return True, len(prompts[i])
            # through the table's memo: the prompt's plan asks the same of its slot next (one LCP, not two)
            return False, len(prompts[i]) - table.common(slot, prompts[i])

        return sorted(range(len(prompts)), key=order)

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

    def _admit_keyed(
        self,
        state: kernels.DecodeState,
        prompts: list[list[int]],
        keys: list[Hashable],
        queue: list[int],
        free: list[int],
        max_new: int,
        counts: Counter[str],
        protect: set[Hashable] = frozenset(),  # type: ignore[assignment]
    ) -> list[tuple[int, int]]:
        """Keyed admission: each prompt gets a slot and what is already cached (:meth:`SlotTable.plan`);
        shared prefixes are copied, the rest prefilled in groups bounded by ``prefill_tokens`` (new
        tokens) and, for ``sdpa`` prefill, ``prefill_keys`` (attended positions). A prompt that shares a prefix with one in
        the group being formed waits for the next group, so it copies that prefix instead of
        recomputing it."""
        table, cfg = self.table, self.config
        admitted: list[tuple[int, int]] = []
        hashes: dict[int, list[int]] = {}
        waiting = {keys[i] for i in queue} | protect  # their slots are evicted last
        limit = min(cfg.prefill_ramp, cfg.prefill_tokens) if cfg.prefill_ramp > 0 else cfg.prefill_tokens
        while free and queue:
            group: list[tuple[int, Plan]] = []
            deferred: list[int] = []
            pending: set[int] = set()  # chain hashes of the group's prompts
            width = attend = tokens = 0
            with record_function("engine.plan"):  # the slot table: hashes, plans (host only)
                while queue and free:
                    i = queue.pop()
                    if i not in hashes:
                        hashes[i] = table.hashes(prompts[i], keys[i])
                    plan = table.plan(
                        prompts[i], hashes[i], keys[i], set(free), {p.slot for _, p in group}, waiting
                    )
                    if pending and shared_tokens(hashes[i], pending) - plan.start >= cfg.share_min_tokens:
                        deferred.append(i)
                        continue
                    rows, new = len(group) + 1, len(prompts[i]) - plan.start
                    new_width, new_attend = max(width, new), max(attend, len(prompts[i]))
                    # sdpa gathers the rows' cached K/V (prefill_keys bounds that copy); varlen reads it in place
                    gathered = rows * new_attend if self.prefill_attention == "sdpa" else 0
                    # the forward's tokens: rows padded to the widest, or (packed) the new tokens alone
                    batch = tokens + new if self.prefill_attention == "packed" else rows * new_width
                    if group and (batch > limit or gathered > cfg.prefill_keys):
                        queue.append(i)
                        break
                    table.assign(plan, keys[i])
                    waiting.discard(keys[i])
                    free.remove(plan.slot)
                    group.append((i, plan))
                    pending.update(hashes[i])
                    width, attend, tokens = new_width, new_attend, tokens + new
            queue.extend(reversed(deferred))  # first in line again
            limit = min(2 * limit, cfg.prefill_tokens)
            group.sort(key=lambda member: member[1].slot)  # ascending slots: the varlen kernels' layout
            copies = [p for _, p in group if p.source is not None]
            with record_function("engine.copy"):
                state.copy_prefix(
                    [p.slot for p in copies],
                    [p.source for p in copies],
                    [p.reused for p in copies],
                    [p.start for p in copies],
                )
            slots = [p.slot for _, p in group]
            with record_function("engine.prefill"):
                first = self._prefill_extend(
                    state, [prompts[i] for i, _ in group], [p.start for _, p in group], slots
                )
            counts["prefill_calls"] += 1
            lengths = [len(prompts[i]) for i, _ in group]
            with record_function("engine.store"):
                state.start(slots, lengths, first, self.stops, max_new, self.stop_seqs, self.stop_seq_pad)
                for i, plan in group:
                    table.store(plan.slot, prompts[i], hashes[i])  # the plan's hashes: not hashed again
                    counts["prefilled_tokens"] += len(prompts[i]) - plan.start
                    counts["reused_tokens"] += plan.reused
                    counts["copied_tokens"] += plan.start - plan.reused
                    counts["evictions"] += plan.evicts is not None
            admitted += [(p.slot, i) for i, p in group]
        return admitted

    def _prefill_extend(
        self, state: kernels.DecodeState, prompts: list[list[int]], starts: list[int], slots: list[int]
    ) -> torch.Tensor:
        """Prefill ``prompt[start:]`` of each prompt at positions ``start..`` of its slot (the slot
        holds ``prompt[:start]`` already); return the first greedy tokens."""
        news = [p[s:] for p, s in zip(prompts, starts, strict=True)]
        if self.prefill_attention == "packed":
            return self._prefill_packed(state, prompts, starts, slots, news)
        width = max(len(n) for n in news)
        ids = torch.zeros((len(news), width), dtype=torch.long)
        for row, new in enumerate(news):
            ids[row, width - len(new) :] = torch.tensor(new)
        ids = kernels.h2d(ids, self.device)
        offsets = kernels.h2d([width - len(n) for n in news], self.device)
        begin = kernels.h2d(starts, self.device)
        # Positions past a row's prompt are masked; a multiple of 64 keeps fused attention kernels aligned.
        attend = kernels.round_up(max(len(p) for p in prompts), 64, state.max_len)
        slot_ids = kernels.h2d(slots, self.device)
        if self.prefill_attention == "varlen":  # reads each row's length, not a mask
            used = kernels.h2d([len(p) for p in prompts], self.device)
            state.mode = kernels.ExtendMode(slot_ids, offsets, begin, width, attend, "varlen", used)
            mask = torch.zeros((len(news), 1, 1, 1), dtype=self.dtype, device=self.device)
        else:
            state.mode = kernels.ExtendMode(slot_ids, offsets, begin, width, attend)
            mask = kernels.extend_mask(offsets, begin, width, attend, self.dtype)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=kernels.extend_positions(offsets, begin, width),
            use_cache=False,
            logits_to_keep=1,
        )
        state.mode = None
        return out.logits[:, -1, :].argmax(dim=-1)

    def _prefill_packed(
        self,
        state: kernels.DecodeState,
        prompts: list[list[int]],
        starts: list[int],
        slots: list[int],
        news: list[list[int]],
    ) -> torch.Tensor:
        """:meth:`_prefill_extend` with the rows' new tokens packed into one sequence (no padding: the
        forward computes only real tokens); each row's last token gives its first greedy token."""
        lengths = torch.tensor([len(n) for n in news])
        cu_q = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        total = int(cu_q[-1])
        rows = torch.arange(len(news)).repeat_interleave(lengths)
        positions = (
            torch.tensor(starts).repeat_interleave(lengths)
            + torch.arange(total)
            - cu_q[:-1].repeat_interleave(lengths)
        )
        device = self.device
        ids = kernels.h2d(torch.tensor([t for n in news for t in n])[None], device)
        state.mode = kernels.PackedMode(
            slots=kernels.h2d(slots, device),
            cu_q=kernels.h2d(cu_q.to(torch.int32), device),
            max_q=int(lengths.max()),
            used=kernels.h2d([len(p) for p in prompts], device),
            tok_slot=kernels.h2d(torch.tensor(slots)[rows], device),
            tok_pos=kernels.h2d(positions, device),
            attend=kernels.round_up(max(len(p) for p in prompts), 64, state.max_len),
        )
        out = self.model(
            input_ids=ids,
            attention_mask=torch.zeros((1, 1, 1, 1), dtype=self.dtype, device=device),
            position_ids=kernels.h2d(positions[None], device),
            use_cache=False,
            logits_to_keep=kernels.h2d(cu_q[1:] - 1, device),
        )
        state.mode = None
        return out.logits[0].argmax(dim=-1)

    def _prefill(self, state: kernels.DecodeState, batch: list[list[int]], slots: list[int]) -> torch.Tensor:
        """Run the prompts (left-padded), write their K/V into ``slots``; return the first greedy tokens."""
        width = max(len(p) for p in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        lengths = torch.tensor([len(p) for p in batch])
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
        ids, lengths = kernels.h2d(ids, self.device), kernels.h2d(lengths, self.device)
        offsets = width - lengths  # left padding per row
        positions = (torch.arange(width, device=self.device)[None, :] - offsets[:, None]).clamp(min=0)
        state.mode = kernels.PrefillMode(kernels.h2d(slots, self.device), offsets, width)
        mask = kernels.prefill_mask(offsets, width, self.dtype)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1
        )
        state.mode = None
        return out.logits[:, -1, :].argmax(dim=-1)

    # ------------------------------------------------------------------------------- decoding
    def _step(
        self,
        state: kernels.DecodeState,
        attend: int,
        graphs: dict[tuple[int, int, int], Any],
        key: tuple,
        groups: kernels.CascadeGroups | None = None,
    ) -> None:
        """One decode step for every slot of ``state`` (the cache, or a range of its slots), replayed
        from a CUDA graph when one could be captured (one per ``key``: attention bucket and range).

        The first step of each attention bucket runs eagerly (on a side stream, as warm-up); the
        step is then captured -- capturing runs nothing -- and later steps replay the graph."""
        graph = graphs.get(key)
        if graph is not None:
            graph.replay()
            return
        if not self.graphs_ok:
            self._decode(state, attend, groups)
            return
        start = time.perf_counter()
        kernels.warm_up(lambda: self._decode(state, attend, groups), self.device)
        try:
            graphs[key] = kernels.capture(lambda: self._decode(state, attend, groups), self.device)
            self.totals["graph_captures"] += 1
            self.totals["graph_capture_ms"] += round((time.perf_counter() - start) * 1e3)
        except Exception as exc:  # capture is an optimisation: the eager step computes the same
            log.warning("CUDA graph capture failed (%s: %s); decoding eagerly", type(exc).__name__, exc)
            self.graphs_ok = False
            self.stats["graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
            torch.cuda.synchronize(self.device)

    def _layers(self) -> AbstractContextManager[None]:
        """The decode step's decoder layers: compiled ones with ``compile_layers``, else the model's."""
        if not self.config.compile_layers:
            return nullcontext()
        if not self._compiled:
            self._compiled = [
                torch.compile(
                    layer.forward,
                    dynamic=False,
                    backend=kernels.LAYER_BACKEND,
                    options=kernels.layer_options(),
                )
                for layer in kernels.decoder_layers(self.model)
            ]
        return kernels.compiled_layers(self.model, self._compiled)

    def _decode(
        self, state: kernels.DecodeState, attend: int, groups: kernels.CascadeGroups | None = None
    ) -> None:
        rows = self.config.flex_rows
        split = self.config.flex_split or (
            kernels.FLEX_PACKED_SPLIT if rows > 1 else kernels.FLEX_SHARED_SPLIT if groups is not None else 0
        )
        state.mode = kernels.DecodeMode(
            attend,
            self.decode_attention,
            groups,
            split,
            rows,
            self.flex_options,
            self.config.flex_cascade,
        )
        # varlen, cascade and flex take each slot's length from ``state.pos``, not from a mask
        per_slot = self.decode_attention in kernels.PER_SLOT_KERNELS
        mask = kernels.decode_mask(state.pos, 1 if per_slot else attend, self.dtype)
        with kernels.active_state(state), self._layers():
            out = self.model(
                input_ids=state.tokens[:, None],
                attention_mask=mask,
                position_ids=state.pos[:, None],
                use_cache=False,
                logits_to_keep=1,
            )
        state.mode = None
        state.advance(out.logits[:, -1, :].argmax(dim=-1), self.stops, self.stop_seqs, self.stop_seq_pad)


class _FeedWorker:
    """``Engine.generate_ids(feed=)`` with ``EngineConfig.feed_overlap``: one ``feed`` call at a time in a
    thread of its own, the decode loop polling it at its host syncs."""

    def __init__(self, feed: Feed) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.feed = feed
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-feed")
        self._future: Any = None
        #: prompt indices of the call under way (their keys are not evicted meanwhile)
        self.feeding: list[int] = []
        #: ``feed([])`` (slots free, nothing queued) may still return prompts
        self.asks_more = True
        self._asking = False  # the call under way is such a ``feed([])``
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, 0.001))

    @property
    def busy(self) -> bool:
        return self._future is not None

    def submit(self, done: list[tuple[Hashable, list[int]]], indices: list[int]) -> None:
        self.feeding = indices
        self._future = self._pool.submit(lambda: list(self.feed(done)))
        self._asking = not done

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> list[tuple[Hashable, Sequence[int]]]:
        """The call's prompts (waiting for it); its exception, raised here."""
        future, self._future, self.feeding = self._future, None, []
        new = future.result()
        if self._asking and not new:
            self.asks_more = False
        return new

    def close(self) -> None:
        """Wait for a call under way (an error elsewhere ended the run) and stop the thread."""
        self._pool.shutdown(wait=True)
        sys.setswitchinterval(self._switch)
