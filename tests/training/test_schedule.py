import math

import pytest

from training.schedule import lr_at

KW = {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "max_steps": 110}


def test_warmup_is_linear_and_never_zero():
    lrs = [lr_at(s, **KW) for s in range(10)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(1.0)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(lrs, lrs[1:], strict=False))


def test_cosine_decay_to_floor():
    assert lr_at(10, **KW) == pytest.approx(1.0)
    assert lr_at(60, **KW) == pytest.approx(0.1 + 0.5 * 0.9)  # halfway: cos(pi/2) = 0
    assert lr_at(110, **KW) == pytest.approx(0.1)
    assert lr_at(500, **KW) == pytest.approx(0.1)
    decay = [lr_at(s, **KW) for s in range(10, 111)]
    assert all(b <= a for a, b in zip(decay, decay[1:], strict=False))


def test_no_warmup_and_constant_lr():
    assert lr_at(0, lr=2.0, min_lr=0.0, warmup_steps=0, max_steps=4) == pytest.approx(2.0)
    assert lr_at(2, lr=2.0, min_lr=0.0, warmup_steps=0, max_steps=4) == pytest.approx(1.0)
    assert all(
        math.isclose(lr_at(s, lr=0.5, min_lr=0.5, warmup_steps=0, max_steps=9), 0.5) for s in range(12)
    )
