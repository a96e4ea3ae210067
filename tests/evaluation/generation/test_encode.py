"""IncrementalEncoder: the ids of growing prompts equal whole-prompt tokenization, with only the new text
tokenized; a tokenizer for which splitting at special tokens changes ids is detected and handled."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from evaluation.generation.encode import IncrementalEncoder
from evaluation.generation.generate import ChatSession, render_prompt

TOOLS = [
    {
        "name": f"get_{n}",
        "description": f"Look up the {n} of a city. " * 3,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    for n in ("weather", "time", "population")
]


def _conversations(rounds: int) -> list[list[dict]]:
    """Three conversations' message lists after each round (user, assistant with a call, tool result, ...)."""
    out = []
    for c in range(3):
        messages = [
            {"role": "user", "content": f"What is the weather in city {c}? Ünïcödé  spaces\tand tabs"}
        ]
        history = [list(messages)]
        for r in range(rounds):
            messages += [
                {
                    "role": "assistant",
                    "content": f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{c}{r}"}}}}</tool_call>',
                },
                {"role": "tool", "content": f'{{"temp": {r}, "note": "  trailing  "}}'},
            ]
            if r % 2:
                messages.append({"role": "user", "content": f"And round {r}?"})
            history.append(list(messages))
        out.append(history)
    return out


def test_growing_prompts_get_the_ids_of_whole_tokenization(tokenizer):
    encoder = IncrementalEncoder(tokenizer)
    histories = _conversations(4)
    for r in range(5):
        texts = [render_prompt(tokenizer, {"messages": h[r], "tools": TOOLS}) for h in histories]
        whole = tokenizer(texts, add_special_tokens=False)["input_ids"]
        assert encoder.encode(texts, keys=["a", "b", "c"]) == whole, f"round {r}"
    assert encoder.enabled and encoder.verified["split"] and encoder.verified["cached"]
    # from round 2 on most of each prompt came from the cache
    assert encoder.stats["cached_chars"] > encoder.stats["tokenized_chars"]
    # a prompt that does not extend its key's previous one (edited history) is tokenized from scratch
    edited = render_prompt(tokenizer, {"messages": [{"role": "user", "content": "new"}], "tools": TOOLS})
    assert encoder.encode([edited], keys=["a"]) == tokenizer([edited], add_special_tokens=False)["input_ids"]
    encoder.forget("b")
    assert "b" not in encoder._cache


def test_chat_session_encodes_keyed_prompts_incrementally(tokenizer, tiny_model):
    session = ChatSession(tiny_model, tokenizer, 4, 2)
    histories = _conversations(2)
    for r in range(3):
        prompts = [{"messages": h[r], "tools": TOOLS} for h in histories[:2]]
        expected = [
            tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts
        ]
        assert session.encode(prompts, keys=[0, 1]) == expected
        assert session.encode(prompts) == expected  # without keys: whole prompts
    assert session.encoder.stats["cached_chars"] > 0


class _CountingTokenizer:
    """A tokenizer whose ids are not additive over pieces: one id per call's text (its length)."""

    added_tokens_decoder = {0: SimpleNamespace(content="<|im_start|>", special=True)}

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[len(t)] for t in texts]}


def test_a_tokenizer_that_is_not_additive_falls_back_to_whole_prompts(caplog):
    encoder = IncrementalEncoder(_CountingTokenizer())
    texts = ["<|im_start|>user hi<|im_start|>assistant", "no special token here"]
    with caplog.at_level(logging.WARNING):
        assert encoder.encode(texts, keys=[1, 2]) == [[len(texts[0])], [len(texts[1])]]
    assert not encoder.enabled and "tokenizing whole prompts" in caplog.text
    assert encoder.encode([texts[0] + " more"], keys=[1]) == [[len(texts[0]) + 5]]


def _tools(name: str, words: int) -> list[dict]:
    return [{**tool, "description": f"{name} " * words} for tool in TOOLS]


