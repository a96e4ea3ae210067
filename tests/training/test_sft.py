import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.model import load_tokenizer
from training.sft import CUT, SftBatches, load_sft_examples, render_example, train_sft


def _assistant_texts(messages):
    """What the test template renders inside {% generation %} for each assistant turn."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            calls = "".join(
                "<tool_call>\n"
                + json.dumps({"name": c["name"], "arguments": c["arguments"]})
                + "\n</tool_call>"
                for c in m.get("tool_calls", [])
            )
            out.append(m["content"] + calls + "<|im_end|>")
    return out


def test_labels_are_ignored_exactly_outside_assistant_spans(tokenizer, make_sft_rows):
    row = make_sft_rows(2)[1]
    ex = render_example(tokenizer, row["messages"], row["tools"], seq_len=1024)
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels)
    full = tokenizer.apply_chat_template(
        row["messages"], tools=row["tools"], tokenize=True, return_dict=True
    )["input_ids"]
    assert ids == full[:-1]  # inputs are the rendering minus the last token
    # supervised targets are exactly the next tokens where supervised, and form the assistant spans
    spans, current = [], []
    for t, (nxt, lab) in enumerate(zip(full[1:], labels, strict=True)):
        if lab != -100:
            assert lab == nxt, t
            current.append(lab)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert [tokenizer.decode(s) for s in spans] == _assistant_texts(row["messages"])
    assert (
        sum(lab != -100 for lab in labels) < len(labels) / 2
    )  # the prompt, tools and tool output are masked


def test_template_without_generation_markers_is_rejected(tmp_path, sft_path, make_tokenizer):
    tok_dir = make_tokenizer(
        tmp_path / "tok", chat_template="{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    with pytest.raises(ValueError, match="no \\{% generation %\\} markers"):
        load_sft_examples(sft_path, load_tokenizer(tok_dir), seq_len=64)


def test_rows_without_supervision_are_counted_and_bad_rows_named(tmp_path, tokenizer, make_sft_rows):
    path = tmp_path / "d.jsonl"
    rows = make_sft_rows(3)
    rows.append({"id": "q", "messages": [{"role": "user", "content": "hi"}], "tools": []})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples, skipped = load_sft_examples(path, tokenizer, seq_len=1024)
    assert len(examples) == 3 and skipped == {"no_assistant_turn": 1}
    examples, skipped = load_sft_examples(path, tokenizer, seq_len=20)  # truncation removes every answer
    assert examples == [] and skipped == {"no_assistant_turn": 1, "assistant_tokens_truncated": 3}
    # a sequence that cuts the longest conversation's end but keeps supervised tokens: kept, and counted as cut
    lengths = sorted(len(e["input_ids"]) + 1 for e in load_sft_examples(path, tokenizer, seq_len=4096)[0])
    examples, skipped = load_sft_examples(path, tokenizer, seq_len=lengths[-1] - 3)
    cut = sum(n > lengths[-1] - 2 for n in lengths)
    assert len(examples) == 3 and skipped == {"no_assistant_turn": 1, CUT: cut} and cut >= 1
    path.write_text(json.dumps(rows[0]) + "\n{broken\n")
    with pytest.raises(ValueError, match="d.jsonl:2"):
        load_sft_examples(path, tokenizer, seq_len=64)


def test_collate_pads_right_and_masks_padding():
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 7, 8]}, {"input_ids": [9], "labels": [4]}]
    batches = SftBatches(rows + rows, pad_id=1, holdout=1, seed=0)
    b = batches.collate(rows)
    assert b["input_ids"].tolist() == [[5, 6, 7], [9, 1, 1]]
    assert b["labels"].tolist() == [[-100, 7, 8], [4, -100, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.fixture
def base_model_dir(tmp_path, tokenizer):
    """A tiny base model in HF format (what `init` / a CPT stage exports)."""
    from training.checkpoint import export_hf
    from training.config import ModelConfig
    from training.model import init_model

    torch.manual_seed(0)
    return export_hf(
        init_model(ModelConfig(max_position_embeddings=512), tokenizer), tokenizer, tmp_path / "base"
    )


def _sft_cfg(tmp_path, base_model_dir, sft_path, name, steps=8):
    from training.config import debug_config

    cfg = debug_config(tmp_path / name)
    cfg.model.init, cfg.model.name_or_path = "pretrained", str(base_model_dir)
    cfg.data.sft_path, cfg.data.seq_len, cfg.data.holdout = str(sft_path), 256, 4
    cfg.schedule.max_steps, cfg.schedule.eval_every, cfg.schedule.checkpoint_every = steps, 4, 4
    cfg.lora.dropout = 0.0
    cfg.optim.lr, cfg.optim.min_lr = 1e-2, 1e-3
    return cfg


def test_lora_sft_trains_adapters_and_exports_merged_model(tmp_path, base_model_dir, sft_path, read_metrics):
    cfg = _sft_cfg(tmp_path, base_model_dir, sft_path, "lora")
    summary = train_sft(cfg)
    assert summary["lora"] and 0 < summary["n_params_trainable"] < summary["n_params"] / 2
    assert summary["n_examples_train"] == 20 and summary["n_examples_eval"] == 4
    # each of these conversations is longer than the 256-token sequences: all kept, all counted as cut (no skip)
    assert summary["n_examples_cut"] == 24 and CUT not in summary["skipped_rows"]
    losses = [r["loss"] for r in read_metrics(cfg.output_dir) if "loss" in r]
    assert losses[-1] < losses[0]

    from peft import PeftModel

    merged = AutoModelForCausalLM.from_pretrained(summary["hf_dir"]).eval()
    base = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_model_dir), summary["adapter_dir"]
    ).eval()
    tok = AutoTokenizer.from_pretrained(summary["hf_dir"])
    ids = tok("weather in paris", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        m, a, b = merged(ids).logits, adapted(ids).logits, base(ids).logits
    assert torch.allclose(m, a, atol=1e-4)  # merge_and_unload kept the adapter's function
    assert not torch.allclose(m, b, atol=1e-3)  # and the adapters did change the model
    assert not any("lora" in k for k in merged.state_dict())
    out = merged.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > ids.shape[1]


def test_full_finetune_skips_lora(tmp_path, base_model_dir, sft_path):
    cfg = _sft_cfg(tmp_path, base_model_dir, sft_path, "full", steps=2)
    cfg.full_finetune = True
    summary = train_sft(cfg)
    assert summary["n_params_trainable"] == summary["n_params"] and summary["adapter_dir"] is None
    assert AutoModelForCausalLM.from_pretrained(summary["hf_dir"]) is not None


def test_rendered_set_is_cached_per_content_tokenizer_and_seq_len(
    tmp_path, tokenizer, make_sft_rows, monkeypatch
):
    import training.sft as sft

    path, cache = tmp_path / "d.jsonl", tmp_path / "cache"
    rows = make_sft_rows(4)
    rows.append({"id": "q", "messages": [{"role": "user", "content": "hi"}], "tools": []})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fresh = load_sft_examples(path, tokenizer, seq_len=1024)
    assert load_sft_examples(path, tokenizer, seq_len=1024, cache_dir=cache) == fresh
    (file,) = cache.glob("sft-*.pt")

    calls = []
    real = sft.render_example
    monkeypatch.setattr(sft, "render_example", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert load_sft_examples(path, tokenizer, seq_len=1024, cache_dir=cache) == fresh and calls == []
    assert (
        load_sft_examples(path, tokenizer, seq_len=20, cache_dir=cache)[1]["assistant_tokens_truncated"] == 4
    )
    assert (
        len(calls) == 4 and len(list(cache.glob("sft-*.pt"))) == 2
    )  # another seq_len: rendered, its own file
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))  # other content: rendered again
    calls.clear()
    assert len(load_sft_examples(path, tokenizer, seq_len=1024, cache_dir=cache)[0]) == 3 and len(calls) == 3
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    file.write_bytes(b"torn")  # unreadable: rendered again and replaced
    calls.clear()
    assert load_sft_examples(path, tokenizer, seq_len=1024, cache_dir=cache) == fresh and len(calls) == 4
    calls.clear()
    assert load_sft_examples(path, tokenizer, seq_len=1024, cache_dir=cache) == fresh and calls == []


def test_adding_lora_raises_no_deprecation_warning_from_the_libraries():
    """peft reads transformers' deprecated `is_gradient_checkpointing`; that FutureWarning is not the user's to act on."""
    import warnings
    from types import SimpleNamespace

    from transformers import LlamaConfig, LlamaForCausalLM

    from training.sft import add_lora

    model = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=64
        )
    )
    cfg = SimpleNamespace(lora=SimpleNamespace(r=4, alpha=8, dropout=0.0, target_modules=["q_proj"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped = add_lora(model, cfg)
    assert any("lora_A" in n for n, _ in wrapped.named_parameters())
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
