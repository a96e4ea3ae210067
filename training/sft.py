"""Supervised fine-tuning (stage 3): chat-rendered conversations, loss on assistant tokens only.

Each JSONL row (``contracts.sft``) is rendered by the tokenizer's own chat template (``contracts.chat``) with
`return_assistant_tokens_mask=True`; positions outside `{% generation %}` spans get label -100. LoRA
adapters by default (merged into the base for export), full fine-tuning with `full_finetune=true`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from contracts.sft import read_sft_jsonl
from training import distributed as D
from training.config import RunConfig
from training.data import EpochSampler
from training.loop import train_loop
from training.metrics import MetricSink, emit
from training.model import count_params, init_model, load_tokenizer, resolve_tokenizer_dir
from training.trainer import export_model, run_stage, seed_everything

log = logging.getLogger(__name__)
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


#: the key of :func:`load_sft_examples`' counts for rows kept but cut at ``seq_len`` (not a skip)
CUT = "cut_at_seq_len"


def render_example(
    tokenizer: Any,
    messages: list[dict],
    tools: list[dict] | None,
    seq_len: int,
    counts: Counter | None = None,
) -> dict[str, list[int]]:
    """Tokenize one conversation with the chat template and build next-token labels.

    Returns `input_ids` and `labels` of equal length <= seq_len: labels[t] is the token after
    input_ids[t] when that token is assistant output, else -100. The conversation is truncated to its
    first seq_len + 1 tokens (counted as ``counts[CUT]`` when given).
    """
    enc = tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    if any(m.get("role") == "assistant" for m in messages) and not any(mask):
        raise ValueError(
            "chat template marked no assistant tokens for a conversation with an assistant turn; the template "
            "must wrap assistant output in {% generation %}...{% endgeneration %}"
        )
    if counts is not None and len(ids) > seq_len + 1:
        counts[CUT] += 1
    ids, mask = ids[: seq_len + 1], mask[: seq_len + 1]
    targets = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    return {"input_ids": ids[:-1], "labels": targets[1:]}


#: bump when render_example's output changes: rendered sets cached under the old rule are not reused
RENDER_VERSION = 2


def load_sft_examples(
    path: str | Path, tokenizer: Any, seq_len: int, cache_dir: str | Path | None = None
) -> tuple[list[dict[str, list[int]]], Counter]:
    """Render every row of the SFT JSONL. Returns (examples, skipped-by-reason). Malformed rows raise with
    file:line; rows left without supervised tokens (no assistant turn, or truncated away) are counted, and
    so are rows kept but cut at ``seq_len`` (key :data:`CUT`: their later turns are not trained on; in the
    demo's data 238 of the first 3,000 conversations were longer than 1,024 tokens), which are no skip.

    With ``cache_dir`` the result is kept there (one file per JSONL content, tokenizer and ``seq_len``,
    written atomically) and read back by later calls instead of rendering again; an unreadable cache
    file is rendered again and replaced."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SFT data file not found: {path}")
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if not _GENERATION_TAG.search(template or ""):
        raise ValueError(
            "tokenizer chat_template has no {% generation %} markers, so the assistant-only loss mask cannot "
            "be computed; use a tokenizer built by forge.corpus.tokenizer"
        )
    cached = Path(cache_dir) / f"sft-{_render_key(path, tokenizer, seq_len)}.pt" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            return _read_rendered(cached)
        except Exception as exc:  # a torn or foreign file: render again
            log.warning(
                "SFT render cache %s unreadable (%s: %s); rendering again", cached, type(exc).__name__, exc
            )
    examples, skipped = [], Counter()
    for lineno, row in read_sft_jsonl(path):
        if not row.has_assistant_turn:
            skipped["no_assistant_turn"] += 1
            continue
        cut = Counter()
        try:
            ex = render_example(tokenizer, row.messages, row.tools, seq_len, cut)
        except ValueError as e:
            raise ValueError(f"{path}:{lineno} (id {row.id!r}): {e}") from e
        if all(t == -100 for t in ex["labels"]):
            skipped["assistant_tokens_truncated"] += 1
            continue
        skipped.update(cut)
        examples.append(ex)
    if cached is not None:
        _write_rendered(cached, examples, skipped)
    return examples, skipped


def _render_key(path: Path, tokenizer: Any, seq_len: int) -> str:
    digest = hashlib.sha256(f"v{RENDER_VERSION}|{seq_len}|".encode())
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    digest.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    digest.update(str(tokenizer.chat_template).encode())
    digest.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    return digest.hexdigest()[:32]


def _write_rendered(file: Path, examples: list[dict[str, list[int]]], skipped: Counter) -> None:
    def flat(key: str) -> torch.Tensor:
        return torch.tensor([t for ex in examples for t in ex[key]], dtype=torch.int32)

    lengths = torch.tensor([len(ex["input_ids"]) for ex in examples], dtype=torch.int64)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    payload = {"input_ids": flat("input_ids"), "labels": flat("labels"), "lengths": lengths}
    torch.save({**payload, "skipped": dict(skipped)}, tmp)
    os.replace(tmp, file)


