"""BFCL multi-turn: parsing calls without eval, dispatch to environment methods in a worker process,
BFCL's state and response checks, the conversation loop, and the whole evaluation path."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from contracts.bfcl import ADDED_FUNCTIONS_PROMPT, MULTI_TURN_CATEGORIES, load_multi_turn_category
from contracts.chat import format_tool_calls
from evaluation.bfcl.environments import (
    Call,
    EnvironmentWorker,
    StepTimeout,
    WorkerError,
    as_call,
    parse_call,
)
from evaluation.bfcl.multi_turn import score_conversations, validate_turns
from evaluation.bfcl.runner import summarize


def _items(fixtures_dir, category=None):
    names = [category] if category else MULTI_TURN_CATEGORIES
    return [item for name in names for item in load_multi_turn_category(fixtures_dir, name)]


def _reference(item):
    """The ground truth as a model's turns (one step per non-empty turn)."""
    return [[list(calls)] if calls else [] for calls in item.ground_truth]


# ------------------------------------------------------------------------------ no environments
def test_calls_are_parsed_never_evaluated():
    assert parse_call("mv(source='a.txt', destination='b')") == Call(
        "mv", (), {"source": "a.txt", "destination": "b"}
    )
    assert parse_call("sort('f.pdf')") == Call("sort", ("f.pdf",), {})
    assert parse_call("mean(numbers=[1, -2.5, 3])").kwargs == {"numbers": [1, -2.5, 3]}
    assert parse_call("ls(a=true)").error == "name 'true' is not defined"
    for hostile in ("__import__('os').system('true')", "ls(a=open('/etc/passwd').read())", "ls(", "1 + 1"):
        call = parse_call(hostile)
        assert call.error, hostile
    assert as_call({"cd": {"folder": "x"}}) == Call("cd", (), {"folder": "x"})
    assert as_call(["not", "a", "call"]).error
    assert Call("cd", (), {"folder": "x"}).text() == "cd(folder='x')"
    assert validate_turns([[[{"cd": {"folder": "x"}}, "ls()"]], []]) is None
    assert "list of steps" in validate_turns([{"cd": {}}])
    assert "list of turns" in validate_turns({"cd": {}})


def test_load_multi_turn_items(fixtures_dir):
    base = _items(fixtures_dir, "multi_turn_base")
    assert [i.id for i in base] == ["multi_turn_base_29", "multi_turn_base_47"]
    assert base[1].involved_classes == ["GorillaFileSystem", "MathAPI"]
    assert {"cd", "mean", "standard_deviation"} <= {f["name"] for f in base[1].functions}
    assert not base[1].held_out and not base[1].long_context
    missed = _items(fixtures_dir, "multi_turn_miss_func")[1]
    assert [f["name"] for f in missed.held_out[2]] == ["mean"]  # held out, then added back at turn 2
    assert "mean" not in {f["name"] for f in missed.functions}
    assert missed.turns[2] == [] and missed.ground_truth[1] == []
    assert _items(fixtures_dir, "multi_turn_long_context")[0].entry()["long_context"] is True
    with pytest.raises(ValueError, match="not a multi-turn"):
        load_multi_turn_category(fixtures_dir, "simple_python")


FAKE_ENV = """
import time
class GorillaFileSystem:
    def _load_scenario(self, scenario, long_context=False):
        self.count = scenario.get("count", 0)
    def add(self, n=1):
        self.count += n
        return {"count": self.count}
    def spin(self):
        while True:
            time.sleep(0.01)
    def boom(self):
        raise KeyError("nope")
"""


