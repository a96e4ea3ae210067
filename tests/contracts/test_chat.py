"""The chat template renders the chat format exactly, its generation blocks give an exact assistant mask,
and what it renders parses back to the same calls."""

from __future__ import annotations

import json
import re

import pytest
from transformers import AutoTokenizer

from contracts.chat import (
    ADDED_TOKENS,
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TOOL_CALL_BLOCK,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    apply_chat_format,
    format_tool_call,
    format_tool_calls,
    has_tool_call,
    normalize_messages,
    parse_tool_call_blocks,
)
from forge.corpus.tokenizer import train_tokenizer

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    # OpenAI/HF wrapper with BFCL type names: unwrapped, types untouched.
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time now.",
            "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}},
        },
    },
]

MESSAGES = [
    {"role": "system", "content": "You are a helpful agent."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "c2", "name": "get_time", "content": "14:05"},
    {"role": "assistant", "content": "It is 21 °C and 14:05 in Paris."},
]

EXPECTED = (
    "<|im_start|>system\n"
    "You are a helpful agent.\n"
    "\n"
    "# Tools\n"
    "You may call one or more functions. Function signatures, one JSON object per line, inside <tools></tools>:\n"
    "<tools>\n"
    '{"name": "get_weather", "description": "Current weather for a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}\n'
    '{"name": "get_time", "description": "Time now.", "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}}}\n'
    "</tools>\n"
    "For each call, return a JSON object with the function name and arguments inside <tool_call></tool_call> tags.<|im_end|>\n"
    "<|im_start|>user\n"
    "Weather and time in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "Let me check.<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    "</tool_call>\n"
    "<tool_call>\n"
    '{"name": "get_time", "arguments": {"tz": "Europe/Paris"}}\n'
    "</tool_call><|im_end|>\n"
    "<|im_start|>tool\n"
    "<tool_response>\n"
    '{"temp_c": 21}\n'
    "</tool_response><|im_end|>\n"
    "<|im_start|>tool\n"
    "<tool_response>\n"
    "14:05\n"
    "</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n"
    "It is 21 °C and 14:05 in Paris.<|im_end|>\n"
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    text = [json.dumps(TOOLS), EXPECTED, "The weather in Paris is nice. def f(x): return x + 1\n" * 20]
    return AutoTokenizer.from_pretrained(train_tokenizer(text * 5, tmp_path_factory.mktemp("tok") / "t", 600))


def test_template_renders_the_format_exactly(tok):
    assert tok.chat_template == CHAT_TEMPLATE
    assert tok.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False) == EXPECTED


def test_generation_prompt_and_no_tools_no_system(tok):
    msgs = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == "<|im_start|>user\nhi<|im_end|>\n"
    assert (
        tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    # Tools without a system message: the system block holds the Tools section alone.
    out = tok.apply_chat_template(msgs, tools=TOOLS[:1], tokenize=False)
    assert out.startswith("<|im_start|>system\n# Tools\nYou may call")
    assert out.endswith("tags.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n")


def test_content_none_and_unknown_role(tok):
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "name": "f", "arguments": {}}]},
    ]
    out = tok.apply_chat_template(msgs, tokenize=False)
    assert out.endswith(
        '<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>\n'
    )
    with pytest.raises(Exception, match="unknown chat role"):
        tok.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_format_tool_call_matches_template(tok):
    block = format_tool_call("get_weather", {"city": "Zürich", "days": [1, 2]})
    assert (
        block
        == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "days": [1, 2]}}\n</tool_call>'
    )
    msgs = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "1", "name": "get_weather", "arguments": {"city": "Zürich", "days": [1, 2]}}
            ],
        }
    ]
    assert block in tok.apply_chat_template(msgs, tokenize=False)


def test_normalize_messages_parses_string_arguments_and_rejects_bad_json():
    out = normalize_messages(MESSAGES)
    assert out[2]["tool_calls"][1] == {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}
    assert out[2]["tool_calls"][0] == {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}
    with pytest.raises(ValueError, match="not JSON"):
        normalize_messages(
            [{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{oops"}]}]
        )


def _expected_mask(rendered: str, offsets: list[tuple[int, int]]) -> list[int]:
    """1 for tokens inside an assistant output: after 'assistant\\n' up to and including <|im_end|>."""
    spans = [
        (m.end(), rendered.index("<|im_end|>", m.end()) + len("<|im_end|>"))
        for m in re.finditer(r"<\|im_start\|>assistant\n", rendered)
    ]
    return [int(any(s <= a and b <= e for s, e in spans)) for a, b in offsets]


def test_assistant_mask_covers_exactly_assistant_outputs(tok):
    out = tok.apply_chat_template(MESSAGES, tools=TOOLS, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    enc = tok(EXPECTED, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    assert mask == _expected_mask(EXPECTED, enc["offset_mapping"])
    masked_text = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert masked_text == (
        "Let me check.<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call>\n<tool_call>\n"
        '{"name": "get_time", "arguments": {"tz": "Europe/Paris"}}\n'
        "</tool_call><|im_end|>"
        "It is 21 °C and 14:05 in Paris.<|im_end|>"
    )
    # The closing <|im_end|> of each assistant turn is learned; headers are not.
    im_end, im_start = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|im_start|>")
    assert sum(m for i, m in zip(ids, mask, strict=True) if i == im_end) == 2
    assert all(m == 0 for i, m in zip(ids, mask, strict=True) if i == im_start)


def test_apply_chat_format_helper(tok):
    assert apply_chat_format(tok, MESSAGES, TOOLS) == EXPECTED
    enc = apply_chat_format(tok, MESSAGES, TOOLS, tokenize=True, return_assistant_mask=True)
    assert sum(enc["assistant_masks"]) > 0 and len(enc["assistant_masks"]) == len(enc["input_ids"])


def test_token_lists():
    assert SPECIAL_TOKENS == ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
    assert ADDED_TOKENS == ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")


CALLS = [
    {"get_weather": {"city": "Zürich", "days": [1, 2]}},
    {"get_time": {}},
    {"book": {"seats": {"row": 3, "ids": ["a", "b"]}, "ok": True, "price": 1.5, "note": None}},
]


def test_render_then_parse_roundtrips_calls():
    assert parse_tool_call_blocks(format_tool_calls(CALLS)) == (CALLS, [])
    assert parse_tool_call_blocks("") == ([], [])


def test_template_rendering_parses_back_to_the_same_calls(tok):
    msgs = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [{"name": n, "arguments": a} for call in CALLS for n, a in call.items()],
        },
    ]
    rendered = tok.apply_chat_template(msgs, tokenize=False)
    assert format_tool_calls(CALLS) in rendered
    assert parse_tool_call_blocks(rendered) == (CALLS, [])


def test_parse_reports_bad_blocks_and_keeps_good_ones():
    text = format_tool_calls(CALLS[:1]) + "<tool_call>\nnope\n</tool_call>" + "<tool_call>\n{}"
    calls, errors = parse_tool_call_blocks(text)
    assert calls == CALLS[:1]
    assert any("unterminated" in e for e in errors) and any("tool_call 1: invalid JSON" in e for e in errors)
    assert parse_tool_call_blocks('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>') == (
        [{"f": {"a": 1}}],
        [],
    )
    assert has_tool_call("x <tool_call>") and not has_tool_call("plain text")


def test_tag_constants_are_the_added_tokens():
    assert TOOL_CALL_BLOCK.pattern.startswith(TOOL_CALL_OPEN) and TOOL_CALL_CLOSE in TOOL_CALL_BLOCK.pattern
    assert ADDED_TOKENS[:2] == (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
