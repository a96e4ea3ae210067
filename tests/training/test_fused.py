"""perf.fuse_projections: q/k/v and gate/up as one matmul each, same maths as the stock HF modules."""

from __future__ import annotations

import copy

import pytest
import torch

from training import distributed as D
from training.config import debug_config
from training.fused import fuse_projections, unfuse_projections
from training.losses import build_objective
from training.model import init_model
from training.parallel import prepare_model


class _Tok:
    pad_token_id, eos_token_id, bos_token_id = 0, 1, None

    def __len__(self) -> int:
        return 128


def _model(tmp_path, kv_heads: int = 2):
    cfg = debug_config(tmp_path)
    cfg.model.num_key_value_heads = kv_heads  # GQA: k/v narrower than q, so the split sizes differ
    torch.manual_seed(0)
    return cfg, init_model(cfg.model, _Tok())


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_fused_model_computes_the_stock_logits_and_gradients(tmp_path, kv_heads):
    cfg, stock = _model(tmp_path, kv_heads)
    fused = copy.deepcopy(stock)
    n_layers = cfg.model.num_hidden_layers
    assert fuse_projections(fused) == 2 * n_layers  # every attention and every MLP
    ids = torch.randint(2, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    logits, grads = _loss_and_grads(stock, ids)
    f_logits, f_grads = _loss_and_grads(fused, ids)
    assert torch.allclose(f_logits, logits, rtol=1e-5, atol=1e-5)
    assert grads.keys() == f_grads.keys()
    for name, g in grads.items():
        assert torch.allclose(f_grads[name], g, rtol=1e-4, atol=1e-6), name
    # the parameters are the modules' own: same names, same state dict, nothing new to save or load
    assert fused.state_dict().keys() == stock.state_dict().keys()
    assert unfuse_projections(fused) == 2 * n_layers
    assert not any("forward" in vars(m) for m in fused.modules())


def test_wrapped_or_subclassed_projections_keep_their_forward(tmp_path):
    """float8 (a Linear subclass) and LoRA (a wrapper) layers are not concatenated."""

    class Float8Like(torch.nn.Linear):
        pass

    _, model = _model(tmp_path)
    first = model.model.layers[0]
    q = first.self_attn.q_proj
    sub = Float8Like(q.in_features, q.out_features, bias=False)
    sub.load_state_dict(q.state_dict())
    first.self_attn.q_proj = sub
    first.mlp.up_proj = torch.nn.Sequential(first.mlp.up_proj)  # stands in for a wrapper module
    n_layers = len(model.model.layers)
    assert fuse_projections(model) == 2 * n_layers - 2
    assert "forward" not in vars(first.self_attn) and "forward" not in vars(first.mlp)
    assert "forward" in vars(model.model.layers[1].self_attn)


def test_prepare_model_fuses_when_configured(tmp_path):
    cfg, model = _model(tmp_path)
    env = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    prepare_model(cfg, build_objective(cfg, model), env)
    assert not any("forward" in vars(m) for m in model.modules())  # off by default
    cfg.perf.fuse_projections = True
    prepare_model(cfg, build_objective(cfg, model), env)
    assert sum("forward" in vars(m) for m in model.modules()) == 2 * cfg.model.num_hidden_layers
