"""perf.compile_scope: block by block (default) or the whole decoder as one graph."""

from __future__ import annotations

import pytest
import torch

from training import distributed as D
from training.config import config_from_dict, debug_config, to_dict
from training.losses import build_objective
from training.model import init_model
from training.parallel import decoder_layers, decoder_stack, prepare_model


class _Tok:
    pad_token_id, eos_token_id, bos_token_id = 0, 1, None

    def __len__(self) -> int:
        return 128


def _compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def test_compile_scope_is_validated(tmp_path):
    cfg = debug_config(tmp_path)
    cfg.perf.compile_scope = "everything"
    with pytest.raises(ValueError, match="compile_scope must be 'block' or 'decoder'"):
        config_from_dict(to_dict(cfg))
    cfg.perf.compile_scope, cfg.parallel = "decoder", "fsdp"
    with pytest.raises(ValueError, match="'decoder' is for one process or DDP"):
        config_from_dict(to_dict(cfg))


@pytest.mark.parametrize("scope", ["block", "decoder"])
def test_compile_scope_compiles_the_blocks_or_the_whole_decoder(tmp_path, scope):
    cfg = debug_config(tmp_path)
    cfg.compile, cfg.perf.compile_scope = True, scope
    cfg = config_from_dict(to_dict(cfg))
    torch.manual_seed(0)
    model = init_model(cfg.model, _Tok())
    eager = build_objective(cfg, init_model(cfg.model, _Tok()))
    eager.model.load_state_dict(model.state_dict())
    env = D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    step = prepare_model(cfg, build_objective(cfg, model), env)
    layers = decoder_layers(model)
    assert _compiled(decoder_stack(model)) == (scope == "decoder")
    assert all(_compiled(layer) == (scope == "block") for layer in layers)
    # the compiled module computes the eager loss and gradients
    ids = torch.randint(2, 128, (2, 16), generator=torch.Generator().manual_seed(1))
    loss, ref = step(ids, ids), eager(ids, ids)
    loss.backward()
    ref.backward()
    assert torch.allclose(loss, ref, rtol=1e-4, atol=1e-5)
    g = dict(eager.model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, g[name].grad, rtol=1e-3, atol=1e-5), name
