"""bench/recipe_study.py's evaluations: inline, or in a worker process while training goes on; both
record every evaluation once, skip the ones already done, start none past the budget, and wait for
what was started when the run stops."""

from __future__ import annotations

import importlib.util
import operator
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study_module():
    # importable by name: the spawned evaluation worker unpickles functions of this module
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        yield importlib.import_module("recipe_study")
    finally:
        sys.path.remove(str(ROOT / "bench"))


class FakeStudy:
    """What Evaluations uses of a Study: done markers, the budget, recording."""

    def __init__(self, done=(), over_budget_after: int | None = None) -> None:
        self.recorded: dict[str, object] = {name: None for name in done}
        self.checks, self.over_budget_after = 0, over_budget_after

    def done(self) -> set[str]:
        return set(self.recorded)

    def check_budget(self, name: str) -> None:
        self.checks += 1
        if self.over_budget_after is not None and self.checks > self.over_budget_after:
            raise TimeoutError(name)

    def record(self, name: str, result: object, seconds: float) -> None:
        assert seconds >= 0
        self.recorded[name] = result

    def step(self, name: str, fn):
        if name in self.done():
            return self.recorded[name]
        self.check_budget(name)
        result = fn()
        self.record(name, result, 0.0)
        return result


@pytest.mark.parametrize("workers", [0, 1])
def test_every_evaluation_recorded_once_and_done_ones_skipped(study_module, workers):
    study = FakeStudy(done=["eval_a"])
    evals = study_module.Evaluations(study, operator.add, workers)
    try:
        for name, (x, y) in {"eval_a": (1, 1), "eval_b": (2, 3), "eval_c": (4, 5)}.items():
            evals.submit(name, x, y)
        evals.submit("eval_b", 100, 100)  # submitted twice: run once
    finally:
        evals.finish()
    assert study.recorded == {"eval_a": None, "eval_b": 5, "eval_c": 9}


@pytest.mark.parametrize("workers", [0, 1])
def test_no_evaluation_starts_past_the_budget_and_started_ones_are_kept(study_module, workers):
    study = FakeStudy(over_budget_after=1)
    evals = study_module.Evaluations(study, operator.add, workers)
    with pytest.raises(TimeoutError, match="eval_b"):
        try:
            evals.submit("eval_a", 1, 2)
            evals.submit("eval_b", 3, 4)
        finally:
            evals.finish()
    assert study.recorded == {"eval_a": 3}


def test_train_order_trains_each_arm_after_the_checkpoint_it_starts_from(study_module):
    from training.research import ARM_BY_NAME, ARMS

    order = study_module.TRAIN_ORDER
    assert sorted(order) == sorted(a.name for a in ARMS)
    for i, name in enumerate(order):
        parent = ARM_BY_NAME[name].parent
        if parent:
            assert parent in order[:i], f"{name} before {parent}"


def test_the_base_trains_beside_the_packing_and_its_failure_wins(study_module):
    import threading

    barrier, seen = threading.Barrier(2, timeout=30), []

    def both_at_once(name):  # times out (BrokenBarrierError) unless the other side runs meanwhile
        barrier.wait()
        seen.append(name)

    study_module.beside(lambda: both_at_once("train"), lambda: both_at_once("pack"), overlap=True)
    assert sorted(seen) == ["pack", "train"]

    def fails(what):
        def run():
            seen.append(what)
            raise RuntimeError(what)

        return run

    seen.clear()
    with pytest.raises(RuntimeError, match="base failed"):
        study_module.beside(fails("base failed"), fails("pack failed"), overlap=True)
    assert sorted(seen) == ["base failed", "pack failed"]  # both ran to their end
    seen.clear()
    with pytest.raises(RuntimeError, match="pack failed"):
        study_module.beside(lambda: seen.append("base"), fails("pack failed"), overlap=False)
    assert seen == ["base", "pack failed"]  # one after the other, the base first