def test_worker_dispatches_to_methods_and_survives_a_hung_call(tmp_path):
    (tmp_path / "gorilla_file_system.py").write_text(FAKE_ENV)
    entry = {
        "id": "x_0",
        "initial_config": {"GorillaFileSystem": {"count": 2}},
        "involved_classes": ["GorillaFileSystem"],
    }
    with EnvironmentWorker(tmp_path, timeout_s=2) as worker:
        worker.open("a", entry)
        results = worker.execute(
            "a",
            [{"add": {"n": 3}}, "add()", "print('hi')", "os.system('true')", "exit()", "boom()", "add(m=1)"],
        )
        assert results[:2] == ['{"count": 5}', '{"count": 6}']
        assert results[2] == "Error during execution: name 'print' is not defined"
        assert results[3] == "Error during execution: name 'os' is not defined"
        assert results[4] == "Error during execution: Function call exit is not allowed."
        assert results[5] == "Error during execution: 'nope'"
        assert "unexpected keyword argument 'm'" in results[6]
        with pytest.raises(StepTimeout):
            worker.execute("a", ["spin()"])
        assert worker.restarts == 1
        with pytest.raises(WorkerError, match="KeyError"):  # the session died with the old worker
            worker.execute("a", ["add()"])
        verdict = worker.check(entry, [[["add(n=2)"]]], [["add(n=1)", "add(n=1)"]])
        assert verdict["valid"] is False and verdict["error_type"] == "multi_turn:execution_response_mismatch"
        assert worker.check(entry, [[["add(n=1)"], ["add(n=1)"]]], [["add(n=1)", "add(n=1)"]])["valid"]
    with pytest.raises(WorkerError, match="environment source not found"):
        EnvironmentWorker(tmp_path / "nowhere")


def test_worker_opens_many_sessions_in_one_request_from_any_thread(tmp_path):
    """``open_many``: each session opened or its reason given (the others unharmed), one request from a
    background thread while another thread's requests wait their turn; ``stop`` ends the child."""
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "gorilla_file_system.py").write_text(FAKE_ENV)
    entry = {
        "id": "x_0",
        "initial_config": {"GorillaFileSystem": {"count": 2}},
        "involved_classes": ["GorillaFileSystem"],
    }
    broken = {**entry, "involved_classes": ["NoSuchClass"]}
    with EnvironmentWorker(tmp_path, timeout_s=5) as worker:
        assert worker.open_many([]) == {}
        with ThreadPoolExecutor(2) as pool:
            many = pool.submit(worker.open_many, [(f"s{i}", entry) for i in range(50)] + [("bad", broken)])
            mine = [pool.submit(worker.open, f"t{i}", entry) for i in range(5)]
            outcome = many.result()
            assert [f.result() for f in mine] == [None] * 5
        assert all(outcome[f"s{i}"] is None for i in range(50)) and "NoSuchClass" in outcome["bad"]
        assert worker.execute("s49", ["add()"]) == ['{"count": 3}']
        assert worker.execute("t4", [{"add": {"n": 1}}]) == ['{"count": 3}']
        with pytest.raises(WorkerError, match="KeyError"):
            worker.execute("bad", ["add()"])
        child = worker._proc
    assert not child.is_alive()


# ------------------------------------------------------------------- the official environments# ------------------------------------------------------------------- the official environments
def test_ground_truth_is_valid_and_perturbations_get_bfcls_verdicts(fixtures_dir, bfcl_environments):
    items = _items(fixtures_dir)
    base47 = next(i for i in items if i.id == "multi_turn_base_47")
    miss29 = next(i for i in items if i.id == "multi_turn_miss_func_29")
    dropped = _reference(base47)
    dropped[1] = [[base47.ground_truth[1][0]]]  # mean(...) left out: its result is missing
    guessed = _reference(miss29)
    guessed[0] = [["touch(file_name='guess.pdf')"]]  # acts in the turn where it should have asked
    responses = [_reference(i) for i in items] + [
        dropped,
        _reference(base47)[:-1],
        [[], *_reference(base47)[1:]],
        [[["find(path='.')", "rm(file_name='student_record.txt')"]], *_reference(base47)[1:]],
        guessed,
        {"decoded": [[[{"find": {"path": "."}}]], [[{"cat": {"file_name": "student_record.txt"}}]], []]},
    ]
    rows = score_conversations(
        [*items, base47, base47, base47, base47, miss29, base47], responses, bfcl_environments
    )
    assert all(r["valid"] for r in rows[: len(items)]), [r for r in rows if not r["valid"]][:1]
    assert [r["error_type"] for r in rows[len(items) :]] == [
        "multi_turn:execution_response_mismatch",  # a call dropped: its result is missing
        "multi_turn:force_terminated",  # stopped early
        "multi_turn:empty_turn_model_response",
        "multi_turn:instance_state_mismatch",  # an extra state-changing call
        "multi_turn:instance_state_mismatch",
        "multi_turn:execution_response_mismatch",
    ]
    summary = summarize(rows[: len(items)])["summary"]
    assert summary["multi_turn"] == {"accuracy": 1.0, "n": len(items), "complete": True}
    broken = dataclasses.replace(base47, involved_classes=["NoSuchClass"])  # bad input: a counted verdict
    (row,) = score_conversations([broken], [_reference(base47)], bfcl_environments)
    assert row["error_type"] == "multi_turn:environment_error"


