"""Fixtures for the training tests: a tiny byte-level BPE tokenizer with a ChatML-like chat template
(a test-only stand-in for the real format-7 tokenizer), packed shards per format 5, and an SFT JSONL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

for _k, _v in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_k, _v)

SPECIAL = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

# Format 4, reduced: system (+ tools) block, turns, assistant output inside {% generation %}.
CHAT_TEMPLATE = (
    "{%- if tools or messages[0].role == 'system' %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}"
    "{%- if tools %}\n\n# Tools\n<tools>{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}\n</tools>{%- endif %}"
    "<|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}<|im_start|>assistant\n{% generation %}{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>\n{{ {'name': c.name, 'arguments': c.arguments} | tojson }}\n"
    "</tool_call>{% endfor %}<|im_end|>{% endgeneration %}\n"
    "{%- elif m.role == 'tool' %}<|im_start|>tool\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{% elif m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)

TEXT = "the quick brown fox jumps over the lazy dog and calls get_weather with city paris. "


def build_tokenizer(out_dir: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([TEXT * 4, "user assistant system tool hello weather"] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.add_tokens(ADDED)
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def write_shards(
    out_dir: Path,
    docs: list[list[int]],
    eos_id: int,
    vocab_size: int,
    tokenizer_dir: Path | None,
    n_shards: int = 2,
) -> Path:
    """Pack `docs` (token id lists) into `n_shards` raw uint16 files + manifest.json, per format 5."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = [t for d in docs for t in [*d, eos_id]]
    parts = np.array_split(np.asarray(stream, dtype="<u2"), n_shards)
    shards = []
    for i, part in enumerate(parts):
        name = f"shard_{i:05d}.bin"
        part.tofile(out_dir / name)
        shards.append({"path": name, "n_tokens": int(part.size), "sha256": "unchecked-in-tests"})
    manifest = {
        "format": "hephaestus-packed-v1",
        "dtype": "uint16",
        "eos_id": eos_id,
        "vocab_size": vocab_size,
        "tokenizer_dir": str(tokenizer_dir) if tokenizer_dir else "",
        "n_tokens": len(stream),
        "n_documents": len(docs),
        "tokens_by_category": {"agent": len(stream), "code": 0, "text": 0},
        "shards": shards,
        "fingerprint": "test",
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest))
    return out_dir


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer, tokenizer_dir: Path) -> Path:
    """A repetitive corpus (~9k tokens, ~280 windows of 33 tokens) that a tiny model learns in a few steps."""
    doc = tokenizer(TEXT * 6)["input_ids"]
    return write_shards(
        tmp_path_factory.mktemp("shards"), [doc] * 40, tokenizer.eos_token_id, len(tokenizer), tokenizer_dir
    )


def sft_rows(n: int) -> list[dict]:
    tool = {
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    rows = []
    for i in range(n):
        city = ["paris", "rome", "oslo"][i % 3]
        rows.append(
            {
                "id": f"ex{i}",
                "tools": [tool],
                "messages": [
                    {"role": "system", "content": "you are helpful"},
                    {"role": "user", "content": f"weather in {city}?"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": city}}],
                    },
                    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
                    {"role": "assistant", "content": f"it is sunny in {city}"},
                ],
            }
        )
    return rows


@pytest.fixture
def sft_path(tmp_path: Path) -> Path:
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(24)))
    return path


def _read_metrics(output_dir: Path) -> list[dict]:
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


@pytest.fixture
def read_metrics():
    """Function: output_dir -> the records of its metrics.jsonl."""
    return _read_metrics


@pytest.fixture
def make_cfg(tmp_path: Path, shards_dir: Path):
    """Factory for the debug config pointed at the test shards: make_cfg(name, steps=..)."""
    from training.config import debug_config

    def make(name: str = "run", steps: int = 30):
        cfg = debug_config(tmp_path / name)
        cfg.data.shards_dir = str(shards_dir)
        cfg.schedule.max_steps = steps
        return cfg

    return make


@pytest.fixture
def make_sft_rows():
    """Function: n -> n SFT rows (format 6) with a tool call, a tool result and a final answer."""
    return sft_rows


@pytest.fixture
def make_tokenizer():
    """Function: (out_dir, chat_template=...) -> a saved test tokenizer dir."""
    return build_tokenizer
