"""BFCL's multi-turn categories: drive a model through the conversations, executing its calls, and score.

Grain of a result row: one conversation (one item). The loop follows BFCL's function-calling
inference (``base_handler.inference_multi_turn_FC``): each turn's user messages are added (at a
turn where held-out functions come back, the functions are added to the tools and BFCL's fixed user
message is sent); the model replies; a reply with calls has them executed in the conversation's
environments (:class:`evaluation.bfcl.environments.EnvironmentWorker`) and one ``tool`` message per
result is appended, and the model is asked again; a reply with no call (or one that does not parse)
ends the turn. More than :data:`contracts.bfcl.MAX_STEPS_PER_TURN` steps in one turn force-quit the
conversation (BFCL then fails it: fewer turns than the answer has).

Limits of ours on top (:class:`Limits`): calls executed per step, characters of a result shown to
the model (the checker re-executes and sees whole results), seconds per environment request (an
overrun ends the conversation, counted), and prompt tokens (a conversation that outgrows the model's
context ends, counted). Every model reply of every conversation that is under way is generated in
one batch per round; on the engine each conversation keeps its KV cache between rounds, so a round
is many short prefills (the tokens new since the last reply) and decodes.

Scoring re-executes each conversation's decoded calls from the initial state beside the ground
truth (:func:`evaluation.bfcl.environments.check_conversation`, BFCL's state and response checks).
"""

from __future__ import annotations

import gc
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.bfcl import ADDED_FUNCTIONS_PROMPT, MAX_STEPS_PER_TURN, MultiTurnItem
from evaluation.bfcl.data import prompt_functions
from evaluation.bfcl.environments import EnvironmentWorker, StepTimeout, WorkerError, as_call
from evaluation.bfcl.parse import parse_tool_calls


@dataclass(frozen=True)
class Limits:
    """Per-step and per-conversation bounds (see the module docstring)."""

    max_steps_per_turn: int = MAX_STEPS_PER_TURN
    max_calls_per_step: int = 32
    max_result_chars: int = 4000
    step_timeout_s: float = 30.0
    #: prompt tokens a conversation may reach (None: the model's ``max_position_embeddings`` less
    #: the generation budget, when the config says)
    max_prompt_tokens: int | None = None


@dataclass
class _Conversation:
    item: MultiTurnItem
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    turn: int = -1
    steps_in_turn: int = 0
    decoded: list[list[list[dict[str, Any]]]] = field(default_factory=list)  # turn -> step -> calls
    texts: list[list[str]] = field(default_factory=list)
    stopped: str | None = None  # why it ended before the last turn (None: ran to the end)
    done: bool = False
    n_calls: int = 0


def _start_turn(conv: _Conversation) -> None:
    """Move to the next turn (or finish): user messages, and held-out functions coming back."""
    conv.turn += 1
    conv.steps_in_turn = 0
    if conv.turn >= len(conv.item.turns):
        conv.done = True
        return
    messages = list(conv.item.turns[conv.turn])
    added = conv.item.held_out.get(conv.turn)
    if added:
        conv.tools = conv.tools + prompt_functions(added, conv.item.category)
        if not messages:
            messages = [{"role": "user", "content": ADDED_FUNCTIONS_PROMPT}]
    conv.messages.extend(messages)
    conv.decoded.append([])
    conv.texts.append([])


def _prompt_budget(model: Any, max_new_tokens: int, limits: Limits) -> int | None:
    if limits.max_prompt_tokens is not None:
        return limits.max_prompt_tokens
    size = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(size) - max_new_tokens if isinstance(size, int) and size > max_new_tokens else None