def test_conversation_loop_executes_calls_and_feeds_results_back(
    fixtures_dir, bfcl_environments, monkeypatch
):
    """A scripted model answers each user turn with the ground truth's calls, then stops."""
    import evaluation.generation.generate as gen
    from evaluation.bfcl.multi_turn import Limits, run_conversations

    items = _items(fixtures_dir, "multi_turn_miss_func")
    seen = []

    def scripted(model, tokenizer, prompts, max_new_tokens, batch_size, use_engine=True):
        replies = []
        for prompt in prompts:
            messages = prompt["messages"]
            seen.append(prompt)
            if messages[-1]["role"] != "user":
                replies.append("Done.")
                continue
            item = next(i for i in items if i.turns[0][0]["content"] == messages[0]["content"])
            turn = sum(m["role"] == "user" for m in messages) - 1
            calls = [{c.name: c.kwargs} for c in map(parse_call, item.ground_truth[turn])]
            replies.append(format_tool_calls(calls) if calls else "Which function should I use?")
        return replies

    monkeypatch.setattr(gen, "generate", scripted)
    rows = run_conversations(None, None, items, bfcl_environments, limits=Limits(max_prompt_tokens=None))
    assert [len(r["decoded"]) for r in rows] == [len(i.ground_truth) for i in items]
    assert all(r["stopped"] is None for r in rows)
    added = [p for p in seen if p["messages"][-1]["content"] == ADDED_FUNCTIONS_PROMPT]
    assert added and all(
        "du" in {t["name"] for t in p["tools"]} or "mean" in {t["name"] for t in p["tools"]} for p in added
    )
    tool_messages = [m for p in seen for m in p["messages"] if m["role"] == "tool"]
    assert any(
        '"current_working_directory"' in m["content"] or "VisionX" in m["content"] for m in tool_messages
    )
    scored = score_conversations(items, rows, bfcl_environments)
    assert [r["valid"] for r in scored] == [True, True]


def test_environment_that_cannot_be_built_ends_only_its_conversation(
    fixtures_dir, bfcl_environments, monkeypatch
):
    """Environments open at a conversation's first reply: a broken one ends that conversation (its reply
    not recorded, a counted reason) while the other runs to its end."""
    import evaluation.generation.generate as gen
    from evaluation.bfcl.multi_turn import Limits, run_conversations

    good = _items(fixtures_dir, "multi_turn_base")[0]
    broken = dataclasses.replace(good, id="broken", involved_classes=["NoSuchClass"])
    monkeypatch.setattr(
        gen, "generate", lambda m, t, prompts, n, b, use_engine=True: ["Done."] * len(prompts)
    )
    rows = run_conversations(
        None, None, [broken, good], bfcl_environments, limits=Limits(max_prompt_tokens=None)
    )
    assert rows[0]["stopped"].startswith("environment_error") and rows[0]["texts"] == [[]]
    assert rows[1]["stopped"] is None and [len(t) for t in rows[1]["texts"]] == [1] * len(good.turns)