def _read_rendered(file: Path) -> tuple[list[dict[str, list[int]]], Counter]:
    data = torch.load(file, weights_only=True)
    ids, labels = data["input_ids"].tolist(), data["labels"].tolist()
    examples, start = [], 0
    for n in data["lengths"].tolist():
        examples.append({"input_ids": ids[start : start + n], "labels": labels[start : start + n]})
        start += n
    if start != len(ids) or len(ids) != len(labels):
        raise ValueError(f"{file}: lengths do not add up")
    return examples, Counter(data["skipped"])


class SftBatches:
    """Padded batches of rendered examples: the last `holdout` examples are the eval set, the rest are
    drawn in a resumable shuffled order (EpochSampler)."""

    def __init__(
        self, examples: list[dict], pad_id: int, holdout: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        if len(examples) <= holdout:
            raise ValueError(
                f"SFT: {len(examples)} usable examples, need more than the {holdout} held out for eval"
            )
        self.train, self.eval = examples[: len(examples) - holdout], examples[len(examples) - holdout :]
        self.pad_id, self.rank, self.world_size = pad_id, rank, world_size
        self.sampler = EpochSampler(len(self.train), seed, rank, world_size)

    def collate(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest row: input pad_id, label -100, attention_mask 0."""
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = (
                torch.tensor(r["input_ids"]),
                torch.tensor(r["labels"]),
                1,
            )
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        return self.collate([self.train[i] for i in self.sampler.next_indices(batch_size)])

    def eval_batches(self, batch_size: int, max_batches: int) -> list[dict[str, torch.Tensor]]:
        mine = self.eval[self.rank :: self.world_size]
        return [self.collate(mine[i : i + batch_size]) for i in range(0, len(mine), batch_size)][:max_batches]

    def state(self) -> dict[str, int]:
        return self.sampler.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state(state)


def add_lora(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    """Wrap `model` with peft LoRA adapters on `cfg.lora.target_modules`; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
    )
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing` alias
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora)


def sft_body(cfg: RunConfig, env: D.DistEnv, sinks: list[MetricSink]) -> dict[str, Any]:
    """The SFT stage in the trainer scaffold: render the conversations, add LoRA adapters (unless
    `full_finetune`), train, export the (merged) model to output_dir/hf and, with LoRA, the adapter to
    output_dir/adapter."""
    if not cfg.data.sft_path:
        raise ValueError("sft: data.sft_path is required")
    tokenizer = load_tokenizer(resolve_tokenizer_dir(cfg.model))
    examples, skipped = load_sft_examples(
        cfg.data.sft_path, tokenizer, cfg.data.seq_len, cfg.data.render_cache_dir
    )
    cut = skipped.pop(CUT, 0)
    if skipped:
        emit(sinks, "log_text", f"sft: skipped rows by reason: {dict(skipped)}")
    if cut:
        emit(
            sinks,
            "log_text",
            f"sft: {cut:,} kept rows cut at seq_len {cfg.data.seq_len} (their later turns untrained)",
        )
    if cfg.parallel == "fsdp" and env.enabled and not cfg.full_finetune:
        raise ValueError("sft: parallel='fsdp' supports full_finetune only; use parallel='ddp' for LoRA")
    model = init_model(cfg.model, tokenizer)
    n_params, n_non_emb = count_params(model, non_embedding=False), count_params(model)
    if not cfg.full_finetune:
        model = add_lora(model, cfg)
    model = model.to(env.device)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seed_everything(cfg.seed + env.rank)
    data = SftBatches(
        examples, tokenizer.pad_token_id, cfg.data.holdout, cfg.data.seed, env.rank, env.world_size
    )
    result = train_loop(cfg, model, data, env, sinks, n_non_emb)
    adapter_dir = None if cfg.full_finetune else Path(cfg.output_dir) / "adapter"
    hf_dir = export_model(model, tokenizer, cfg.output_dir, env, adapter_dir)
    return {
        **result,
        "n_params": n_params,
        "n_params_non_embedding": n_non_emb,
        "n_params_trainable": n_trainable,
        "n_examples_train": len(data.train),
        "n_examples_eval": len(data.eval),
        "skipped_rows": dict(skipped),
        "n_examples_cut": cut,
        "lora": not cfg.full_finetune,
        "hf_dir": str(hf_dir),
        "adapter_dir": str(adapter_dir) if adapter_dir else None,
    }


def train_sft(cfg: RunConfig, sinks: Sequence[MetricSink] = ()) -> dict[str, Any]:
    """Fine-tune as configured (resuming when possible) and return the summary dict."""
    return run_stage("sft", sft_body, cfg, sinks)
