"""Throughput of BFCL's multi-turn categories: our engine vs batched ``generate`` on the same conversations.

One invocation, one GPU, one model (Llama-3.2-1B's shape, random weights from config, bf16, as
``bench/eval_throughput.py``), the tokenizer trained here on the prompts. Timed in one run:

* ``single_turn_engine``: the 1,390 non-live single-turn prompts on the engine (the reference the
  issue's budget is stated against: multi-turn in at most 3x its time), timed after one untimed pass;
* ``multi_turn_engine_reuse`` / ``multi_turn_engine`` / ``multi_turn_generate``: the 800
  conversations of the four multi-turn categories run to the end by
  :func:`evaluation.bfcl.multi_turn.run_conversations` (calls executed in the environment worker; a
  random model rarely calls, so most turns are one reply): on the engine keeping each
  conversation's KV cache between rounds (``--slots`` conversations at once; a round prefills only
  the new tokens, shared function docs copied between slots; in rounds, host and engine taking
  turns; ``_fed``: each conversation at its own pace, its next prompt fed to the engine while it
  decodes the others, ``--skip-fed`` leaves it out; and
  ``_lanes``: two lanes, the host stepping one while the engine generates the other, ``--skip-lanes``
  leaves it out), on the engine re-prefilling every prompt from its first token
  each round (``--skip-no-reuse`` leaves it out), and on batched
  ``model.generate`` (``--skip-generate``; ``--generate-limit N``: on the first N conversations of each
  category, beside the engine on the same ones, ``_first-N`` rows). The engine runs also print the prompt tokens they
  prefilled, reused from the conversation's own slot and copied from another slot.

Needs the extracted BFCL data and environment classes (``hephaestus bfcl download``).

    python bench/bfcl_multi_turn_throughput.py --data .hephaestus/cache/bfcl_data_bfcl_eval-2026.3.23-py3-none-any/bfcl_eval/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_throughput import build_model, build_tokenizer, load_conversations, timed  # noqa: E402
from kernel_breakdown import idle_by_phase, render_idle_by_phase  # noqa: E402

from contracts.bfcl import MULTI_TURN_CATEGORIES, load_multi_turn_category  # noqa: E402
from evaluation.bfcl.data import environment_dir, prompt_functions  # noqa: E402
from evaluation.bfcl.multi_turn import Limits, run_conversations  # noqa: E402
from evaluation.generation import grouped  # noqa: E402
from evaluation.generation.engine import EngineConfig  # noqa: E402
from evaluation.generation.generate import generate  # noqa: E402
from evaluation.generation.kernels import DECODE_KERNELS  # noqa: E402
from evaluation.generation.prefix_cache import common_prefix  # noqa: E402


def setup(args: argparse.Namespace, device: str, dtype: torch.dtype, tiny: bool) -> tuple:
    """The multi-turn items, the single-turn prompts (and their source), a tokenizer trained on both, the model."""
    items = [i for c in MULTI_TURN_CATEGORIES for i in load_multi_turn_category(args.data, c, args.limit)]
    single, source = load_conversations(args.data)
    single = single[: args.limit] if args.limit else single
    texts = [
        {"messages": t, "tools": prompt_functions(i.functions, i.category)}
        for i in items
        for t in i.turns
        if t
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(single + texts, Path(tmp), args.vocab_size)
    model = build_model(device, dtype, tiny=tiny)
    model.resize_token_embeddings(len(tokenizer))
    return items, single, source, tokenizer, model


def run(args: argparse.Namespace) -> str:
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    items, single, source, tokenizer, model = setup(args, args.device, dtype, args.tiny)
    source_dir = environment_dir(args.data)
    limits = Limits(max_prompt_tokens=model.config.max_position_embeddings - args.max_new_tokens)
    # --generate-limit N: model.generate (and the engine beside it) on the first N conversations of each category
    few = [
        i for c in MULTI_TURN_CATEGORIES for i in [j for j in items if j.category == c][: args.generate_limit]
    ]
    configs = [
        EngineConfig(
            decode_attention=k.removesuffix("-own").removesuffix("-blocks"),
            prefill_attention=p,
            attend_bucket=args.attend_bucket,
            shared_reads=not k.endswith("-own"),
            share_blocks=k.endswith("-blocks"),
            flex_split=n,
            flex_rows=r,
            flex_options=flex_options(o),
            flex_cascade=c,
            compile_layers=bool(cl),
            prefill_tokens=pt,
        )
        for k in args.decode_attention
        for p in args.prefill_attention
        for n in args.flex_split
        for r in args.flex_rows
        for o in args.flex_options
        for c in args.flex_cascade
        for cl in args.compile_layers
        for pt in args.prefill_tokens
    ]

    def single_pass(config: EngineConfig) -> list[str]:
        return generate(model, tokenizer, single, args.max_new_tokens, args.slots, engine_config=config)

    def converse(
        config: EngineConfig,
        engine: bool = True,
        reuse: bool = True,
        totals: Any = None,
        overlap: bool = False,
        fed: bool = False,
        longest_first: bool = True,
        prefetch: int = 0,
        subset: bool = False,
    ) -> list:
        batch = args.slots if engine else args.generate_batch
        return run_conversations(
            model, tokenizer, few if subset else items, source_dir, args.max_new_tokens, batch, limits,
            use_engine=engine, reuse=reuse, overlap=overlap, engine_totals=totals, engine_config=config,
            fed=fed, longest_first=longest_first, prefetch=prefetch,
        )  # fmt: skip

    # Warm-up: one untimed pass over the single-turn items (with each kernel). The first pass of a
    # process ran ~2x slower than a second one (6.0 s of 12.7 s on an H200: library handles, kernel
    # plans per shape), which a short warm-up did not absorb and which flattered the multi-turn ratio.
    # Its time is reported apart: what a one-off evaluation pays for compiles and captures.
    first = [timed(lambda config=config: single_pass(config), args.device)[1] for config in configs]
    if args.warm_multi_turn:  # compiles and graph captures of the multi-turn shapes, then untimed
        first_multi = [timed(lambda config=config: converse(config), args.device)[1] for config in configs]
    rows, base_of, warmups = [], {}, []
    tokens, decoded = {}, {}
    for k, config in enumerate(configs):
        suffix = "" if k == 0 else f"_{config.decode_attention}" + ("" if config.shared_reads else "-own")
        suffix += "-blocks" if k and config.share_blocks else ""
        suffix += f"_prefill-{config.prefill_attention}" if k and config.prefill_attention != "sdpa" else ""
        suffix += f"_split-{config.flex_split}" if k and config.flex_split else ""
        suffix += f"_rows-{config.flex_rows}" if k and config.flex_rows > 1 else ""
        suffix += f"_cascade-{config.flex_cascade}" if k and config.flex_cascade else ""
        suffix += "_compiled" if k and config.compile_layers else ""
        suffix += (
            f"_pt-{config.prefill_tokens}"
            if k and config.prefill_tokens != EngineConfig.prefill_tokens
            else ""
        )
        if k and config.flex_options != EngineConfig.flex_options:
            suffix += "_opts-" + (":".join(str(v) for _, v in config.flex_options) or "pytorch")
        warm = f"first single-turn pass {first[k]:.1f} s" + (
            f", first multi-turn pass {first_multi[k]:.1f} s" if args.warm_multi_turn else ""
        )
        warmups.append(f"untimed warm-ups of single_turn_engine{suffix}: {warm}")
        _, seconds = timed(lambda config=config: single_pass(config), args.device)
        rows.append((f"single_turn_engine{suffix}", len(single), len(single), seconds))
        print(rows[-1], flush=True)
        runs = [] if args.skip_reuse else [(f"multi_turn_engine_reuse{suffix}", True, True, False, False)]
        if k == 0:  # the baselines once, with the first kernel
            runs += (
                []
                if args.skip_fed
                else [
                    (
                        "multi_turn_engine_reuse_fed"
                        + ("" if n == EngineConfig.feed_chunk else f"-chunk-{n}"),
                        True,
                        True,
                        False,
                        n,
                    )
                    for n in args.feed_chunk
                ]
            )
            runs += [
                (f"multi_turn_engine_reuse_prefetch-{n}", True, True, False, False) for n in args.prefetch
            ]
            # EngineConfig.prefill_ramp N: an admission's first prefill group at most N new tokens, then doubling
            runs += [
                (f"multi_turn_engine_reuse_ramp-{n}", True, True, False, False) for n in args.prefill_ramp
            ]
            # EngineConfig.sync_every N: decode steps between the host's reads of the finished flags
            runs += [(f"multi_turn_engine_reuse_sync-{n}", True, True, False, False) for n in args.sync_every]
            if args.feed_overlap:  # EngineConfig.feed_overlap: feed in a thread beside the decode steps
                runs += [("multi_turn_engine_reuse_fed-overlap", True, True, False, "overlap")]
            runs += [] if args.skip_lanes else [("multi_turn_engine_reuse_lanes", True, True, True, False)]
            runs += [] if args.skip_no_reuse else [("multi_turn_engine", True, False, False, False)]
            if not args.skip_generate and args.generate_limit:  # the baseline and the engine on the same few
                runs += [
                    (f"multi_turn_engine_reuse_first-{args.generate_limit}", True, True, False, False),
                    (f"multi_turn_generate_first-{args.generate_limit}", False, False, False, False),
                ]
            elif not args.skip_generate:
                runs += [("multi_turn_generate", False, False, False, False)]
            if args.whole_render:
                runs += [("multi_turn_engine_reuse_whole-render", True, True, False, False)]
            if args.in_order:
                runs += [("multi_turn_engine_reuse_in-order", True, True, False, False)]
        # --repeats: the runs again, in reverse order every other pass (so neither comes first each time),
        # rows named NAME@2, NAME@3, ...
        passes = [runs if r % 2 == 0 else runs[::-1] for r in range(args.repeats)]
        labelled = [
            (f"{run[0]}@{r + 1}" if r else run[0], run) for r, runs_r in enumerate(passes) for run in runs_r
        ]
        for label, (name, engine, reuse, overlap, fed) in labelled:  # fed: False, a feed_chunk, or "overlap"
            totals: Counter[str] = Counter()
            run_config = fed_config(config, fed)
            run_config = tuned_config(run_config, label)
            with whole_renders(name.endswith("_whole-render")):
                out, seconds = timed(
                    lambda c=run_config, e=engine, r=reuse, t=totals, o=overlap, q=bool(fed), n=name: (
                        converse(
                            c, e, r, t, o, q, not n.endswith("_in-order"), prefetch_of(n), "_first-" in n
                        )
                    ),
                    args.device,
                )
            replies = sum(len(step) for r in out for step in r["decoded"])
            rows.append((label, len(few if "_first-" in name else items), replies, seconds))
            base_of[label] = f"single_turn_engine{suffix}"
            decoded[label] = [r["texts"] for r in out]
            if engine:
                tokens[label] = totals
            print(rows[-1], dict(totals), flush=True)
    head = (
        f"# BFCL multi-turn throughput — {date.today()} — {platform.node()} — {args.device} "
        f"({torch.cuda.get_device_name() if args.device == 'cuda' else platform.machine()}); "
        f"model: {'tiny' if args.tiny else 'Llama-3.2-1B shape'}, {dtype}; {args.max_new_tokens} new tokens; "
        f"single-turn prompts: {source}; decode attention: {', '.join(args.decode_attention)}; "
        f"prefill attention: {', '.join(args.prefill_attention)} "
        f"(runs without a suffix use {args.decode_attention[0]} and {args.prefill_attention[0]}); "
        f"attend bucket {args.attend_bucket}"
        + (f"; grouped settings {grouped.settings()}" if "grouped" in args.decode_attention else "")
    )
    seconds = {name: s for name, _, _, s in rows}
    lines = [head, f"{'run':<32}{'items':>8}{'replies':>9}{'seconds':>10}{'vs single-turn':>16}"]
    for name, n, replies, secs in rows:
        base = seconds[base_of.get(name, name)]  # each multi-turn run against the same kernel's single turn
        lines.append(f"{name:<32}{n:>8}{replies:>9}{secs:>10.1f}{secs / base:>15.2f}x")
    reuse = seconds.get("multi_turn_engine_reuse")
    for other in seconds:  # every other multi-turn run of the first config against the default's
        if (
            other.startswith("multi_turn_")
            and other in base_of
            and base_of[other] == base_of.get("multi_turn_engine_reuse")
            and other != "multi_turn_engine_reuse"
            and "_first-" not in other  # other conversations: against their own engine run below
            and reuse
        ):
            lines.append(f"{other} / multi_turn_engine_reuse: {seconds[other] / reuse:.2f}x")
    engine_few = f"multi_turn_engine_reuse_first-{args.generate_limit}"
    for name, secs in seconds.items():  # model.generate against the engine on the same conversations
        if name.startswith("multi_turn_generate_first-") and engine_few in seconds:
            same_replies = "identical" if decoded[name] == decoded[engine_few] else "not identical"
            lines.append(f"{name} / {engine_few}: {secs / seconds[engine_few]:.2f}x (replies {same_replies})")
    lines.append(
        f"{'prompt tokens':<32}{'prefilled':>11}{'reused':>12}{'copied':>12}{'evictions':>12}"
        f"{'decode K/V pos':>16}{'live pos':>14}{'shared pos':>12}{'graphs':>8}{'prefills':>10}"
    )
    for name, counts in tokens.items():
        lines.append(
            f"{name:<32}{counts['prefilled_tokens']:>11}{counts['reused_tokens']:>12}"
            f"{counts['copied_tokens']:>12}{counts['evictions']:>12}"
            f"{counts['decode_kv_positions']:>16}{counts['decode_live_positions']:>14}"
            f"{counts['decode_shared_positions']:>12}"
            f"{counts['graph_captures']:>8}{counts['prefill_calls']:>10}"
        )
    lines.append(
        "decode K/V pos: cache positions the decode steps' attention covers with sdpa/matmul (every slot to "
        "the batch's bucketed longest); live pos: those the slots hold (what varlen reads); shared pos: "
        "those cascade does not read (a group's prefix read once); graphs: CUDA "
        "graphs of the decode step captured; prefills: prefill calls (model forwards) of the keyed admissions"
    )
    lines += warmups
    same = [
        n
        for n in decoded
        if n != "multi_turn_engine_reuse"
        and "_first-" not in n
        and decoded[n] == decoded.get("multi_turn_engine_reuse")
    ]
    differ = [n for n in decoded if n != "multi_turn_engine_reuse" and "_first-" not in n and n not in same]
    lines.append(
        f"replies identical to multi_turn_engine_reuse: {', '.join(same) or '-'}; differ: {', '.join(differ) or '-'}"
    )
    if args.profile:
        fed = "overlap" if args.profile_overlap else args.profile_fed
        config = fed_config(configs[0], fed)
        name = "multi_turn_engine_reuse" + (
            "_fed-overlap" if fed == "overlap" else f"_fed (feed_chunk {fed})" if fed else ""
        )
        name += f"_prefetch-{args.profile_prefetch}" if args.profile_prefetch else ""
        args.profile.write_text(
            profile_reuse(
                lambda: converse(config, fed=bool(fed), prefetch=args.profile_prefetch),
                args.device,
                name,
                args.profile_syncs,
            )
        )
        lines.append(f"profile of one more {name} run (not timed above): {args.profile}")
    return "\n".join(lines)


def flex_options(spec: str) -> tuple[tuple[str, int], ...] | None:
    """``BLOCK_N:STAGES:WARPS`` as EngineConfig.flex_options; ``default``: EngineConfig's (the engine's
    choice for the GPU); ``pytorch``: none (PyTorch's choice)."""
    if spec == "default":
        return EngineConfig.flex_options
    if spec == "pytorch":
        return ()
    n, s, w = (int(x) for x in spec.split(":"))
    return (("BLOCK_N", n), ("num_stages", s), ("num_warps", w))


def prefetch_of(name: str) -> int:
    """A run's ``run_conversations(prefetch=)``, from its name (``..._prefetch-N``, a repeat's ``@K``
    ignored; 0 otherwise)."""
    _, _, n = name.partition("@")[0].rpartition("_prefetch-")
    return int(n) if n.isdigit() else 0


#: run-name suffixes (``..._ramp-N``, ``..._sync-N``) and the EngineConfig field each sets to N
TUNED = {"_ramp-": "prefill_ramp", "_sync-": "sync_every"}


def tuned_config(config: EngineConfig, label: str) -> EngineConfig:
    """``config`` with the field a run's name tunes (``TUNED``; ``@K``, a repeat, ignored) set."""
    name = label.partition("@")[0]
    for suffix, field in TUNED.items():
        _, found, n = name.rpartition(suffix)
        if found and n.isdigit():
            return dataclasses.replace(config, **{field: int(n)})
    return config


def fed_config(config: EngineConfig, fed: int | str | bool) -> EngineConfig:
    """A fed run's engine config: ``fed`` is its ``feed_chunk``, or ``"overlap"`` (``feed_overlap``)."""
    if fed == "overlap":
        return dataclasses.replace(config, feed_overlap=True)
    return dataclasses.replace(config, feed_chunk=fed) if fed else config


@contextmanager
def whole_renders(on: bool) -> Iterator[None]:
    """With ``on``, every prompt is rendered whole by ``apply_chat_template`` (the chat session's
    :class:`evaluation.generation.render.ToolRenderer` bypassed: the tools' text formatted every round)."""
    from evaluation.generation.render import ToolRenderer, render_prompt

    spliced = ToolRenderer.render
    if on:
        ToolRenderer.render = lambda self, prompt, key=None: render_prompt(self.tokenizer, prompt)
    try:
        yield
    finally:
        ToolRenderer.render = spliced


def host_only(args: argparse.Namespace) -> str:
    """The conversations' host-side work alone: every reply is a fixed ~64-token text without a call
    (what a random model mostly says), so no model runs; rendering, tokenizing, the prefix table's
    bookkeeping and the environment worker are what is timed. Incremental tokenization (only a
    prompt's new text, :class:`evaluation.generation.encode.IncrementalEncoder`) against whole-prompt
    tokenization every round, and rendering each tool set once (:class:`evaluation.generation.render.ToolRenderer`)
    against rendering the tools every round, in one run, after an untimed pass of the first config (the
    process's imports, caches and worker start-up not charged to the first row)."""
    from evaluation.generation import generate as gen
    from evaluation.generation.encode import IncrementalEncoder
    from evaluation.generation.render import ToolRenderer

    items, _, _, tokenizer, model = setup(args, "cpu", torch.float32, tiny=True)  # the model never runs
    reply = "lorem ipsum " * 20
    limits = Limits(max_prompt_tokens=model.config.max_position_embeddings - args.max_new_tokens)
    whole = IncrementalEncoder.encode
    rows = []
    rounds: list[list[list[int]]] = []  # each round's token ids, for the shared-prefix estimate

    warming = [True]  # the untimed first pass: nothing recorded

    def fixed_replies(self: Any, encoded: list[list[int]], keys: Any, on_decode: Any = None) -> list[str]:
        copied = [list(e) for e in encoded]  # in every run, so each pays the same for it
        if len(rows) == 0 and not warming[0]:  # the first (incremental) run
            rounds.append(copied)
        return [reply] * len(encoded)

    renderers: list[ToolRenderer] = []  # each run's, for its counts
    spliced = ToolRenderer.render

    render_seconds: Counter[str] = Counter()  # per run: the time spent rendering prompts

    def counted(self: ToolRenderer, prompt: Any, key: Any = None) -> str:
        if not renderers or renderers[-1] is not self:
            renderers.append(self)
        start = time.perf_counter()
        text = spliced(self, prompt, key)
        render_seconds[rows_done()] += time.perf_counter() - start
        return text

    def in_full(self: ToolRenderer, prompt: Any, key: Any = None) -> str:
        start = time.perf_counter()
        text = spliced(self, prompt)  # no key: nothing continued, every prompt rendered in full
        render_seconds[rows_done()] += time.perf_counter() - start
        return text

    def whole_render(self: ToolRenderer, prompt: Any, key: Any = None) -> str:
        start = time.perf_counter()
        text = gen.render_prompt(self.tokenizer, prompt)
        render_seconds[rows_done()] += time.perf_counter() - start
        return text

    def rows_done() -> int:
        return len(rows)

    calls: list[
        tuple[Any, Any]
    ] = []  # the first run's tokenizer calls (texts, keys), or (None, key) forgotten

    def recording(self: IncrementalEncoder, texts: Any, keys: Any = None) -> Any:
        if not rows and not warming[0]:
            calls.append((list(texts), None if keys is None else list(keys)))
        return whole(self, texts, keys)

    def recording_forget(self: IncrementalEncoder, key: Any) -> None:
        if not rows and not warming[0]:
            calls.append((None, key))
        forget(self, key)

    forget = IncrementalEncoder.forget
    IncrementalEncoder.forget = recording_forget
    originals = gen.ChatSession.generate, IncrementalEncoder.encode, ToolRenderer.render
    try:
        gen.ChatSession.generate = fixed_replies
        for name, encode, render in (
            ("(warm-up, untimed)", whole, spliced),  # the process's first pass pays imports and caches
            ("incremental tokenization", recording, counted),
            ("prompts rendered in full", whole, in_full),
            ("tools rendered every round", whole, whole_render),
            (
                "whole prompts every round",
                lambda self, texts, keys=None: whole(self, texts, None),
                whole_render,
            ),
        ):
            IncrementalEncoder.encode, ToolRenderer.render = encode, render
            out, seconds = timed(
                lambda: run_conversations(
                    model,
                    tokenizer,
                    items,
                    environment_dir(args.data),
                    args.max_new_tokens,
                    args.slots,
                    limits,
                    overlap=False,  # the fixed replies stand in for ChatSession.generate
                    prefetch=0,  # nothing to hide behind: prefetch_run below times it with a simulated GPU
                ),
                "cpu",
            )
            if warming[0]:
                warming[0] = False
                continue
            rows.append((name, len(out), sum(len(s) for r in out for s in r["decoded"]), seconds))
    finally:
        gen.ChatSession.generate, IncrementalEncoder.encode, ToolRenderer.render = originals
        IncrementalEncoder.forget = forget

    #: the replay's ways: (share_heads, share_pieces, share_lines) of IncrementalEncoder
    ways = {
        "neither": (False, False, False),
        "heads": (True, False, False),
        "heads+pieces": (True, True, False),
        "+lines": (True, True, True),
    }

    def replay(way: str) -> tuple[float, dict[str, int]]:
        heads, pieces, by_line = ways[way]
        encoder = IncrementalEncoder(tokenizer, share_heads=heads, share_pieces=pieces, share_lines=by_line)
        start = time.perf_counter()
        for texts, keys in calls:
            encoder.encode(texts, keys) if texts is not None else encoder.forget(keys)
        return time.perf_counter() - start, encoder.stats

    trials: dict[str, list] = {way: [] for way in ways}
    for _ in range(2):  # alternating, so none pays the warm-up alone
        for way in ways:
            trials[way].append(replay(way))
    lines = [
        f"# BFCL multi-turn, host side only (fixed replies, no model) — {date.today()} — {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs); {args.slots} conversations at a time",
        f"{'run':<28}{'conversations':>14}{'replies':>9}{'seconds':>10}{'vs incremental':>16}"
        f"{'rendering s':>12}{'vs the first':>15}",
    ]
    for k, (name, n, replies, seconds) in enumerate(rows):
        lines.append(
            f"{name:<28}{n:>14}{replies:>9}{seconds:>10.1f}{seconds / rows[0][3]:>15.2f}x"
            f"{render_seconds[k]:>12.2f}{render_seconds[k] / render_seconds[0]:>15.2f}x"
        )
    counts = sum((r.stats for r in renderers), Counter())
    lines.append(
        f"first run's prompts: {counts['spliced']} rendered with stand-in tools and the tools' text spliced in, "
        f"{counts['whole']} rendered whole, {counts['continued']} continued from their conversation's last text "
        f"({counts['learned']} tool sets learned; "
        f"splicing {'on' if all(r.enabled for r in renderers) else 'turned off by a mismatch'})"
    )
    best = {way: min(trials[way], key=lambda t: t[0]) for way in ways}
    lines.append(
        f"the first run's {sum(t is not None for t, _ in calls)} tokenizer calls replayed, twice each way "
        "(IncrementalEncoder; heads: a first prompt starting with another key's system turn tokenizes only the "
        "rest; pieces: a piece several prompts of one call hold is tokenized once; lines: a long piece tokenized "
        "line by line, each line once):"
    )
    for way in ways:
        seconds, stats = best[way]
        lines.append(
            f"  {way:<13} {', '.join(f'{t:.2f}' for t, _ in trials[way])} s "
            f"({best['neither'][0] / seconds:.2f}x neither's best); characters tokenized "
            f"{stats['tokenized_chars']:,} ({stats['shared_chars']:,} from shared heads, "
            f"{stats['repeated_chars']:,} repeats of a piece, {stats['line_chars']:,} from lines tokenized before)"
        )
    own, shared = shared_prefix_positions(rounds, args.max_new_tokens)
    blocks = 0  # each whole 128-block several prompts of a round hold read once (EngineConfig.share_blocks)
    for prompts in rounds:
        order = sorted(prompts)
        blocks += args.max_new_tokens * sum(
            len(b) - (common_prefix(a, b) // 128 * 128 if a else 0) for a, b in zip([[], *order], order, strict=False)
        ) + len(prompts) * args.max_new_tokens * (args.max_new_tokens - 1) // 2  # fmt: skip
    cascade = cascade_positions(rounds, args.max_new_tokens)
    if args.dump_batches:
        dump_batches(rounds, args.max_new_tokens, args.dump_batches)
    sizes = Counter(len(m) for r in rounds for m, _ in round_groups(r))
    alone = sum(len(r) for r in rounds) - sum(k * v for k, v in sizes.items())
    lines.append(
        f"prompts of a round sharing a prefix with others, by group size (slots): {alone} alone, "
        + ", ".join(f"{v} groups of {k}" for k, v in sorted(sizes.items()))
    )
    lines.append(
        f"decode attention over these rounds ({len(rounds)}, {args.max_new_tokens} steps each): each slot "
        f"reading its own cache {own:.3e} K/V positions; reading a prefix that several prompts of a round "
        f"share once for all of them {shared:.3e} ({shared / own:.2f}x); each whole 128-token block that "
        f"several prompts hold once, at every depth {blocks:.3e} ({blocks / own:.2f}x); cascade "
        f"(EngineConfig.flex_cascade = 4: a group's whole 128-blocks once per row of 4 members, then each slot's "
        f"rest) {cascade:.3e} ({cascade / own:.2f}x)"
    )
    lines.append(scripted_run(items, tokenizer, model, environment_dir(args.data), args, limits)[0])
    if args.simulate_round:
        lines.append(prefetch_run(items, tokenizer, model, environment_dir(args.data), args, limits))
    return "\n".join(lines)


def scripted_run(
    items: list, tokenizer: Any, model: Any, source_dir: Path, args: Any, limits: Limits
) -> tuple[str, list[dict]]:
    """The host side when the model calls functions: every conversation replies with BFCL's ground truth
    (each turn's calls as one Python-style list, then a closing text that ends the turn), so calls are
    parsed and executed and their results rendered, as with a model that answers well. Times the run
    and the environment worker's requests (count and seconds by kind): a line of text, and the rows."""
    from evaluation.bfcl.environments import EnvironmentWorker
    from evaluation.generation import generate as gen

    def script(item: Any) -> Iterator[str]:
        for calls in item.ground_truth or []:
            if calls:
                yield "[" + ", ".join(calls) + "]"
            yield "Done: that is what you asked for."

    scripts: dict[int, Iterator[str]] = {}

    def replies(self: Any, encoded: list[list[int]], keys: Any, on_decode: Any = None) -> list[str]:
        return [next(scripts.setdefault(k, script(items[k])), "Nothing more.") for k in keys]

    requests: Counter[str] = Counter()
    request_s: Counter[str] = Counter()
    send = EnvironmentWorker.request

    def counted(self: Any, op: str, payload: Any = None, timeout_s: float | None = None) -> Any:
        start = time.perf_counter()
        try:
            return send(self, op, payload, timeout_s)
        finally:
            requests[op] += 1
            request_s[op] += time.perf_counter() - start

    originals = gen.ChatSession.generate
    gen.ChatSession.generate, EnvironmentWorker.request = replies, counted
    try:
        for _ in range(2):  # the first pass warms the worker's imports and caches
            scripts.clear()
            requests.clear()
            request_s.clear()
            start = time.perf_counter()
            out = run_conversations(
                model, tokenizer, items, source_dir, args.max_new_tokens, args.slots, limits, prefetch=0
            )
            seconds = time.perf_counter() - start
    finally:
        gen.ChatSession.generate, EnvironmentWorker.request = originals, send
    replies_n = sum(len(step) for r in out for step in r["decoded"])
    calls = sum(r["n_calls"] for r in out)
    stopped = Counter(r["stopped"] for r in out if r["stopped"])
    by_kind = ", ".join(f"{op} {requests[op]} in {request_s[op]:.2f} s" for op in sorted(requests))
    return (
        f"ground-truth replies (each turn's calls, then a closing text; second of two passes): {len(out)} "
        f"conversations, {replies_n} replies, {calls} calls executed, {seconds:.1f} s; environment requests: "
        f"{by_kind}; ended early: {dict(stopped) or 'none'}",
        out,
    )


def prefetch_run(items: list, tokenizer: Any, model: Any, source_dir: Path, args: Any, limits: Limits) -> str:
    """What tokenizing first prompts ahead (``run_conversations(prefetch=)``) hides, with the GPU simulated:
    each round's generation is a sleep of ``--simulate-round`` seconds (the GIL released, as while an
    engine waits for the device) before the fixed replies are decoded under the session's lock. Rounds
    without and with prefetch, alternating, two passes each; the host's time is the run's minus the
    sleeps."""
    from evaluation.generation import generate as gen

    reply = "lorem ipsum " * 20
    slept = [0]

    def simulated(self: Any, encoded: list[list[int]], keys: Any, on_decode: Any = None) -> list[str]:
        if on_decode is not None:  # where the engine calls it: its first decode steps queued
            on_decode()
        time.sleep(args.simulate_round)
        slept[0] += 1
        with self.lock:  # where the real session decodes the replies
            return [reply] * len(encoded)

    original = gen.ChatSession.generate
    gen.ChatSession.generate = simulated
    trials: dict[int, list[tuple[float, int]]] = {0: [], args.slots // 2: []}
    try:
        for _ in range(2):
            for n in trials:
                slept[0] = 0
                start = time.perf_counter()
                run_conversations(
                    model, tokenizer, items, source_dir, args.max_new_tokens, args.slots, limits, prefetch=n
                )
                trials[n].append((time.perf_counter() - start, slept[0]))
    finally:
        gen.ChatSession.generate = original
    parts = []
    for n, runs in trials.items():
        host = [t - k * args.simulate_round for t, k in runs]
        parts.append(
            f"prefetch {n}: {', '.join(f'{t:.1f}' for t, _ in runs)} s, host {', '.join(f'{h:.1f}' for h in host)} s"
        )
    return (
        f"simulated GPU ({args.simulate_round} s a round, {trials[0][0][1]} rounds; fixed replies): "
        + "; ".join(parts)
    )


def shared_prefix_positions(
    rounds: list[list[list[int]]], steps: int, min_shared: int = 64
) -> tuple[int, int]:
    """K/V positions the decode steps of these rounds read (each round's prompts decoding ``steps``
    tokens at once): each slot its own whole cache (what ``varlen`` reads), against reading once per
    round a prefix that several of its prompts share (cascade attention: a prompt's longest common
    prefix with another prompt of the round, in 16-token blocks, at least ``min_shared`` tokens;
    prompts whose prefixes are equal form a group) plus each slot's own rest."""
    own = shared = 0
    for prompts in rounds:
        groups = round_groups(prompts, min_shared)
        tail = len(prompts) * steps * (steps - 1) // 2  # the generated tokens, each slot its own
        own += steps * sum(map(len, prompts)) + tail
        rest = sum(len(p) for p in prompts) - sum(n * len(m) for m, n in groups)
        shared += steps * (rest + sum(n for _, n in groups)) + tail
    return own, shared


def cascade_positions(rounds: list[list[list[int]]], steps: int, per_row: int = 4, block: int = 128) -> int:
    """K/V positions the cascade layout (:func:`evaluation.generation.kernels.cascade_flex_plan`) reads over
    these rounds: each group's whole ``block``-blocks of its shared prefix once per row of ``per_row``
    members, and each slot the rest of its cache itself."""
    total = 0
    for prompts in rounds:
        tail = len(prompts) * steps * (steps - 1) // 2
        held = sum(map(len, prompts))
        for members, length in round_groups(prompts):
            whole = length // block * block
            held += -(-len(members) // per_row) * whole - len(members) * whole
        total += steps * held + tail
    return total


def round_groups(prompts: list[list[int]], min_shared: int = 64) -> list[tuple[list[int], int]]:
    """The prompts of a round that share a prefix: (members, its length in 16-token blocks) per group of
    two or more, each prompt's longest common prefix with another at least ``min_shared`` tokens and
    prompts with equal such prefixes grouped (as the engine groups the slots holding them)."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    depth = [0] * len(prompts)
    for a, b in zip(order, order[1:], strict=False):
        n = common_prefix(prompts[a], prompts[b]) // 16 * 16
        depth[a], depth[b] = max(depth[a], n), max(depth[b], n)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompts):
        if depth[i] >= min_shared:
            groups.setdefault(tuple(p[: depth[i]]), []).append(i)
    return [(m, len(k)) for k, m in groups.items() if len(m) > 1]


def dump_batches(rounds: list[list[list[int]]], steps: int, path: Path) -> None:
    """Each round's decode batch as ``bench/flex_decode.py --batches`` replays it: per slot its position
    half-way through the round's ``steps`` tokens, the groups sharing a prefix, and the prompts in sorted
    order with the tokens each shares with the next (block sharing; JSON lines)."""
    with path.open("w") as f:
        for prompts in rounds:
            positions = [len(p) + steps // 2 for p in prompts]
            order = sorted(range(len(prompts)), key=lambda i: prompts[i])
            lcp = [common_prefix(prompts[a], prompts[b]) for a, b in zip(order, order[1:], strict=False)]
            record = {"pos": positions, "groups": round_groups(prompts), "order": order, "lcp": lcp}
            f.write(json.dumps(record) + "\n")


def profile_reuse(fn: Any, device: str, name: str = "multi_turn_engine_reuse", syncs: bool = False) -> str:
    """Where one more run's time goes: torch.profiler's timeline (the GPU's idle time by host phase)
    and operators (by device time on CUDA), then, in a run of its own (its per-call overhead inflates
    the host's Python, which would swell the idle time of the phases that run it), cProfile's Python
    functions by cumulative time; as text tables."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        _, seconds = timed(fn, device)
    py = cProfile.Profile()
    py.enable()
    _, py_seconds = timed(fn, device)
    py.disable()
    sort = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    out = io.StringIO()
    out.write(
        f"# one {name} run under torch.profiler: {seconds:.1f} s; one more under cProfile: {py_seconds:.1f} s\n\n"
    )
    with tempfile.TemporaryDirectory() as tmp:  # the timeline: where the GPU waits for the host
        prof.export_chrome_trace(f"{tmp}/trace.json")
        trace = json.loads(Path(f"{tmp}/trace.json").read_text())
    out.write("## the GPU's idle time by host phase (record_function ranges mt.*, engine.*, session.*)\n")
    out.write(render_idle_by_phase(idle_by_phase(trace)))
    out.write(f"\n## operators by {sort}\n")
    out.write(prof.key_averages().table(sort_by=sort, row_limit=40, max_name_column_width=60))
    out.write("\n\n## Python functions by cumulative time (the cProfile run)\n")
    pstats.Stats(py, stream=out).sort_stats("cumulative").print_stats(60)
    if device == "cuda" and syncs:
        out.write("\n## host-device synchronizations of one more run (torch.cuda.set_sync_debug_mode)\n")
        out.write(sync_points(fn))
    return out.getvalue()


def sync_points(fn: Any) -> str:
    """Where ``fn`` makes the host wait for the GPU: torch warns on each synchronizing call in
    ``warn`` sync-debug mode; each warning is counted by the last frames of this project's code
    that led to it (the intended waits, ``tolist`` of a finished step, among them)."""
    import traceback
    import warnings

    where: Counter[str] = Counter()

    def record(*_: Any, **__: Any) -> None:
        ours = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(str(ROOT))]
        where[" < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours[-4:]))] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return "".join(f"{n:>7}  {stack}\n" for stack, n in where.most_common(25)) or "none\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the extracted bfcl_eval/data folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model (smoke test on CPU)")
    parser.add_argument("--limit", type=int, help="first N items per category only (smoke test)")
    parser.add_argument("--skip-generate", action="store_true", help="time the engine only (no baseline)")
    parser.add_argument(
        "--generate-batch",
        type=int,
        default=64,
        help="conversations per model.generate batch (its prefill of a batch of ~6k-token prompts at once "
        "must fit: 256 ran out of an H200's memory)",
    )
    parser.add_argument(
        "--generate-limit",
        type=int,
        default=0,
        metavar="N",
        help="the model.generate baseline on the first N conversations of each category, beside the engine "
        "on the same N (all 800 re-prefilled every round by generate take longer than a device command's "
        "10 minutes); 0: generate on all",
    )
    parser.add_argument(
        "--skip-reuse",
        action="store_true",
        help="leave out the engine's reuse runs (e.g. to time a baseline alone in a longer job)",
    )
    parser.add_argument(
        "--skip-fed",
        action="store_true",
        help="leave out the reuse run with each conversation at its own pace (fed=True)",
    )
    parser.add_argument(
        "--feed-chunk",
        nargs="+",
        type=int,
        default=[EngineConfig.feed_chunk],
        help="EngineConfig.feed_chunk values, one fed run each (finished replies answered, and their next "
        "prompts admitted, this many at a time)",
    )
    parser.add_argument(
        "--feed-overlap",
        action="store_true",
        help="one more fed run with EngineConfig.feed_overlap (the host's work for finished replies in a "
        "thread while the other slots decode; half the window starts, the rest joins meanwhile)",
    )
    parser.add_argument(
        "--simulate-round",
        type=float,
        default=0.85,
        metavar="SECONDS",
        help="--host-only: also time rounds whose generation is a sleep of this long (an H200's ~12 s of GPU "
        "work over 14 rounds), without and with prefetching first prompts (0: leave out)",
    )
    parser.add_argument(
        "--prefill-ramp",
        nargs="*",
        type=int,
        default=[],
        metavar="N",
        help="one more rounds run per N with EngineConfig.prefill_ramp=N (each admission's first prefill group "
        "at most N new tokens, each next twice as many), against the default (0: no ramp)",
    )
    parser.add_argument(
        "--sync-every",
        nargs="*",
        type=int,
        default=[],
        metavar="N",
        help="one more rounds run per N with EngineConfig.sync_every=N (decode steps between the host's reads "
        "of the finished flags; the default 8)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time the multi-turn runs this many times, every other pass in reverse order (rows NAME@2, ...)",
    )
    parser.add_argument(
        "--prefetch",
        nargs="*",
        type=int,
        default=[],
        metavar="N",
        help="one more rounds run per N with run_conversations(prefetch=N) (the default run: none): "
        "up to N next conversations' first "
        "prompts rendered and tokenized in a thread while each round generates",
    )
    parser.add_argument(
        "--profile-syncs",
        action="store_true",
        help="with --profile on CUDA: one more run under torch.cuda.set_sync_debug_mode, counting the host's "
        "waits for the GPU by where they happen",
    )
    parser.add_argument(
        "--profile-overlap",
        action="store_true",
        help="with --profile: profile the feed_overlap run instead of the rounds run",
    )
    parser.add_argument(
        "--profile-prefetch",
        type=int,
        default=0,
        metavar="N",
        help="with --profile: the profiled run prefetches N first prompts a round (run_conversations(prefetch=N))",
    )
    parser.add_argument(
        "--profile-fed",
        type=int,
        default=0,
        metavar="FEED_CHUNK",
        help="with --profile: profile a fed run with this feed_chunk instead of the rounds run",
    )
    parser.add_argument(
        "--whole-render",
        action="store_true",
        help="one more reuse run (first config) with every prompt rendered whole by apply_chat_template "
        "(ToolRenderer bypassed), against the default's tools rendered once per tool set",
    )
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="one more reuse run (first config) with the conversations started in the data's order "
        "(run_conversations(longest_first=False)), against the default's most user turns first",
    )
    parser.add_argument(
        "--skip-lanes",
        action="store_true",
        help="leave out the reuse run in two lanes (host work overlapped with the engine: overlap=True)",
    )
    parser.add_argument(
        "--skip-no-reuse", action="store_true", help="leave out the engine run that re-prefills every round"
    )
    parser.add_argument(
        "--decode-attention",
        nargs="+",
        default=["auto"],
        choices=["auto", *DECODE_KERNELS, "flex-own", "flex-blocks"],
        help="engine decode kernels to time, each on the single-turn items and the reuse run (the first also "
        "on the baselines); auto: the engine's choice (grouped on sm_90, flex on other GPUs, sdpa on the CPU); "
        "flex-own: flex with EngineConfig.shared_reads off (each slot reads its own copy); "
        "flex-blocks: flex with EngineConfig.share_blocks (each shared block from the first slot holding it)",
    )
    parser.add_argument(
        "--prefill-attention",
        nargs="+",
        default=["auto"],
        choices=["auto", "sdpa", "varlen", "packed"],
        help="keyed prefill kernels (EngineConfig.prefill_attention), each with every decode kernel (auto: the "
        "engine's choice, packed for bf16/fp16 on CUDA, sdpa elsewhere)",
    )
    parser.add_argument(
        "--flex-split",
        nargs="+",
        type=int,
        default=[0],
        help="EngineConfig.flex_split values (CTAs per slot and K/V head of the flex kernel; 0: torch's default)",
    )
    parser.add_argument(
        "--flex-rows",
        nargs="+",
        type=int,
        default=[EngineConfig.flex_rows],
        help="EngineConfig.flex_rows values (slots per row of the flex kernel; > 1: the packed layout)",
    )
    parser.add_argument(
        "--flex-options",
        nargs="+",
        default=["default"],
        help="flex decoding kernel options as BLOCK_N:STAGES:WARPS (EngineConfig.flex_options), 'default' "
        "(EngineConfig's) or 'pytorch' (none: PyTorch's choice)",
    )
    parser.add_argument(
        "--flex-cascade",
        nargs="+",
        type=int,
        default=[0],
        help="EngineConfig.flex_cascade values (members per level-1 row of the cascade layout; 0: off)",
    )
    parser.add_argument(
        "--compile-layers",
        nargs="+",
        type=int,
        choices=(0, 1),
        default=[0],
        help="EngineConfig.compile_layers values (1: the decode step's decoder layers torch.compile-d)",
    )
    parser.add_argument(
        "--attend-bucket", type=int, default=EngineConfig.attend_bucket, help="EngineConfig.attend_bucket"
    )
    parser.add_argument(
        "--prefill-tokens",
        nargs="+",
        type=int,
        default=[EngineConfig.prefill_tokens],
        help="EngineConfig.prefill_tokens values (tokens per prefill call: fewer, larger model forwards)",
    )
    parser.add_argument(
        "--grouped-settings",
        help="the grouped decode kernel's tunables, CHUNK:NODE_ROWS:PROGRAMS_PER_SM:BLOCK_N:NUM_WARPS:"
        "NUM_STAGES:HEADS_PER_ITEM (evaluation.generation.grouped.configure; bench/flex_decode.py --grouped)",
    )
    parser.add_argument(
        "--warm-multi-turn",
        action="store_true",
        help="one untimed reuse run per config first (the first timed run otherwise pays its kernels' "
        "compiles for the multi-turn cache shapes: 37.5 s first, 33.7 s second in one H200 run)",
    )
    parser.add_argument(
        "--dump-batches",
        type=Path,
        help="--host-only: write each round's decode batch (positions, prefix groups) for bench/flex_decode.py --batches",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the reuse engine once more under torch.profiler + cProfile; tables to this file",
    )
    parser.add_argument(
        "--host-only", action="store_true", help="time the host-side work alone (no model): see host_only()"
    )
    args = parser.parse_args()
    if args.grouped_settings:
        grouped.configure(args.grouped_settings)
    text = host_only(args) if args.host_only else run(args)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