def test_step_limit_force_quits_the_conversation(fixtures_dir, bfcl_environments, monkeypatch):
    import evaluation.generation.generate as gen
    from evaluation.bfcl.multi_turn import Limits, run_conversations

    items = _items(fixtures_dir, "multi_turn_base")[:1]
    monkeypatch.setattr(
        gen,
        "generate",
        lambda m, t, prompts, n, b, use_engine=True: [format_tool_calls([{"pwd": {}}])] * len(prompts),
    )
    rows = run_conversations(None, None, items, bfcl_environments, limits=Limits(max_steps_per_turn=3))
    assert (
        rows[0]["stopped"] == "step_limit"
        and len(rows[0]["decoded"]) == 1
        and len(rows[0]["decoded"][0]) == 4
    )
    assert (
        score_conversations(items, rows, bfcl_environments)[0]["error_type"] == "multi_turn:force_terminated"
    )


def test_one_multi_turn_item_through_the_evaluation_path(
    tmp_path, model_dir, fixtures_dir, bfcl_environments
):
    """The micro profile's BFCL settings, one multi-turn item: load the model, converse, score, summarize,
    write results, and the scorecard shows the multi_turn group."""
    from assets.profile import load_settings
    from evaluation.pipeline import run_bfcl
    from evaluation.scorecard import build_scorecard

    cfg = load_settings("micro").evaluation.bfcl.model_dump()
    cfg.update(categories=["multi_turn_base"], limit_per_category=1, environments_dir=str(bfcl_environments))
    result = run_bfcl(model_dir, fixtures_dir, cfg, tmp_path / "out")
    assert result["n_items"] == 1 and result["categories"]["multi_turn_base"]["n"] == 1
    assert set(result["summary"]) == {"multi_turn", "overall_mean"}
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["summary"]["multi_turn"]["n"] == 1
    card = build_scorecard({"bfcl": result})
    assert any(r["metric"] == "multi_turn (partial)" for r in card["rows"])  # one of its four categories
    assert Path(tmp_path / "out").is_dir()


def test_multi_turn_categories_take_their_own_limit(tmp_path, model_dir, fixtures_dir, bfcl_environments):
    """``multi_turn_limit_per_category`` caps the conversations apart from the single-turn items (a quick
    profile runs fewer of them); unset, the shared limit applies to both."""
    from evaluation.pipeline import run_bfcl

    cfg = {
        "categories": ["simple_python", "multi_turn_base", "multi_turn_miss_func"],
        "limit_per_category": 2,
        "multi_turn_limit_per_category": 1,
        "max_new_tokens": 6,
        "batch_size": 4,
        "environments_dir": str(bfcl_environments),
    }
    result = run_bfcl(model_dir, fixtures_dir, cfg, tmp_path / "capped")
    assert {c: s["n"] for c, s in result["categories"].items()} == {
        "simple_python": 2,
        "multi_turn_base": 1,
        "multi_turn_miss_func": 1,
    }
    assert result["config"]["multi_turn_limit_per_category"] == 1
    assert sum(result["multi_turn_stopped"].values()) <= 2 and result["summary"]["multi_turn"]["n"] == 2
    shared = run_bfcl(
        model_dir, fixtures_dir, {**cfg, "multi_turn_limit_per_category": None}, tmp_path / "shared"
    )
    assert {c: s["n"] for c, s in shared["categories"].items()} == dict.fromkeys(cfg["categories"], 2)