def _prompt_tokens(tokenizer: Any, prompt: dict[str, Any]) -> int:
    from evaluation.generation.generate import render_prompt

    return len(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"])


def run_conversations(
    model: Any,
    tokenizer: Any,
    items: Sequence[MultiTurnItem],
    source_dir: str | os.PathLike[str],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    limits: Limits = Limits(),
    *,
    use_engine: bool = True,
    reuse: bool = True,
    overlap: bool = False,
    engine_totals: Counter[str] | None = None,
    engine_config: Any = None,
    fed: bool = False,
    longest_first: bool = True,
    prefetch: int = 0,
) -> list[dict[str, Any]]:
    """Run every conversation to its end; one response row per item (``decoded`` per turn and step).

    On the engine with ``reuse`` (when the model runs on it), each conversation keeps its KV cache
    between its rounds (:class:`evaluation.generation.generate.ChatSession`, keyed by the item's
    index): at most ``batch_size`` conversations are under way at once, the next one starting when
    one ends, and a round prefills only the tokens that are new since the conversation's last
    reply (conversations with the same tools share their prefix). The replies are the same tokens
    (exactly in fp32) as without reuse, where every round re-prefills every running conversation
    from its first token (all conversations at once). With ``fed`` (engine and reuse) each conversation
    goes at its own pace, in one engine call (:func:`_run_fed`): as soon as its reply is out its calls
    are executed and its next prompt rendered, tokenized and admitted, while the GPU decodes the
    others; the replies are the same as in rounds. Off by default: on an H200 over the 800 BFCL
    conversations with a random-weight model (whose replies all run to the token budget, so they end
    together) it was 0.92x the rounds' speed (40.3 s vs 37.0 s; more decode steps of fewer slots),
    with the GPU idle 18% of the time. Since then finished replies are answered before decoding
    resumes (the rounds' decode steps, each chunk's prefill overlapping the next chunk's host work):
    0.97-1.02x the rounds' time at ``EngineConfig.feed_chunk`` 128 (1.17x at 32); with
    ``EngineConfig.feed_overlap`` (the host's work in a thread beside the decode steps, half the window
    starting first) 1.06x (``bench/results/2026-12-04_bfcl_multi_turn_fed_overlap_h200.txt``).
    With ``overlap`` (engine and reuse only) the conversations under way run in two lanes of half the
    window each: while the engine generates one lane's round, the host executes the other lane's calls
    and renders and tokenizes its next prompts (:func:`_run_lanes`); the replies are the same. It is off
    by default: each lane decodes its own 64-odd steps, so the decode steps double: 1.4x the rounds'
    time on the CPU (where a step's cost is mostly fixed), 1.09x on an H200
    (``bench/results/2026-12-03_bfcl_multi_turn_render_fed_lanes_h200.txt``). ``engine_totals`` (on the engine) receives its counts:
    ``prefilled_tokens``, ``reused_tokens``, ``copied_tokens``, ``evictions``, decode positions.
    ``use_engine=False`` decodes with batched ``model.generate`` instead (the side-by-side baseline);
    ``engine_config`` (:class:`evaluation.generation.engine.EngineConfig`): the engine's other knobs.

    ``prefetch`` (rounds on the engine): each round, once its first decode steps are queued, the first
    prompts of up to this many conversations next in line are rendered and tokenized in a background
    thread (:meth:`_Rounds.prefetch_soon`); the same prompts and replies. Off by default: on an H200 over
    BFCL's 800 conversations it took the round's host work for joining conversations off the GPU's idle
    time (profile: idle 3.9 s of 15.8 s) but the timed runs did not show it: 0.97x the rounds' time
    without it in one call, 1.04x and 1.02x (three alternating pairs) in two others, within the spread
    between runs (``bench/results/2026-12-04_bfcl_multi_turn_prefetch_h200.txt``).

    With a window smaller than the items, ``longest_first`` starts the conversations with the most
    user turns first (a stable sort; :func:`schedule`): the longest chains of rounds begin at once and
    the short ones fill in behind, so the rounds stay full and end together. Over BFCL's 800
    conversations in a window of 256 that is 14 rounds (3,336 replies: the fewest possible) against
    17 in the data's order, whose last rounds ran 202, 148, 91, 47, 21 and 8 conversations. The rows
    come back in the items' order either way, and each conversation's replies do not depend on it
    (exactly so in fp32)."""
    from torch.profiler import record_function

    from evaluation.generation.generate import generate

    session = _session(model, tokenizer, max_new_tokens, batch_size, engine_config) if use_engine else None
    with _quiet_gc():  # a full collection scans only what the run allocates
        budget = _prompt_budget(model, max_new_tokens, limits)
        if session is not None and reuse:  # a slot's cache bounds the conversation
            budget = session.max_prompt_tokens if budget is None else min(budget, session.max_prompt_tokens)
        window = batch_size if session is not None and reuse else len(items)
        convs = []
        for item in items:
            conv = _Conversation(item, tools=prompt_functions(item.functions, item.category))
            _start_turn(conv)
            convs.append(conv)
        opened: set[int] = set()
        with EnvironmentWorker(source_dir, timeout_s=limits.step_timeout_s) as worker:
            # The worker process starts now and imports while the first round generates; a conversation's
            # environments are built while its first round generates (one that cannot be built ends the
            # conversation at its first reply, the reply unrecorded).
            worker.start()
            order = schedule(items) if longest_first and window < len(items) else list(range(len(items)))
            rounds = _Rounds(
                convs, order, session, tokenizer, budget, reuse, worker, opened, limits, prefetch=prefetch
            )
            try:
                if session is not None and reuse and overlap and window >= 2:
                    _run_lanes(rounds, window)
                elif session is not None and reuse and fed:
                    _run_fed(rounds, window)
                else:
                    while True:
                        active = [(i, convs[i]) for i in order if not convs[i].done][:window]
                        if not active:
                            break
                        with record_function("mt.prepare"):  # phases named for the profiler's timeline
                            batch = rounds.prepare(active)
                        if batch is None:
                            continue
                        active, prompts, encoded = batch
                        rounds.open_soon(active)  # the worker builds environments while the model generates
                        with record_function("mt.generate"):
                            if session is not None:
                                # and the next conversations' first prompts are tokenized once it decodes
                                keys = [i for i, _ in active] if reuse else None
                                texts = session.generate(encoded, keys, on_decode=rounds.prefetch_soon)
                            else:
                                texts = generate(
                                    model,
                                    tokenizer,
                                    prompts,
                                    max_new_tokens,
                                    batch_size,
                                    use_engine=use_engine,
                                )
                        with record_function("mt.finish"):
                            rounds.finish(active, texts)
            finally:
                rounds.close()
            for index in sorted(opened):
                try:
                    worker.close(str(index))
                except (WorkerError, StepTimeout):
                    pass
    if engine_totals is not None and session is not None:
        engine_totals.update(session.engine.totals)
    return [
        {
            "id": c.item.id,
            "category": c.item.category,
            "decoded": c.decoded,
            "texts": c.texts,
            "stopped": c.stopped,
            "n_calls": c.n_calls,
        }
        for c in convs
    ]


def schedule(items: Sequence[MultiTurnItem]) -> list[int]:
    """The items' indices, most user turns first (ties in the items' order): longest processing time
    first, so a window of conversations under way stays full until the end (see :func:`run_conversations`)."""
    return sorted(range(len(items)), key=lambda i: -len(items[i].turns))


@dataclass
class _Rounds:
    """The host side of a round: its prompts before generation, its replies' steps after."""

    convs: list[_Conversation]
    order: list[int]  # the conversations in the order they start (:func:`schedule`)
    session: Any
    tokenizer: Any
    budget: int | None
    reuse: bool
    worker: EnvironmentWorker
    opened: set[int]
    limits: Limits
    #: conversations whose environments are being opened -> the request's future (see :meth:`open_soon`)
    opening: dict[int, Any] = field(default_factory=dict)
    _pool: Any = None
    #: first prompts tokenized ahead, at most this many a round (see :meth:`prefetch_soon`; 0: none)
    prefetch: int = 0
    #: conversations given a prompt so far
    started: set[int] = field(default_factory=set)
    #: conversation -> (its message count then, its first prompt's ids), tokenized ahead
    _prefetched: dict[int, tuple[int, list[int]]] = field(default_factory=dict)
    _prefetching: tuple[list[tuple[int, int]], Any] | None = None
    _prefetch_pool: Any = None
    _switch: float | None = None  # the interpreter's switch interval before prefetching

    def close(self) -> None:
        """Wait for opens and prefetches under way (their sessions then close with the rest) and stop
        the threads."""
        for future in set(self.opening.values()):
            future.result()
        self.opened.update(self.opening)
        self.opening.clear()
        self._collect_prefetch()
        for pool in (self._pool, self._prefetch_pool):
            if pool is not None:
                pool.shutdown()
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None

    def prefetch_soon(self) -> None:
        """Start rendering and tokenizing, in a background thread, the first prompts of the next
        :attr:`prefetch` conversations in line that have not started: called once a round's first
        decode steps are queued (``on_decode`` of :meth:`ChatSession.generate`), so the host's work for
        the conversations that join later (544 of BFCL's 800, in a window of 256) runs while the GPU
        decodes instead of between rounds, and not during the round's admissions, whose host work the
        GPU waits on (started before them, it took the GIL from them: on an H200 the engine's host phases
        kept the GPU idle ~1 s longer over the run, as much as the prefetch saved). While prefetching,
        the interpreter's switch interval is 1 ms (the decode loop gets the GIL back sooner). The
        session serializes its tokenizer's use (:attr:`ChatSession.lock`), so the round's reply decoding
        waits for it if it runs late; the next :meth:`prepare` collects it."""
        from concurrent.futures import ThreadPoolExecutor

        if not self.prefetch or self.session is None or self._prefetching is not None:
            return
        ahead = [
            i
            for i in self.order
            if i not in self.started and i not in self._prefetched and not self.convs[i].done
        ][: self.prefetch]
        if not ahead:
            return
        if self._prefetch_pool is None:
            self._prefetch_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bfcl-prefetch")
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, 0.001))
        prompts = [{"messages": list(self.convs[i].messages), "tools": self.convs[i].tools} for i in ahead]
        future = self._prefetch_pool.submit(self.session.encode, prompts, ahead if self.reuse else None)
        self._prefetching = ([(i, len(p["messages"])) for i, p in zip(ahead, prompts, strict=True)], future)

    def _collect_prefetch(self) -> None:
        if self._prefetching is None:
            return
        ahead, future = self._prefetching
        self._prefetching = None
        for (i, n), ids in zip(ahead, future.result(), strict=True):
            self._prefetched[i] = (n, ids)

    def _encode(
        self, active: list[tuple[int, _Conversation]], prompts: list[dict[str, Any]]
    ) -> list[list[int]]:
        """The prompts' ids: those tokenized ahead (a first prompt, its messages unchanged since) as
        they are, the rest in one call."""
        self._collect_prefetch()
        ids: list[list[int] | None] = [None] * len(active)
        for j, (i, conv) in enumerate(active):
            ready = self._prefetched.pop(i, None)
            if ready is not None and ready[0] == len(conv.messages):
                ids[j] = ready[1]
        rest = [j for j, e in enumerate(ids) if e is None]
        keys = [active[j][0] for j in rest] if self.reuse else None
        for j, e in zip(rest, self.session.encode([prompts[j] for j in rest], keys), strict=True):
            ids[j] = e
        return ids  # type: ignore[return-value]

    def prepare(
        self, active: list[tuple[int, _Conversation]]
    ) -> tuple[list[tuple[int, _Conversation]], list[dict[str, Any]], list[list[int]] | None] | None:
        """The round's prompts (and token ids, on the engine); a conversation whose prompt outgrew the
        budget ends (``prompt_too_long``). ``None`` when none is left."""
        prompts = [{"messages": list(c.messages), "tools": c.tools} for _, c in active]
        self.started.update(i for i, _ in active)
        encoded = self._encode(active, prompts) if self.session is not None else None
        if self.budget is not None:
            lengths = (
                [len(e) for e in encoded]
                if encoded is not None
                else [_prompt_tokens(self.tokenizer, p) for p in prompts]
            )
            keep = [j for j, n in enumerate(lengths) if n <= self.budget]
            for j in set(range(len(active))) - set(keep):
                active[j][1].done, active[j][1].stopped = True, "prompt_too_long"
            active, prompts = [active[j] for j in keep], [prompts[j] for j in keep]
            encoded = [encoded[j] for j in keep] if encoded is not None else None
        return (active, prompts, encoded) if active else None

    def open_soon(self, active: list[tuple[int, _Conversation]]) -> None:
        """Start opening the environments of the conversations in ``active`` not opened yet, in a
        background thread (:meth:`finish` collects the outcome): the worker builds them while the
        engine generates the round. Opened one request a round trip at the first reply, BFCL's 800
        conversations' environments kept an H200 idle 5.3 s of a 29 s run (profiler, mt.finish)."""
        from concurrent.futures import ThreadPoolExecutor

        new = [(i, c) for i, c in active if i not in self.opened and i not in self.opening]
        if not new:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bfcl-open")
        entries = [(str(i), c.item.entry()) for i, c in new]
        future = self._pool.submit(self.worker.open_many, entries)
        for i, _ in new:
            self.opening[i] = future

    def finish(self, active: list[tuple[int, _Conversation]], texts: list[str]) -> None:
        """Record the replies, execute their calls (a conversation's environments opened by its first:
        those :meth:`open_soon` started are waited for, the others opened now, in one request). A
        conversation whose environments could not be built ends there, its reply not recorded."""
        self.open_soon(active)
        errors: dict[str, str | None] = {}
        for future in {id(f): f for i, _ in active if (f := self.opening.get(i)) is not None}.values():
            errors.update(future.result())
        for (index, conv), text in zip(active, texts, strict=True):
            if index in self.opening:
                del self.opening[index]
                self.opened.add(index)  # closed at the end, built or not
                if errors.get(str(index)) is not None:
                    conv.done, conv.stopped = True, f"environment_error: {errors[str(index)]}"
                    continue
            _step(self.worker, str(index), conv, text, self.limits)
        if self.session is not None:
            for index, conv in active:
                if conv.done:
                    self.session.forget(index)  # under its lock: a prefetch may be encoding


