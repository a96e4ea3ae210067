"""Byte-level BPE training, format-7 tokenizer directories, and adapting a base model's tokenizer."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from contracts.chat import ADDED_TOKENS, CHAT_TEMPLATE, SPECIAL_TOKENS
from forge.corpus.tokenizer import load_or_adapt_tokenizer, train_tokenizer

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 5,
    "def get_weather(city: str) -> dict:\n    return {'city': city, 'temp': 21}\n" * 5,
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n' * 5,
    "Überprüfung der Größe — naïve café, 東京の天気は晴れです。🙂\n" * 5,
]
_rng = random.Random(0)
_SYLLABLES = ["ka", "lo", "mi", "re", "su", "tan", "bor", "quel", "xi", "dra", "pen", "vo"]
# Pseudo-words so the trainer finds enough frequent pairs to fill the vocabulary.
CORPUS += [
    " ".join("".join(_rng.choices(_SYLLABLES, k=_rng.randint(1, 4))) for _ in range(400)) for _ in range(10)
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return train_tokenizer(CORPUS * 3, tmp_path_factory.mktemp("tok") / "tok", 700, model_max_length=512)


def _random_unicode(rng: random.Random, n: int) -> str:
    ranges = [
        (0x20, 0x7E),
        (0x00, 0x1F),
        (0xA0, 0x24F),
        (0x370, 0x3FF),
        (0x590, 0x6FF),
        (0x4E00, 0x4FFF),
        (0x1F300, 0x1F6FF),
        (0x300, 0x36F),
    ]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_directory_is_format_7(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == 700  # added tokens are inside vocab_size, nothing appended
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|endoftext|>", "<|pad|>", "<|endoftext|>")
    assert tok.model_max_length == 512
    assert tok.chat_template == CHAT_TEMPLATE
    # Fixed ids, documented in forge/corpus/build/tokenizer.py.
    assert [tok.convert_tokens_to_ids(t) for t in (*SPECIAL_TOKENS, *ADDED_TOKENS)] == list(range(8))
    # No BOS/EOS inserted implicitly: packing appends EOS itself.
    assert tok("hello")["input_ids"] == tok.encode("hello", add_special_tokens=False)


def test_round_trips_arbitrary_unicode(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    rng = random.Random(7)
    samples = ["", " ", "\r\n\t\x00", "a  b   c", "e\u0301 ﬁ Å", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010ffff"] + [
        _random_unicode(rng, 200) for _ in range(50)
    ]
    for s in samples:
        ids = tok.encode(s, add_special_tokens=False)
        assert tok.decode(ids) == s
        assert tok.unk_token_id is None or tok.unk_token_id not in ids


def test_special_and_added_tokens_stay_single_ids(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    for t in (*SPECIAL_TOKENS, *ADDED_TOKENS):
        ids = tok.encode(f"x{t}y", add_special_tokens=False)
        assert tok.convert_tokens_to_ids(t) in ids, t
        assert tok.decode(ids) == f"x{t}y"
    text = "<|im_start|>assistant\n<tool_call>\n{}\n</tool_call><|im_end|><|endoftext|>"
    # Tool tags are not special: kept when special tokens are skipped (evaluation parses them).
    assert (
        tok.decode(tok.encode(text), skip_special_tokens=True) == "assistant\n<tool_call>\n{}\n</tool_call>"
    )


def test_training_rejects_tiny_vocab(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(CORPUS, tmp_path / "t", 100)


def test_failed_retrain_leaves_previous_directory(tok_dir, tmp_path):
    out = train_tokenizer(CORPUS, tmp_path / "tok", 600)
    before = (out / "tokenizer.json").read_bytes()

    def broken():
        yield CORPUS[0]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        train_tokenizer(broken(), out, 650)
    assert (out / "tokenizer.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]  # no temporary directory left behind


@pytest.fixture()
def gpt2_like_dir(tmp_path):
    """A GPT-2-style base tokenizer built locally: byte-level BPE, only <|endoftext|>, no chat template."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(CORPUS * 3, trainer=trainer)
    base = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    base.save_pretrained(tmp_path / "gpt2ish")
    return tmp_path / "gpt2ish"


def test_adapt_base_tokenizer(gpt2_like_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = AutoTokenizer.from_pretrained(gpt2_like_dir)
    sample = "def get_weather(city): return 'Größe 🙂'"
    out = load_or_adapt_tokenizer(gpt2_like_dir, tmp_path / "adapted", model_max_length=256)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.encode(sample, add_special_tokens=False) == base.encode(
        sample, add_special_tokens=False
    )  # ids kept
    assert len(tok) == len(base) + 7  # <|endoftext|> existed; 3 special + 4 tool tags added
    assert tok.convert_tokens_to_ids("<|endoftext|>") == base.convert_tokens_to_ids("<|endoftext|>")
    for t in (*SPECIAL_TOKENS, *ADDED_TOKENS):
        assert len(tok.encode(t, add_special_tokens=False)) == 1
        assert tok.convert_tokens_to_ids(t) < len(tok)
    assert (tok.eos_token, tok.pad_token, tok.model_max_length) == ("<|endoftext|>", "<|pad|>", 256)
    assert tok.chat_template == CHAT_TEMPLATE
    meta = json.loads((out / "forge_adapted.json").read_text())
    assert set(meta["added_ids"]) == {"<|pad|>", "<|im_start|>", "<|im_end|>", *ADDED_TOKENS}
    assert all(i >= len(base) for i in meta["added_ids"].values())
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    enc = tok.apply_chat_template(msgs, return_assistant_tokens_mask=True, return_dict=True)
    assert (
        tok.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m])
        == "ok<|im_end|>"
    )
    tools_text = tok.decode(tok.encode("<tool_call>x</tool_call>"), skip_special_tokens=True)
    assert tools_text == "<tool_call>x</tool_call>"


def test_adapting_our_own_tokenizer_adds_nothing(tok_dir, tmp_path):
    out = load_or_adapt_tokenizer(tok_dir, tmp_path / "again")
    assert len(AutoTokenizer.from_pretrained(out)) == 700
    assert json.loads((out / "forge_adapted.json").read_text())["added_ids"] == {}


def test_hub_id_refused_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_or_adapt_tokenizer("some-org/some-model", tmp_path / "x")