def test_checkpoint_evaluation_runs_the_multi_turn_categories(
    tmp_path, model_dir, fixtures_dir, bfcl_environments
):
    """An ablation checkpoint's evaluation with BFCL's multi-turn categories configured (as the gpu profile
    does) runs them as conversations -- it used to hand them to the single-turn loader, which refused
    them -- and its scores carry BFCL's summary groups; the log-likelihood covers the single-turn items."""
    from evaluation.checkpoint import EvalInputs, evaluate_checkpoint, flat_scores
    from evaluation.config import EvaluationConfig

    unseen = tmp_path / "unseen"
    unseen.mkdir()
    (unseen / "items.jsonl").write_text("")
    (unseen / "possible_answers.jsonl").write_text("")
    (tmp_path / "heldout").mkdir()
    cfg = EvaluationConfig.model_validate(
        {
            "bfcl": {
                "categories": ["simple_python", "multi_turn_base", "multi_turn_long_context"],
                "limit_per_category": 2,
                "multi_turn_limit_per_category": 1,
                "max_new_tokens": 6,
                "batch_size": 4,
                "environments_dir": str(bfcl_environments),
            }
        }
    )
    inputs = EvalInputs(fixtures_dir, unseen, tmp_path / "heldout")
    result = evaluate_checkpoint(model_dir, inputs, cfg, tmp_path / "out")
    bfcl = result["bfcl"]
    assert {c: s["n"] for c, s in bfcl["categories"].items()} == {
        "simple_python": 2,
        "multi_turn_base": 1,
        "multi_turn_long_context": 1,
    }
    assert set(bfcl["ci"]) == {"simple_python", "multi_turn_base", "multi_turn_long_context", "all"}
    assert "multi_turn_stopped" in bfcl and bfcl["summary"]["multi_turn"]["complete"] is False
    scores = flat_scores(result)
    assert scores["bfcl.group.multi_turn"] == bfcl["summary"]["multi_turn"]["accuracy"]
    assert "bfcl.acc.multi_turn_base" in scores
    loglik = result["loglik_bfcl"]
    assert loglik["all"]["n_items"] + sum(loglik["skipped"].values()) == 2  # the single-turn items only
    rows = (tmp_path / "out" / "items_bfcl.jsonl").read_text().splitlines()
    assert len(rows) == 4 and {json.loads(r)["category"] for r in rows} >= {"multi_turn_base"}


def test_engine_with_kv_reuse_decodes_the_same_conversations(
    fixtures_dir, bfcl_environments, tokenizer, tiny_model
):
    """Two real conversations (~6,000-token prompts with this tokenizer) that share a system prefix:
    the engine keeping each conversation's cache between rounds gives the same replies as re-prefilling
    every round, and prefills a fraction of the tokens."""
    from collections import Counter

    from evaluation.bfcl.multi_turn import run_conversations

    items = [_items(fixtures_dir, "multi_turn_base")[0], _items(fixtures_dir, "multi_turn_miss_func")[0]]
    totals: Counter[str] = Counter()
    reused = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 2, engine_totals=totals)
    again = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 2, reuse=False)
    fed = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 2, fed=True)
    assert reused == again == fed  # in rounds, re-prefilled, each at its own pace: the same
    assert sum(len(steps) for r in reused for steps in r["decoded"]) >= 2 * len(items)  # several rounds each
    assert totals["copied_tokens"] > 1000  # the second conversation copied the shared function docs
    assert totals["prefilled_tokens"] < 0.4 * (
        totals["prefilled_tokens"] + totals["reused_tokens"] + totals["copied_tokens"]
    )