def test_first_prompts_reuse_another_keys_head_with_the_same_tools(tokenizer):
    """Conversations with the same (long) tools share their system turn: a key's first prompt tokenizes
    only what follows a head another key's first prompt left; ids equal whole tokenization."""
    long_tools, other_tools = _tools("alpha", 120), _tools("beta", 120)

    def first(c: int, tools: list[dict]) -> str:
        return render_prompt(
            tokenizer, {"messages": [{"role": "user", "content": f"Question {c}?"}], "tools": tools}
        )

    def whole(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    encoder = IncrementalEncoder(tokenizer)
    texts = [first(0, long_tools)]
    assert encoder.encode(texts, keys=["a"]) == whole(texts) and encoder.stats["shared_chars"] == 0
    texts = [first(1, long_tools), first(2, other_tools), first(3, long_tools)]
    assert encoder.encode(texts, keys=["b", "c", "d"]) == whole(texts)
    system_turn = len(texts[0]) - len("Question 1?") - 60  # roughly: all but the user turn
    assert encoder.stats["shared_chars"] >= 2 * system_turn  # b and d, not c (other tools)
    assert encoder.verified["shared"]
    # a key that continues keeps using its own cache
    grown = [texts[0] + "Sure.<|im_end|>\n"]
    assert encoder.encode(grown, keys=["b"]) == whole(grown)
    # off: nothing shared
    plain = IncrementalEncoder(tokenizer, share_heads=False)
    texts = [first(0, long_tools), first(1, long_tools)]
    assert plain.encode(texts, keys=["a", "b"]) == whole(texts) and plain.stats["shared_chars"] == 0
    # heads are bounded: the least recently used go first
    small = IncrementalEncoder(tokenizer)
    small.HEADS = 2
    for c in range(4):
        small.encode([first(c, _tools(f"set{c}", 120))], keys=[c])
    assert len(small._heads) == 2


def test_first_prompts_of_one_call_tokenize_their_common_system_turn_once(tokenizer):
    """Conversations with the same tools starting in the same call: their system turn is one piece
    handed to the tokenizer once (no head was kept yet); ids equal whole tokenization."""
    tools = _tools("gamma", 120)
    texts = [
        render_prompt(tokenizer, {"messages": [{"role": "user", "content": f"Q{c}?"}], "tools": tools})
        for c in range(3)
    ]
    calls: list[list[str]] = []

    class Recording:
        added_tokens_decoder = tokenizer.added_tokens_decoder

        def __call__(self, batch, add_special_tokens=False):
            calls.append(list(batch))
            return tokenizer(batch, add_special_tokens=add_special_tokens)

    encoder = IncrementalEncoder(Recording(), share_lines=False)  # lines: the next test
    got = encoder.encode(texts, keys=[0, 1, 2])
    assert got == tokenizer(texts, add_special_tokens=False)["input_ids"]
    pieces = calls[0]  # then the verification's whole prompts
    head = max(pieces, key=len)  # the system turn
    assert texts[0].startswith(head) and len(head) > len(texts[0]) // 2
    assert pieces.count(head) == 1 and len(pieces) == len(set(pieces))
    assert encoder.stats["repeated_chars"] >= 2 * len(head)
    assert encoder.stats["tokenized_chars"] < sum(map(len, texts)) - 2 * len(head) + 1
    calls.clear()  # off: each prompt's copy tokenized, the same ids
    plain = IncrementalEncoder(Recording(), share_pieces=False, share_lines=False)
    assert plain.encode(texts, keys=[0, 1, 2]) == got
    assert calls[0].count(head) == 3 and plain.stats["repeated_chars"] == 0


class _Recording:
    """The tokenizer, recording each batch of texts its call tokenizes."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []
        self.added_tokens_decoder = tokenizer.added_tokens_decoder

    def __call__(self, batch, add_special_tokens=False):
        self.calls.append(list(batch))
        return self.tokenizer(batch, add_special_tokens=add_special_tokens)


def test_long_system_turns_are_tokenized_line_by_line_each_line_once(tokenizer):
    """Tool sets that share tools (BFCL: 266 sets, 134 distinct lines): a system turn past LINES_FROM
    characters is tokenized line by line, a line seen before not again; ids equal whole tokenization,
    and the first line-split pieces are checked whole."""

    def first(c: int, tools: list[dict]) -> str:
        return render_prompt(
            tokenizer, {"messages": [{"role": "user", "content": f"Question {c}?"}], "tools": tools}
        )

    a, b, c = _tools("alpha", 120), _tools("beta", 120), _tools("gamma", 120)
    recording = _Recording(tokenizer)
    encoder = IncrementalEncoder(recording, share_heads=False)
    assert len(recording.calls) == 1 and recording.calls[0][0] == encoder.LINES_PROBE  # the probe
    recording.calls.clear()
    encoder.LINES_VERIFY = 1
    texts = [first(0, a + b)]
    assert len(texts[0]) > encoder.LINES_FROM
    assert encoder.encode(texts, keys=[0]) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    handed = recording.calls[0]
    assert all(len(t) < 1000 for t in handed)  # lines, none of them the whole system turn
    assert sum('"description": "alpha' in t for t in handed) == len(a)  # one tool a line
    check = recording.calls[1]  # the check: the long piece tokenized whole
    assert len(check) == 1 and len(check[0]) >= encoder.LINES_FROM and texts[0].startswith(check[0])
    recording.calls.clear()
    texts = [first(1, a + c), first(2, a + c)]  # alpha's lines seen before, gamma's not
    assert encoder.encode(texts, keys=[1, 2]) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    handed = recording.calls[0]
    assert not any("alpha" in t or "beta" in t for t in handed)
    assert sum("gamma" in t for t in handed) == len(c)  # each of gamma's lines once, for both prompts
    assert encoder.stats["line_chars"] > 2 * len(a) * len(json.dumps(a[0]))
    assert len(recording.calls) == 1  # past LINES_VERIFY, no check this time
    # off: the long piece whole
    whole = IncrementalEncoder(_Recording(tokenizer), share_lines=False, share_heads=False)
    assert whole.encode(texts, keys=[1, 2]) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert whole.stats["line_chars"] == 0
    # bounded: the least recently used lines go first
    small = IncrementalEncoder(tokenizer, share_heads=False)
    small.LINES = 5
    small.encode([first(3, a + b + c)], keys=[3])
    assert len(small._lines) == 5


class _JoiningTokenizer:
    """One id per character, except a newline and the character after it when that is ``joins``, which
    are one id (a tokenizer for which the ids of lines put end to end are not a text's); special tokens
    one id."""

    added_tokens_decoder = {0: SimpleNamespace(content="<|im_end|>", special=True)}

    def __init__(self, joins: str) -> None:
        self.joins = joins

    def __call__(self, texts, add_special_tokens=False):
        out = []
        for text in texts:
            ids, i = [], 0
            while i < len(text):
                if text.startswith("<|im_end|>", i):
                    ids.append(0)
                    i += len("<|im_end|>")
                elif text[i] == "\n" and i + 1 < len(text) and text[i + 1] in self.joins:
                    ids.append(100_000 + ord(text[i + 1]))
                    i += 2
                else:
                    ids.append(ord(text[i]))
                    i += 1
            out.append(ids)
        return {"input_ids": out}


def test_a_tokenizer_joining_across_lines_tokenizes_long_pieces_whole(caplog):
    """A tokenizer that joins a newline with what follows fails the probe at the start (nothing split);
    one that joins only where the probe has no line (here before ``#``) is caught by the run-time check:
    that call's pieces and every later long piece are tokenized whole, the ids stay the tokenizer's."""
    assert not IncrementalEncoder(_JoiningTokenizer("abcdefghijklmnopqrstuvwxyz{")).share_lines
    assert IncrementalEncoder(_JoiningTokenizer("")).share_lines
    fake = _JoiningTokenizer("#")
    long = "\n".join(f"#line {n} of the tools" for n in range(200)) + "<|im_end|>"
    texts = [long + "user one", long.replace("tools", "docs") + "user two"]
    encoder = IncrementalEncoder(fake)
    assert encoder.share_lines  # the probe has no "\n#"
    with caplog.at_level(logging.INFO, logger="evaluation.generation.encode"):
        got = encoder.encode(texts, keys=[1, 2])
    assert got == fake(texts)["input_ids"]
    assert not encoder.share_lines and encoder.enabled and "line by line" in caplog.text
    assert encoder.encode([texts[0] + "\nmore"], keys=[3]) == fake([texts[0] + "\nmore"])["input_ids"]
    assert encoder.stats["line_chars"] == 0 and not encoder._lines


def test_lines_split_only_where_a_byte_level_bpe_keeps_the_newline_apart():
    """GPT-2's pattern keeps ``\n\n`` before a word as two pre-tokens but at a text's end as one (merged
    into one token where the vocabulary has it): lines are never cut after a run of whitespace, so even
    unchecked (LINES_VERIFY and VERIFY 0) the ids are the whole text's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # texts ending in "\n\n" (where the pattern keeps it one pre-token) teach the merge
    corpus = ['para one.\n\nPara two.\n\n{"a": 1}\n{"b": 2}\n\n'] * 50
    backend.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, additional_special_tokens=["<|im_end|>"])
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert ids("x.\n\n") + ids("Para") != ids("x.\n\nPara")  # the hazard: cut after "\n\n"
    encoder = IncrementalEncoder(tok)
    encoder.LINES_VERIFY, encoder.VERIFY, encoder.LINES_FROM = 0, 0, 64  # no run-time checks at all
    assert encoder.share_lines
    text = "".join(f'{{"tool": {n}}}\n' + ("\n" if n % 3 == 0 else "") + "Para two.\n" for n in range(40))
    texts = [text + "<|im_end|>q", text[5:] + "<|im_end|>r"]
    assert encoder.encode(texts, keys=[1, 2]) == [ids(t) for t in texts]
    assert encoder.stats["line_chars"] > 0 and encoder.share_lines


def test_pieces_go_to_the_rust_backend_only_where_it_gives_the_tokenizers_ids(tokenizer):
    """The backend's ``encode_batch_fast`` gives ``tokenizer(texts)``'s ids (special tokens, unicode,
    spaces); a backend with truncation set (the tokenizer's call would reset it), or whose special-token
    splitting is not the tokenizer's, is not used."""
    import copy

    from evaluation.generation.encode import backend_encoder

    texts = [render_prompt(tokenizer, {"messages": h[-1], "tools": TOOLS}) for h in _conversations(3)] + [
        "",
        "  leading and trailing  ",
        "Ünïcödé\tand <|im_end|> inside",
    ]
    fast = backend_encoder(tokenizer)
    assert fast is not None
    assert fast(texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    encoder = IncrementalEncoder(tokenizer)
    assert encoder._ids is not encoder._call  # the incremental path uses it
    truncating = copy.deepcopy(tokenizer)
    truncating.backend_tokenizer.enable_truncation(max_length=8)
    assert backend_encoder(truncating) is None
    splitting = copy.deepcopy(tokenizer)
    splitting.backend_tokenizer.encode_special_tokens = True
    assert backend_encoder(splitting) is None
    assert backend_encoder(SimpleNamespace()) is None  # a slow tokenizer: its call
    assert IncrementalEncoder(_CountingTokenizer())._ids.__func__ is IncrementalEncoder._call


def test_replies_decode_in_one_backend_call_with_the_tokenizers_texts(tokenizer, caplog):
    """ReplyDecoder: the backend's batch decoding gives ``tokenizer.decode``'s texts (special tokens
    skipped); a difference found by its check logs and falls back to decoding one by one."""
    from evaluation.generation.encode import ReplyDecoder

    texts = ["Ünïcödé  spaces\\tand tabs", '<tool_call>{"name": "get_weather"}</tool_call>', "", " lead"]
    generated = tokenizer(texts, add_special_tokens=False)["input_ids"]
    generated[1] = generated[1] + [tokenizer.convert_tokens_to_ids("<|im_end|>")]  # a special token, skipped
    expected = [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
    decoder = ReplyDecoder(tokenizer)
    assert decoder._batch is not None
    assert decoder(generated) == expected and decoder.verified == len(generated)

    class Cleaning(SimpleNamespace):  # a tokenizer whose decode differs from its backend's
        def decode(self, ids, skip_special_tokens=False):
            return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens).strip()

    odd = Cleaning(backend_tokenizer=tokenizer.backend_tokenizer, clean_up_tokenization_spaces=False)
    decoder = ReplyDecoder(odd)
    with caplog.at_level(logging.WARNING):
        assert decoder(generated) == [t.strip() for t in expected]
    assert decoder._batch is None and "decoding one by one" in caplog.text
    # clean_up_tokenization_spaces: the tokenizer's own decode from the start
    assert ReplyDecoder(Cleaning(backend_tokenizer=None))._batch is None
    cleaning = Cleaning(backend_tokenizer=tokenizer.backend_tokenizer, clean_up_tokenization_spaces=True)
    assert ReplyDecoder(cleaning)._batch is None


@given(
    st.text(alphabet=st.sampled_from(["\n", " ", "\t", "a", "}", "{", "1", "é", "\u2028", "\r"]), max_size=60)
)
def test_split_lines_cuts_where_the_pattern_does_and_loses_nothing(text):
    """Cut after a newline between two non-whitespace characters, as the regex says; nothing lost."""
    import re

    from evaluation.generation.encode import split_lines

    assert split_lines(text) == re.split(r"(?<=\S\n)(?=\S)", text)
    assert "".join(split_lines(text)) == text
