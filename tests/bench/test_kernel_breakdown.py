"""bench/kernel_breakdown.py's GPU-idle attribution to the host's named phases, on synthetic traces."""

from __future__ import annotations

import pytest

from bench.kernel_breakdown import idle_by_phase, render_idle_by_phase


def _range(name: str, ts: float, dur: float) -> dict:
    return {"ph": "X", "cat": "user_annotation", "name": name, "ts": ts, "dur": dur}


def _kernel(ts: float, dur: float) -> dict:
    return {"ph": "X", "cat": "kernel", "name": "k", "ts": ts, "dur": dur}


def test_idle_is_charged_to_the_innermost_phase_running_on_the_host():
    trace = {
        "traceEvents": [
            _range("mt.prepare", 0, 100),  # host renders: the GPU idles
            _range("mt.generate", 100, 300),
            _range("engine.admit", 100, 50),  # nested: counts for itself, not for mt.generate
            _range("engine.decode", 150, 150),
            _range("mt.finish", 420, 80),
            _range("other.thing", 0, 500),  # not a phase prefix: ignored
            _kernel(120, 20),  # within engine.admit
            _kernel(150, 100),
            _kernel(240, 30),  # overlaps the previous one: counted once
            _kernel(290, 20),  # 10 in engine.decode, 10 in mt.generate after its nested phases
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 500},  # host ops: not GPU time
        ]
    }
    got = idle_by_phase(trace)
    assert got["mt.prepare"] == {"wall_us": 100, "busy_us": 0, "calls": 1, "idle_us": 100}
    assert got["engine.admit"] == {"wall_us": 50, "busy_us": 20, "calls": 1, "idle_us": 30}
    assert got["engine.decode"]["busy_us"] == pytest.approx(130) and got["engine.decode"]["idle_us"] == 20
    # mt.generate's own time is what its nested phases leave: 300..400
    assert got["mt.generate"] == {"wall_us": 100, "busy_us": 10, "calls": 1, "idle_us": 90}
    assert got["(no phase)"] == {"wall_us": 20, "busy_us": 0, "calls": 0, "idle_us": 20}  # 400..420
    assert got["mt.finish"]["idle_us"] == 80
    assert sum(v["wall_us"] for v in got.values()) == 500  # the span is cut, not double-counted
    assert list(got)[:3] == ["mt.prepare", "mt.generate", "mt.finish"]  # largest idle first
    table = render_idle_by_phase(got)
    assert "(68.0%)" in table and "| mt.prepare | 1 | 0.00 | 0.00 | 0.00 | 29.4% |" in table
    assert idle_by_phase({"traceEvents": []}) == {}
    in_ms = render_idle_by_phase(got, unit="ms")
    assert (
        "GPU idle 0.34 ms of 0.50 ms (68.0%)" in in_ms
        and "| mt.prepare | 1 | 0.10 | 0.00 | 0.10 | 29.4% |" in in_ms
    )