def test_longest_conversations_start_first_and_the_rounds_stay_full(
    fixtures_dir, bfcl_environments, monkeypatch
):
    """A window of 2 over conversations of 3, 3 and 4 turns: in the items' order the two 3-turn ones run
    together and the 4-turn one alone after them (7 rounds); longest first it starts at once and the
    others follow it (6 rounds). The rows are the same, in the items' order."""
    from types import SimpleNamespace

    import evaluation.bfcl.multi_turn as mt

    items = [*_items(fixtures_dir, "multi_turn_base"), _items(fixtures_dir, "multi_turn_miss_func")[0]]
    assert [len(i.turns) for i in items] == [3, 3, 4]
    assert mt.schedule(items) == [2, 0, 1]

    class Session:  # the engine's chat session, replying "Done." (no call: one reply a turn)
        max_prompt_tokens, max_new_tokens = 10**6, 8

        def __init__(self):
            self.rounds = []
            self.engine = SimpleNamespace(totals=Counter())
            self.lock = contextlib.nullcontext()

        def forget(self, key):
            pass

        def close(self):
            pass

        def encode(self, prompts, keys):
            return [[1, 2, 3]] * len(prompts)

        def generate(self, encoded, keys, on_decode=None):
            self.rounds.append(list(keys))
            return ["Done."] * len(encoded)

    runs = {}
    for longest_first in (True, False):
        session = Session()
        monkeypatch.setattr(mt, "_session", lambda *args, session=session: session)
        rows = mt.run_conversations(None, None, items, bfcl_environments, 8, 2, longest_first=longest_first)
        runs[longest_first] = rows, session.rounds
    (rows, rounds), (in_order_rows, in_order) = runs[True], runs[False]
    assert rows == in_order_rows and [r["id"] for r in rows] == [i.id for i in items]
    assert [len(t) for r in rows for t in r["texts"]] == [1] * 10
    assert rounds == [[2, 0], [2, 0], [2, 0], [2, 1], [1], [1]]
    assert in_order == [[0, 1], [0, 1], [0, 1], [2], [2], [2], [2]]


def test_overlapped_lanes_give_the_same_conversations(
    fixtures_dir, bfcl_environments, tokenizer, tiny_model, monkeypatch
):
    """Two lanes (the engine generating one while the host steps the other) and more conversations than
    the window, so lanes refill: the same rows as one lane at a time, and no conversation loses its slot
    to the other lane."""
    import threading
    from collections import Counter

    from evaluation.bfcl.multi_turn import run_conversations
    from evaluation.generation.engine import EngineConfig
    from evaluation.generation.generate import ChatSession

    items = _items(fixtures_dir)[:6]
    totals: Counter[str] = Counter()
    lanes = run_conversations(
        tiny_model, tokenizer, items, bfcl_environments, 6, 4, overlap=True, engine_totals=totals
    )
    serial = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 4)
    fed = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 4, fed=True)  # refilling
    # fed in a thread beside the decode steps: half the window first, the rest asked for meanwhile
    overlapped = run_conversations(
        tiny_model,
        tokenizer,
        items,
        bfcl_environments,
        6,
        4,
        fed=True,
        engine_config=EngineConfig(feed_overlap=True),
    )
    # first prompts tokenized ahead in a thread while the rounds generate: the same rows
    threads = []
    encode = ChatSession.encode

    def recording(self, prompts, keys=None):
        threads.append((threading.current_thread().name, len(prompts)))
        return encode(self, prompts, keys)

    monkeypatch.setattr(ChatSession, "encode", recording)
    assert run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 4) == serial
    in_rounds, threads[:] = sum(n for _, n in threads), []
    assert not any(name.startswith("bfcl-prefetch") for name, _ in threads)
    prefetched = run_conversations(tiny_model, tokenizer, items, bfcl_environments, 6, 4, prefetch=2)
    assert lanes == serial == fed == overlapped == prefetched and len(lanes) == 6
    # the two conversations past the window of four were tokenized ahead, by the prefetch thread, and their first prompts were not tokenized again
    ahead = sum(n for name, n in threads if name.startswith("bfcl-prefetch"))
    assert ahead == 2 and sum(n for _, n in threads) == in_rounds
    assert totals["evictions"] <= 2  # only to seat the 5th and 6th conversations
    assert totals["reused_tokens"] > totals["prefilled_tokens"]


def test_quiet_gc_freezes_for_the_run_and_leaves_others_freezes_alone():
    """Frozen and with higher collection thresholds for the run; the caller's thresholds and freezes back."""
    import gc

    from evaluation.bfcl.multi_turn import _quiet_gc

    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    with _quiet_gc():
        assert gc.get_freeze_count() > 0  # what was alive is out of the collector's sight
        assert gc.get_threshold()[:2] == (50_000, 20)  # the young generations collected less often
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
    gc.freeze()  # someone else's freeze: kept as it is
    try:
        before = gc.get_freeze_count()
        with _quiet_gc():
            pass
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