def _run_fed(rounds: _Rounds, window: int) -> None:
    """Every conversation at its own pace, on one engine call (``Engine.generate_ids(feed=)``): at most
    ``window`` are under way; when a reply is out the engine hands it back while its next decode steps
    run, and the host records it, executes its calls, and renders and tokenizes the conversation's
    next prompt (or the next waiting conversation's first), which the engine admits at once."""
    from collections import deque

    from torch.profiler import record_function

    session, convs = rounds.session, rounds.convs
    waiting = deque(rounds.order)
    running: set[int] = set()  # conversations with a prompt in the engine

    def admit(members: list[int], limit: int = window) -> list[tuple[int, list[int]]]:
        """Prompts of ``members`` (continuing) and of waiting conversations, up to ``limit`` under way."""
        out: list[tuple[int, list[int]]] = []
        while True:
            while len(running) + len(members) < limit and waiting:
                i = waiting.popleft()
                if not convs[i].done:
                    members.append(i)
            if not members:
                return out
            with record_function("mt.prepare"):
                batch = rounds.prepare([(i, convs[i]) for i in members])
            members = []
            if batch is not None:  # a prompt that outgrew the budget ended its conversation
                active, _, encoded = batch
                rounds.open_soon(active)
                for (i, _), ids in zip(active, encoded, strict=True):
                    running.add(i)
                    out.append((i, ids))

    def feed(done: list[tuple[Any, list[int]]]) -> list[tuple[int, list[int]]]:
        for key, _ in done:
            running.discard(key)
        with record_function("mt.finish"):
            rounds.finish([(key, convs[key]) for key, _ in done], session.decode([ids for _, ids in done]))
        return admit([key for key, _ in done if not convs[key].done])

    # overlapped (EngineConfig.feed_overlap): half the window first; the engine asks for the rest while
    # that half decodes, and the halves then take turns (one decodes while the host answers the other)
    first = admit([], window - window // 2 if session.engine.config.feed_overlap else window)
    if first:
        keys = [key for key, _ in first]
        session.engine.generate_ids([ids for _, ids in first], session.max_new_tokens, keys=keys, feed=feed)


def _run_lanes(rounds: _Rounds, window: int) -> None:
    """Rounds in two lanes, so host and engine work at once. The engine runs in one worker thread and
    takes one call at a time, in the order submitted; each lane has its half of the engine's slots
    (``slot_range``), so a lane's call decodes its own slots only and never evicts the other lane's
    conversations. The calling thread does everything else: tokenizer (encode, decode), environments,
    bookkeeping. A conversation that ends hands its place in its lane to the next one waiting."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from torch.profiler import record_function

    session, convs = rounds.session, rounds.convs
    waiting = deque(rounds.order)
    lanes: list[list[int]] = [[], []]
    sizes = (window - window // 2, window // 2)
    ranges = (
        range(0, sizes[0]),
        range(sizes[0], window),
    )  # each lane's slots: its decode steps compute these

    def prepare(lane: int) -> tuple[list[tuple[int, _Conversation]], Any] | None:
        while True:
            members = [i for i in lanes[lane] if not convs[i].done]
            while len(members) < sizes[lane] and waiting:
                i = waiting.popleft()
                if not convs[i].done:
                    members.append(i)
            lanes[lane] = members
            if not members:
                return None
            batch = rounds.prepare([(i, convs[i]) for i in members])
            if batch is not None:
                rounds.open_soon(batch[0])
                return batch[0], batch[2]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine") as pool:
        queued: deque[tuple[int, list[tuple[int, _Conversation]], Any]] = deque()

        def submit(lane: int) -> None:
            batch = prepare(lane)
            if batch is not None:
                active, encoded = batch
                keys = [i for i, _ in active]
                future = pool.submit(
                    session.engine.generate_ids,
                    encoded,
                    session.max_new_tokens,
                    keys=keys,
                    slot_range=ranges[lane],
                )
                queued.append((lane, active, future))

        submit(0)
        submit(1)  # tokenized while lane 0 generates
        while queued:
            lane, active, future = queued.popleft()
            with record_function("mt.wait"):
                ids = future.result()
            with record_function("mt.finish"):
                rounds.finish(active, session.decode(ids))  # while the other lane generates
            with record_function("mt.prepare"):
                submit(lane)


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """The objects alive at the start (the model's modules, the tokenizer, every item's data: ~380k with
    BFCL's 800 conversations) moved out of the cyclic collector's sight for the run (``gc.freeze``), so
    its full collections scan only what the run allocates. On the CPU VM's host-only run of the 800
    conversations the collector's time fell from 0.99-1.10 s to 0.66-0.81 s (of ~11 s). Left alone when
    objects are frozen already (``gc.unfreeze`` would thaw someone else's).

    And the young generations are collected less often (thresholds at least :data:`GC_THRESHOLDS`, the
    caller's back after): a round allocates token-id lists of thousands of items, message dicts and
    prompt texts by the thousand, and each collection of the young generation walks every one still
    alive; with Python's defaults (700, 10) the collector then took 0.44 s of a 2.2 s host-only run (195
    young and 17 middle collections), at (50,000, 20) 0.07 s (2), the run 1.7 s (CPU VM). The run makes
    few reference cycles, so fewer collections hold little garbage longer."""
    thresholds = gc.get_threshold()
    # a threshold of 0 (collection off) stays off
    gc.set_threshold(*(t and max(t, floor) for t, floor in zip(thresholds, GC_THRESHOLDS, strict=False)))
    frozen = not gc.get_freeze_count()
    if frozen:
        gc.freeze()
    try:
        yield
    finally:
        if frozen:
            gc.unfreeze()
        gc.set_threshold(*thresholds)


#: the least collection thresholds of the cyclic collector during :func:`run_conversations` (see ``_quiet_gc``)
GC_THRESHOLDS = (50_000, 20, 10)


def _session(model: Any, tokenizer: Any, max_new_tokens: int, slots: int, config: Any = None) -> Any:
    """A :class:`ChatSession` on the engine, or ``None`` when the model does not run on it."""
    from evaluation.generation.generate import ChatSession, engine_supported

    if not engine_supported(model):
        return None
    return ChatSession(model, tokenizer, max_new_tokens, slots, config=config)


def _step(worker: EnvironmentWorker, sid: str, conv: _Conversation, text: str, limits: Limits) -> None:
    """One model reply: record it, execute its calls (or end the turn), append the results."""
    parsed = parse_tool_calls(text)
    calls = parsed.calls if parsed.ok else []
    conv.texts[conv.turn].append(text)
    conv.decoded[conv.turn].append(calls)
    conv.messages.append({"role": "assistant", "content": text})
    if not calls:
        _start_turn(conv)
        return
    executed = calls[: limits.max_calls_per_step]
    try:
        results = worker.execute(sid, executed)
    except (StepTimeout, WorkerError) as exc:
        conv.done, conv.stopped = True, f"environment_error: {exc}"
        return
    results += [
        f"Error during execution: more than {limits.max_calls_per_step} calls in one step; not executed"
    ] * (len(calls) - len(executed))
    conv.n_calls += len(calls)
    for result in results:
        shown = (
            result if len(result) <= limits.max_result_chars else result[: limits.max_result_chars] + " ..."
        )
        conv.messages.append({"role": "tool", "content": shown})
    conv.steps_in_turn += 1
    if conv.steps_in_turn > limits.max_steps_per_turn:
        conv.done, conv.stopped = True, "step_limit"


def _turns_of(response: Any) -> Any:
    """The per-turn decoded calls of a response row (``decoded``) or a bare list of turns."""
    if isinstance(response, Mapping):
        return response.get("decoded")
    return response


def validate_turns(turns: Any) -> str | None:
    """Why ``turns`` is not a list of turns of steps of calls (``None`` when it is)."""
    if not isinstance(turns, list):
        return "decoded must be a list of turns"
    for t, steps in enumerate(turns):
        if not isinstance(steps, list):
            return f"turn {t} must be a list of steps"
        for s, step in enumerate(steps):
            if not isinstance(step, list):
                return f"turn {t} step {s} must be a list of calls"
            for call in step:
                if as_call(call).name in ("<malformed>",):
                    return f"turn {t} step {s}: a call is a {{name: {{arguments}}}} object or a string"
    return None


def score_conversations(
    items: Sequence[MultiTurnItem],
    responses: Sequence[Any] | Mapping[str, Any],
    source_dir: str | os.PathLike[str],
    step_timeout_s: float = 120.0,
) -> list[dict[str, Any]]:
    """One verdict row per item, in the shape :func:`evaluation.bfcl.runner.summarize` reads.

    ``responses`` is aligned with ``items`` or keyed by item id; each a row with ``decoded`` (turns ->
    steps -> calls) or the turns themselves. A missing response is wrong (``missing_response``); a
    conversation whose check overran its time limit is wrong (``multi_turn:check_timeout``), and so is
    one whose environments could not be built (``multi_turn:environment_error``); neither stops the rest.
    """
    rows = []
    with EnvironmentWorker(source_dir, timeout_s=step_timeout_s) as worker:
        for index, item in enumerate(items):
            response = responses.get(item.id) if isinstance(responses, Mapping) else responses[index]
            turns = _turns_of(response)
            if response is None:
                verdict = {"valid": False, "error_type": "missing_response", "errors": ["no response"]}
            else:
                try:
                    verdict = worker.check(item.entry(), turns, item.ground_truth)
                except StepTimeout as exc:
                    verdict = {"valid": False, "error_type": "multi_turn:check_timeout", "errors": [str(exc)]}
                except WorkerError as exc:  # e.g. an environment that cannot load this item's scenario
                    verdict = {
                        "valid": False,
                        "error_type": "multi_turn:environment_error",
                        "errors": [str(exc)],
                    }
            row = {
                "id": item.id,
                "category": item.category,
                "decoded": turns,
                "valid": bool(verdict["valid"]),
                "error_type": verdict.get("error_type", ""),
                "errors": verdict.get("errors", []),
            }
            if isinstance(response, Mapping):
                for key in ("texts", "stopped", "n_calls"):
                    if key in response:
                        row[key] = response[key]
            rows.append(row)
    return rows


def stop_reasons(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Conversations that ended early, by reason (the limits' counts)."""
    return dict(Counter(str(r["stopped"]).split(":")[0] for r in rows if r.get("stopped")))


def has_environment_source(source_dir: str | os.PathLike[str] | None) -> bool:
    """Whether ``source_dir`` holds the extracted environment classes."""
    return source_dir is not None and (Path(source_dir) / "gorilla_file_system.py").is_file()
