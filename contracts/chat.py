"""The model-facing chat format, in one place: the Jinja chat template that renders it and the
plain-Python helpers that render and parse tool calls.

One definition of the format serves three readers: the tokenizer (``chat_template`` saved with it,
rendered by ``transformers``' ``apply_chat_template``), SFT (the ``{% generation %}`` blocks give the
assistant-only loss mask via ``return_assistant_tokens_mask=True``), and evaluation (which parses
``<tool_call>`` blocks back out of generated text with :func:`parse_tool_call_blocks`). The
template renders::

    <|im_start|>system
    {system content}

    # Tools
    You may call one or more functions. ...
    <tools>
    {tool json, one per line}
    </tools>
    For each call, return a JSON object ... inside <tool_call></tool_call> tags.<|im_end|>
    <|im_start|>user
    {content}<|im_end|>
    <|im_start|>assistant
    {optional content}<tool_call>
    {"name": "fn", "arguments": {"a": 1}}
    </tool_call><|im_end|>
    <|im_start|>tool
    <tool_response>
    {content}
    </tool_response><|im_end|>

Choices fixed here:
- The system block appears when the first message is a system message or tools are given. With
  tools but no system message it holds the Tools section alone (no blank lines before it). A
  system message that is not first is rendered as an ordinary ``system`` turn.
- Tools are rendered with ``tojson`` exactly as given (BFCL type names untouched); an
  OpenAI-style ``{"type": "function", "function": {...}}`` wrapper is unwrapped so every tool line
  has the same shape.
- Tool-call arguments given as a dict are rendered with ``tojson`` (``json.dumps`` spacing, key
  order kept). Arguments given as a JSON *string* are inserted verbatim (Jinja cannot parse JSON);
  :func:`normalize_messages` parses them first so our own pipeline always renders dicts.
- The mask (``{% generation %}``) covers the assistant's content, tool calls and the closing
  ``<|im_end|>`` (the model must learn to stop), not the ``<|im_start|>assistant\\n`` header and
  not the newline after ``<|im_end|>``.
- Each tool message is its own ``tool`` turn (consecutive results are not merged).

Only the standard library is imported: :func:`apply_chat_format` takes any object with
``transformers``' ``apply_chat_template`` method.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

EOS_TOKEN = "<|endoftext|>"  # document separator / EOS for pre-training
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # end of a chat turn (EOS when generating chat)

# Special tokens, in the id order a freshly trained tokenizer gives them (0, 1, 2, 3).
SPECIAL_TOKENS: tuple[str, ...] = (EOS_TOKEN, PAD_TOKEN, IM_START, IM_END)
# Non-special added tokens: single ids, but kept by ``decode(skip_special_tokens=True)`` because
# evaluation parses them out of generated text.
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
ADDED_TOKENS: tuple[str, ...] = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE)

# One ``<tool_call>`` block of generated text: the JSON between the tags, surrounding whitespace
# dropped. Non-greedy, so consecutive blocks are found one by one.
TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)

TOOLS_PREAMBLE = (
    "# Tools\n"
    "You may call one or more functions. Function signatures, one JSON object per line, "
    "inside <tools></tools>:\n<tools>\n"
)
TOOLS_POSTAMBLE = (
    "</tools>\nFor each call, return a JSON object with the function name and arguments "
    "inside <tool_call></tool_call> tags."
)

# Every character of output comes from a `{{ ... }}` expression; all tags trim the template's own
# layout whitespace (`-`). transformers renders with trim_blocks/lstrip_blocks, so literal text next to
# tags would be fragile; here the layout below is free to change without changing the output.
CHAT_TEMPLATE: str = r"""
{%- macro render_call(tc) -%}
    {%- if tc['function'] is defined and tc['function'] is mapping -%}
        {%- set fn = tc['function'] -%}
    {%- else -%}
        {%- set fn = tc -%}
    {%- endif -%}
    {%- set args = fn['arguments'] if fn['arguments'] is defined else {} -%}
    {{- '<tool_call>\n{"name": ' ~ (fn['name'] | tojson) ~ ', "arguments": ' -}}
    {%- if args is string -%}
        {{- args -}}
    {%- else -%}
        {{- args | tojson -}}
    {%- endif -%}
    {{- '}\n</tool_call>' -}}
{%- endmacro -%}
{%- set has_system = (messages | length > 0) and messages[0]['role'] == 'system' -%}
{%- if has_system or tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if has_system -%}
        {{- messages[0]['content'] -}}
        {%- if tools -%}{{- '\n\n' -}}{%- endif -%}
    {%- endif -%}
    {%- if tools -%}
        {{- TOOLS_PREAMBLE -}}
        {%- for tool in tools -%}
            {%- if tool['type'] is defined and tool['type'] == 'function' and tool['function'] is defined and tool['function'] is mapping -%}
                {{- tool['function'] | tojson -}}
            {%- else -%}
                {{- tool | tojson -}}
            {%- endif -%}
            {{- '\n' -}}
        {%- endfor -%}
        {{- TOOLS_POSTAMBLE -}}
    {%- endif -%}
    {{- '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if loop.first and has_system -%}
    {%- elif message['role'] == 'assistant' -%}
        {{- '<|im_start|>assistant\n' -}}
        {%- generation -%}
            {%- if message['content'] is defined and message['content'] is string -%}
                {{- message['content'] -}}
            {%- endif -%}
            {%- if message['tool_calls'] is defined and message['tool_calls'] -%}
                {%- for tc in message['tool_calls'] -%}
                    {%- if not loop.first -%}{{- '\n' -}}{%- endif -%}
                    {{- render_call(tc) -}}
                {%- endfor -%}
            {%- endif -%}
            {{- '<|im_end|>' -}}
        {%- endgeneration -%}
        {{- '\n' -}}
    {%- elif message['role'] == 'tool' -%}
        {{- '<|im_start|>tool\n<tool_response>\n' ~ message['content'] ~ '\n</tool_response><|im_end|>\n' -}}
    {%- elif message['role'] == 'user' or message['role'] == 'system' -%}
        {{- '<|im_start|>' ~ message['role'] ~ '\n' ~ message['content'] ~ '<|im_end|>\n' -}}
    {%- else -%}
        {{- raise_exception('unknown chat role: ' ~ message['role']) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
""".replace("TOOLS_PREAMBLE", json.dumps(TOOLS_PREAMBLE)).replace(
    "TOOLS_POSTAMBLE", json.dumps(TOOLS_POSTAMBLE)
)


def format_tool_call(name: str, arguments: Mapping[str, Any] | str) -> str:
    """One ``<tool_call>`` block exactly as the template renders it (no trailing newline).

    ``arguments`` as a dict is dumped like Jinja's ``tojson`` in transformers (``json.dumps`` with
    ``ensure_ascii=False``, default separators, key order kept); a string is inserted verbatim.
    """
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return (
        f'<tool_call>\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}\n</tool_call>'
    )


def _normalize_call(call: Mapping[str, Any]) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call.get("function"), Mapping) else call
    if "name" not in fn:
        raise ValueError(f"tool call without a name: {call!r}")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"tool call {fn['name']!r} has arguments that are not JSON: {args[:200]!r}"
            ) from exc
    out = {"name": fn["name"], "arguments": args}
    if call.get("id") is not None:
        out["id"] = call["id"]
    return out


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copy ``messages`` into the canonical message form: tool calls as ``{"id", "name", "arguments": dict}``.

    Accepts HF/OpenAI-style calls (``{"type": "function", "function": {...}}``) and JSON-string
    arguments; raises ``ValueError`` on arguments that are not JSON, so a bad row is reported by the
    caller rather than rendered as broken text. ``content=None`` becomes ``""``.
    """
    out = []
    for msg in messages:
        m = dict(msg)
        if m.get("content") is None:
            m["content"] = ""
        if m.get("tool_calls"):
            m["tool_calls"] = [_normalize_call(c) for c in m["tool_calls"]]
        else:
            m.pop("tool_calls", None)
        out.append(m)
    return out


def unwrap_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The plain tool document (name, description, parameters) from either our form or OpenAI's ``{"type": "function", ...}`` wrapper."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
        return dict(tool["function"])
    return dict(tool)


def apply_chat_format(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    *,
    tokenize: bool = False,
    return_assistant_mask: bool = False,
) -> Any:
    """Render (and optionally tokenize) a conversation with :data:`CHAT_TEMPLATE`.

    Messages are normalized first (see :func:`normalize_messages`). With ``tokenize=False``
    (default) returns the string; with ``tokenize=True`` returns the ``BatchEncoding`` of
    ``apply_chat_template(..., return_dict=True)``, including ``assistant_masks`` when
    ``return_assistant_mask`` is set. The template is passed explicitly so a tokenizer whose own
    template differs (a base model's) still renders our format.
    """
    msgs = normalize_messages(messages)
    tool_docs = [unwrap_tool(t) for t in tools] if tools else None
    if not tokenize:
        return tokenizer.apply_chat_template(
            msgs,
            tools=tool_docs,
            chat_template=CHAT_TEMPLATE,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )
    return tokenizer.apply_chat_template(
        msgs,
        tools=tool_docs,
        chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=return_assistant_mask,
    )


def format_tool_calls(calls: Sequence[Mapping[str, Mapping[str, Any]]]) -> str:
    """Decoded calls ``[{name: {arg: value}}, ...]`` as the template renders an assistant's calls.

    One :func:`format_tool_call` block per call, joined by a newline, exactly as the template joins
    the ``tool_calls`` of one assistant turn; :func:`parse_tool_call_blocks` reads them back.
    """
    return "\n".join(format_tool_call(name, args) for call in calls for name, args in call.items())


def has_tool_call(text: str) -> bool:
    """Whether ``text`` opens at least one ``<tool_call>`` block (closed or not)."""
    return TOOL_CALL_OPEN in text


def parse_tool_call_blocks(text: str) -> tuple[list[dict[str, dict[str, Any]]], list[str]]:
    """The ``<tool_call>`` blocks of ``text`` as decoded calls ``[{name: arguments}]`` plus errors.

    Text around the blocks is ignored. A block that is not a JSON object with a non-empty string
    ``name`` and an object ``arguments`` (or a JSON string holding one, OpenAI style; a missing
    ``arguments`` means ``{}``) is left out and described in the errors, as is an opening tag with
    no closing tag (output cut off). Never raises.
    """
    calls: list[dict[str, dict[str, Any]]] = []
    errors: list[str] = []
    blocks = TOOL_CALL_BLOCK.findall(text)
    if text.count(TOOL_CALL_OPEN) > len(blocks):
        errors.append(f"unterminated {TOOL_CALL_OPEN} block (output cut off?)")
    for index, block in enumerate(blocks):
        try:
            calls.append(_decode_call(block))
        except ValueError as exc:
            errors.append(f"tool_call {index}: {exc}")
    return calls, errors


def _decode_call(block: str) -> dict[str, dict[str, Any]]:
    try:
        payload = json.loads(block)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("missing or empty 'name'")
    arguments = payload.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI style: arguments serialised as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise ValueError("'arguments' is a string that is not JSON") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"'arguments' must be an object, got {type(arguments).__name__}")
    return {name: arguments}
