import pytest
import torch
import torch.nn.functional as F

from training.losses import CausalLMLoss, linear_cross_entropy, supports_fused_loss


def test_chunked_linear_cross_entropy_matches_full_logits_value_and_grads():
    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, 50, (3, 7))
    labels[0, :3] = -100
    ref = F.cross_entropy((hidden @ weight.t()).flatten(0, 1), labels.flatten(), ignore_index=-100)
    ref_grads = torch.autograd.grad(ref * 2.5, [hidden, weight])
    got = linear_cross_entropy(hidden, weight, labels, chunk=4)  # 21 rows: 5 full chunks + 1 row
    got_grads = torch.autograd.grad(got * 2.5, [hidden, weight])
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    for a, b in zip(got_grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_all_ignored_labels_give_nan_like_cross_entropy():
    loss = linear_cross_entropy(torch.randn(4, 8), torch.randn(10, 8), torch.full((4,), -100))
    assert torch.isnan(loss)


def _tiny(model_type: str = "llama"):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if model_type == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=32))
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return LlamaForCausalLM(config)


def test_loss_module_fused_equals_model_logits_path():
    model = _tiny()
    ids = torch.randint(0, 64, (2, 12))
    labels = ids.roll(-1, 1)
    fused, plain = CausalLMLoss(model, chunk_tokens=5), CausalLMLoss(model, chunk_tokens=0)
    assert fused.fused and not plain.fused
    assert float(fused(ids, labels)) == pytest.approx(float(plain(ids, labels)), rel=1e-5)
    gpt2 = _tiny("gpt2")
    assert supports_fused_loss(model) and not supports_fused_loss(gpt2)
    assert not CausalLMLoss(gpt2).fused  # unknown families fall back to their own logits
    assert torch.isfinite(CausalLMLoss(gpt2)(ids, labels))


def test_objective_is_built_from_its_name_in_the_config(tmp_path):
    import typing

    from training.config import Objective, config_from_dict, debug_config, to_dict
    from training.losses import OBJECTIVES, build_objective

    assert set(OBJECTIVES) == set(typing.get_args(Objective))  # every name the config accepts is built
    cfg = debug_config(tmp_path)
    cfg.perf.loss_chunk_tokens = 5
    model = _tiny()
    objective = build_objective(cfg, model)
    assert isinstance(objective, CausalLMLoss) and objective.model is model and objective.chunk_tokens == 5
    cfg.objective = "dpo"
    with pytest.raises(ValueError, match="unknown objective 'dpo'; known: \\['causal_lm'\\]"):
        build_objective(cfg, model)
    with pytest.raises(ValueError, match="objective must be one of \\['causal_lm'\\], got 'dpo'"):
        config_from_dict(to_dict(cfg))
