"""Tokenizers for the corpus: train a byte-level BPE on our text, or adapt a base model's tokenizer.

Both produce a tokenizer directory in the project's tokenizer layout: ``save_pretrained`` output that
``AutoTokenizer.from_pretrained(dir)`` loads, eos ``<|endoftext|>``, pad ``<|pad|>``, chat
template :data:`contracts.chat.CHAT_TEMPLATE`, the four tool tags as single (non-special) tokens.

Ids of a freshly trained tokenizer are fixed, so configs and tests may rely on them:
``<|endoftext|>`` 0, ``<|pad|>`` 1, ``<|im_start|>`` 2, ``<|im_end|>`` 3, ``<tool_call>`` 4,
``</tool_call>`` 5, ``<tool_response>`` 6, ``</tool_response>`` 7, then the 256 byte symbols, then
merges. ``len(tokenizer) == vocab_size`` (the added tokens are inside the vocabulary, not appended),
or less when the corpus runs out of pairs seen ``min_frequency`` times.

Directories are written atomically (:func:`forge.core.io.atomic_directory`): a killed run leaves the previous
directory in place.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from contracts.chat import ADDED_TOKENS, CHAT_TEMPLATE, EOS_TOKEN, IM_END, IM_START, PAD_TOKEN, SPECIAL_TOKENS
from forge.core.io import atomic_directory
from forge.core.stage import Stage, StageConfig
from forge.core.warehouse import CORPUS_CATEGORIES, fetch_all, iter_rows

log = logging.getLogger(__name__)

DEFAULT_MODEL_MAX_LENGTH = 2048


def _wrap(tokenizer_object, model_max_length: int):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        model_max_length=model_max_length,
        additional_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def train_tokenizer(
    texts: Iterable[str],
    out_dir: str | os.PathLike[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> Path:
    """Train a byte-level BPE of ``vocab_size`` ids (all tokens included) on ``texts``; return ``out_dir``.

    Byte-level (GPT-2 style pre-tokenizer and decoder, the 256 byte symbols always in the
    vocabulary) so any string round-trips through encode/decode with no unknown token and no
    normalization. ``texts`` is streamed; the trainer keeps word counts, not the texts. BOS is set
    to ``<|endoftext|>`` (as in GPT-2) but never inserted automatically: packing appends EOS after
    each document instead.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    reserved = len(SPECIAL_TOKENS) + len(ADDED_TOKENS)
    if vocab_size < reserved + 256:
        raise ValueError(
            f"vocab_size {vocab_size} is below the {reserved + 256} ids of bytes and special tokens"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps offsets exact, which the assistant mask (char -> token) relies on.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *ADDED_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer registers all reserved tokens as special; the tool tags must stay visible in
    # decode(skip_special_tokens=True), so flip their flag (the tokenizers API has no setter).
    spec = json.loads(tok.to_str())
    for entry in spec["added_tokens"]:
        if entry["content"] in ADDED_TOKENS:
            entry["special"] = False
    tok = Tokenizer.from_str(json.dumps(spec))
    hf_tok = _wrap(tok, model_max_length)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        hf_tok.save_pretrained(tmp)
    log.info("trained tokenizer: %d ids -> %s", len(hf_tok), out_dir)
    return out_dir


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def load_or_adapt_tokenizer(
    name_or_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    model_max_length: int | None = None,
) -> Path:
    """Load a base model's tokenizer, bring it to the project's layout (our special tokens and chat template), save it to ``out_dir``; return ``out_dir``.

    ``name_or_path`` is a local directory, or a hub id (only when ``HF_HUB_OFFLINE`` is not set;
    offline, a non-directory raises ``FileNotFoundError`` instead of trying the network). Missing
    special tokens (``<|endoftext|>``, ``<|pad|>``, ``<|im_start|>``, ``<|im_end|>``) and tool tags
    are appended after the base vocabulary, so existing ids never move; eos/pad are set to ours and
    the chat template replaced. If tokens were added, the model's embeddings must be resized to
    ``len(tokenizer)`` (the new rows are untrained). The ids added are logged and stored in
    ``forge_adapted.json`` beside the tokenizer files.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    src = Path(name_or_path)
    if not src.is_dir() and _hub_offline():
        raise FileNotFoundError(f"{name_or_path!s} is not a local directory and HF_HUB_OFFLINE is set")
    tok = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=_hub_offline())
    if not getattr(tok, "is_fast", False):
        raise TypeError(f"{name_or_path!s} has no fast tokenizer; packing and masks need one")
    n_before = len(tok)
    vocab = tok.get_vocab()
    new_special = [t for t in SPECIAL_TOKENS if t not in vocab]
    new_added = [t for t in ADDED_TOKENS if t not in vocab]
    if new_special:
        tok.add_special_tokens(
            {
                "additional_special_tokens": [
                    AddedToken(t, special=True, normalized=False) for t in new_special
                ]
            },
            replace_extra_special_tokens=False,
        )
    if new_added:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in new_added])
    tok.eos_token = EOS_TOKEN
    tok.pad_token = PAD_TOKEN
    if tok.bos_token is None:
        tok.bos_token = EOS_TOKEN
    tok.chat_template = CHAT_TEMPLATE
    if model_max_length is not None:
        tok.model_max_length = model_max_length
    added = {t: tok.convert_tokens_to_ids(t) for t in [*new_special, *new_added]}
    for t in (*SPECIAL_TOKENS, *ADDED_TOKENS):
        if len(tok.encode(t, add_special_tokens=False)) != 1:
            raise ValueError(f"{t!r} does not encode to a single id in the adapted tokenizer")
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        tok.save_pretrained(tmp)
        meta = {"base": str(name_or_path), "base_len": n_before, "len": len(tok), "added_ids": added}
        (tmp / "forge_adapted.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("adapted tokenizer %s: added %s -> %s", name_or_path, added, out_dir)
    return out_dir


class TokenizerConfig(StageConfig):
    """The profile's ``tokenizer`` section: adapt a base model's tokenizer, or train one."""

    #: a base model's tokenizer (local path or hub id) to adapt instead of training one
    base: str | None = None
    #: vocabulary of a trained tokenizer, added tokens included
    vocab_size: int = 8192
    #: training-split documents read to train it (None: all), spread evenly over the categories
    max_train_docs: int | None = None


def _train_texts(warehouse: Path, max_docs: int | None) -> Iterator[str]:
    """Training-split texts, interleaved across categories in a stable hashed order."""
    per_category = -(-int(max_docs) // len(CORPUS_CATEGORIES)) if max_docs else 10**12
    query = f"""
        select text from fct_corpus_documents
        where split = 'train'
        qualify row_number() over (partition by category order by hash(doc_id)) <= {per_category}
        order by hash(doc_id)
    """
    for row in iter_rows(warehouse, query):
        yield row["text"]


def build_tokenizer(cfg: TokenizerConfig, *, warehouse: Path, out_dir: Path) -> dict[str, Any]:
    """Train a byte-level BPE on the corpus' training split, or adapt the configured base model's
    tokenizer; report its size and characters per token on a validation sample."""
    from transformers import AutoTokenizer

    if cfg.base:
        load_or_adapt_tokenizer(cfg.base, out_dir)
        origin = f"adapted from {cfg.base}"
    else:
        train_tokenizer(_train_texts(warehouse, cfg.max_train_docs), out_dir, cfg.vocab_size)
        origin = "trained on fct_corpus_documents (train split)"
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    sample = fetch_all(
        warehouse, "select category, text from fct_corpus_documents where split = 'validation' limit 200"
    )
    chars = sum(len(r["text"]) for r in sample)
    toks = sum(len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in sample)
    return {
        "origin": origin,
        "vocab_size": len(tok),
        "chars_per_token_validation": round(chars / toks, 3) if toks else None,
        "eos_token": tok.eos_token,
        "has_chat_template": bool(tok.chat_template),
    }


TOKENIZER_STAGE = Stage("tokenizer", TokenizerConfig, build_tokenizer)
