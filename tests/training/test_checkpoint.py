import random

import numpy as np
import pytest
import torch

from training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trainable_state_dict,
)


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_round_trips_through_safe_torch_load(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    _draw()
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = [_draw() for _ in range(3)]
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert [_draw() for _ in range(3)] == expected


def _model_and_opt():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    return model, opt


def test_save_keeps_last_k_and_restores_everything(tmp_path):
    model, opt = _model_and_opt()
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, model, opt, data_state={"epoch": 0, "position": step}, tokens_seen=step * 10,
                        config={"name": "t"}, keep_last=2)  # fmt: skip
    (tmp_path / "checkpoints" / ".step_00000008.x.tmp").mkdir()  # a killed write is ignored
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004", "step_00000006"]
    assert latest_checkpoint(tmp_path).name == "step_00000006"

    fresh = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    state = load_checkpoint(latest_checkpoint(tmp_path), fresh, fresh_opt)
    assert state["step"] == 6 and state["tokens_seen"] == 60 and state["data"] == {"epoch": 0, "position": 6}
    assert state["config"] == {"name": "t"}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])


def test_mismatched_model_is_a_clear_error(tmp_path):
    model, opt = _model_and_opt()
    path = save_checkpoint(tmp_path, 1, model, opt, data_state={}, tokens_seen=0, config={})
    with pytest.raises(RuntimeError, match="does not match the model"):
        load_checkpoint(path, torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(FileNotFoundError, match="step_00000009"):
        load_checkpoint(tmp_path / "checkpoints" / "step_00000009", model)


def test_frozen_parameters_are_left_out():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    assert set(trainable_state_dict(model)) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    model[0].requires_grad_(False)
    assert set(trainable_state_dict(model)) == {"1.weight", "1.bias"}
