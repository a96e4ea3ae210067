import torch

from training.attention import PACKED_SDPA, dense_document_mask, document_ids, document_mask
from training.config import ModelConfig
from training.model import init_model

EOS = 0


class _Vocab:
    pad_token_id, eos_token_id, bos_token_id = 1, EOS, None

    def __len__(self) -> int:
        return 64


def test_document_ids_end_each_document_at_its_eos():
    ids = torch.tensor([[5, 6, EOS, 7, EOS, EOS, 8]])
    assert document_ids(ids, EOS).tolist() == [[0, 0, 0, 1, 1, 2, 3]]
    mask = dense_document_mask(ids, EOS)[0, 0]
    assert mask[3].tolist() == [False, False, False, True, False, False, False]  # new doc: only itself
    assert mask[2].tolist() == [True, True, True, False, False, False, False]  # the EOS sees its doc


def _logits(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


def test_document_mask_isolates_documents_and_packed_kernel_matches_hf_sdpa():
    torch.manual_seed(0)
    model = init_model(ModelConfig(), _Vocab()).eval()
    assert model.config._attn_implementation == PACKED_SDPA
    a = torch.randint(2, 64, (1, 20))
    b = a.clone()
    a[0, 9] = b[0, 9] = EOS
    b[0, :9] = torch.randint(2, 64, (9,))  # a different first document, same second one
    with torch.no_grad():
        la, lb = (
            _logits(model, a, document_mask(a, EOS, PACKED_SDPA)),
            _logits(model, b, document_mask(b, EOS, PACKED_SDPA)),
        )
        assert torch.allclose(la[0, 10:], lb[0, 10:], atol=1e-5)  # doc 2 cannot see doc 1
        causal_a, causal_b = _logits(model, a, None), _logits(model, b, None)
        assert not torch.allclose(causal_a[0, 10:], causal_b[0, 10:], atol=1e-3)  # plain causal can
        model.config._attn_implementation = "sdpa"  # HF's own kernel gives the same numbers
        assert torch.allclose(_logits(model, a, None), causal_a, atol=1e-5)
        assert torch.allclose(_logits(model, a, dense_document_mask(a, EOS)), la, atol=1e-5)


def test_cpt_with_doc_mask_trains(make_cfg, read_metrics):
    from training.cpt import train_cpt

    cfg = make_cfg("docmask", steps=6)
    cfg.data.doc_mask = True
    cfg.schedule.eval_every = 3
    summary = train_cpt(cfg)
    losses = [r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r]
    assert summary["steps"] == 6 and losses[-1] < losses[0]
