"""Pure text renderings: API documentation, trajectories as CPT text, SFT records, and the
template text (user requests, assistant answers) of synthesized trajectories.

Nothing here reads files or the network; every function maps rows to strings so the corpus step
and the tests can call them directly.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from contracts.sft import SftRow
from forge.synth.arguments import humanize, phrase_arguments

_MAX_DOC_CHARS = 6000
_MAX_GROUP_CHARS = 40_000


# --- API documentation ------------------------------------------------------------------------
def render_api_doc(row: dict, *, with_header: bool = True) -> str:
    """Markdown documentation of one operation: where it lives, what it does, its parameters
    (type, required, description, enum, default, format, bounds) and its response codes."""
    lines: list[str] = []
    name = row.get("function_name") or ""
    if with_header:
        lines.append(f"# {row.get('api_name') or row.get('provider')}: {name}")
        lines.append(
            f"Provider: {row.get('provider')} | API: {row.get('api_name')} | Version: {row.get('version')}"
        )
    else:
        lines.append(f"## {name}")
    method = (row.get("method") or "").upper()
    if method in ("FUNCTION", "METHOD", "CLASS"):
        lines.append(f"Python {method.lower()}: `{row.get('path')}`")
    elif row.get("path"):
        lines.append(f"Endpoint: `{method} {row.get('path')}`")
    for text in (row.get("summary"), row.get("description")):
        text = (text or "").strip()
        if text and text not in "\n".join(lines):
            lines += ["", text]
    schema = _loads(row.get("parameters"), {})
    props = schema.get("properties") if isinstance(schema, dict) else None
    lines += ["", "Parameters:"]
    if isinstance(props, dict) and props:
        required = set(map(str, schema["required"])) if isinstance(schema.get("required"), list) else set()
        for pname, sub in props.items():
            lines += _param_lines(pname, sub, pname in required, 0)
    else:
        lines.append("- (none)")
    responses = _loads(row.get("responses"), {})
    if isinstance(responses, dict) and responses:
        lines += ["", "Responses:"]
        for code, resp in responses.items():
            resp = resp if isinstance(resp, dict) else {}
            desc = (resp.get("description") or "").strip()
            fields = _field_names(resp.get("schema"))
            extra = f" Fields: {', '.join(fields)}." if fields else ""
            lines.append(f"- {code}: {desc}{extra}".rstrip())
    text = "\n".join(lines)
    return text if len(text) <= _MAX_DOC_CHARS else text[: _MAX_DOC_CHARS - 20].rstrip() + "\n[... truncated]"


def _param_lines(name: str, schema: Any, required: bool, depth: int) -> list[str]:
    """Markdown lines for one parameter and (two levels of) its properties. Specs are outside data:
    any field may hold the wrong type, so each is read defensively rather than trusted."""
    schema = schema if isinstance(schema, dict) else {}
    t = schema.get("type")
    kind = (
        "/".join(map(str, t))
        if isinstance(t, list)
        else str(t or "") or ("object" if "properties" in schema else "any")
    )
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if kind == "array" and items.get("type"):
        kind = f"array of {items['type']}"
    bits = [kind, "required" if required else "optional"]
    if schema.get("format"):
        bits.append(f"format {schema['format']}")
    description = schema.get("description")
    desc = " ".join(description.split())[:300] if isinstance(description, str) else ""
    line = f"{'  ' * depth}- `{name}` ({', '.join(bits)})" + (f": {desc}" if desc else "")
    notes = []
    if isinstance(schema.get("enum"), list):
        notes.append("one of " + ", ".join(json.dumps(v, default=str) for v in schema["enum"][:20]))
    if "default" in schema:
        notes.append(f"default {json.dumps(schema['default'], default=str)}")
    for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems"):
        if key in schema:
            notes.append(f"{key} {schema[key]}")
    if notes:
        line += f" [{'; '.join(notes)}]"
    out = [line]
    sub = schema.get("properties") or items.get("properties")
    if isinstance(sub, dict) and depth < 2:
        req = schema.get("required") or items.get("required") or []
        req = set(map(str, req)) if isinstance(req, list) else set()
        for child, child_schema in list(sub.items())[:25]:
            out += _param_lines(str(child), child_schema, str(child) in req, depth + 1)
    return out


def _field_names(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    if isinstance(schema.get("items"), dict):
        schema = schema["items"]
    props = schema.get("properties")
    return list(props)[:15] if isinstance(props, dict) else []


def render_api_group(rows: list[dict], *, max_chars: int = _MAX_GROUP_CHARS) -> str:
    """One API's operations as one document, capped at ``max_chars``; operations that do not fit
    are listed by name at the end so the document still says they exist."""
    if not rows:
        return ""
    first = rows[0]
    head = [
        f"# {first.get('api_name') or first.get('provider')} (version {first.get('version')})",
        f"Provider: {first.get('provider')}. {len(rows)} operations.",
    ]
    names = [row.get("function_name") or "" for row in rows]
    reserve = min(sum(len(n) + 2 for n in names) + 40, max_chars // 3)  # room to list what won't fit
    text, left = "\n".join(head), []
    for row, name in zip(rows, names, strict=True):
        doc = render_api_doc(row, with_header=False)
        if left or len(text) + len(doc) + 2 > max_chars - reserve:
            left.append(name)
            continue
        text += "\n\n" + doc
    if left:
        listing = f"\n\nAlso available ({len(left)} more): "
        room = max_chars - len(text) - len(listing)
        shown = ", ".join(left)
        if len(shown) > room:
            shown = shown[: max(0, room - 5)].rsplit(", ", 1)[0] + ", ..."
        text += listing + shown
    return text


# --- trajectories -----------------------------------------------------------------------------
def render_trajectory_text(traj_row: dict, api_docs: dict[str, str] | None = None) -> str:
    """CPT text: the tools' documentation, then the conversation, one turn per paragraph.

    ``api_docs`` maps api_id (or function name) to :func:`render_api_doc` text; tools without an
    entry are documented from the trajectory's own tool documents."""
    tools = _loads(traj_row.get("tools"), [])
    messages = _loads(traj_row.get("messages"), [])
    api_docs = api_docs or {}
    docs = [api_docs[a] for a in traj_row.get("api_ids") or [] if a in api_docs]
    for tool in tools:
        if tool.get("name") in api_docs:
            docs.append(api_docs[tool["name"]])
        elif not any(f": {tool.get('name')}\n" in d or f"## {tool.get('name')}\n" in d for d in docs):
            docs.append(_tool_text(tool))
    parts = ["# Tools", "\n\n".join(dict.fromkeys(docs)) or "(no tools)", "# Conversation"]
    for m in messages:
        role, content = m.get("role"), (m.get("content") or "").strip()
        if role == "system":
            parts.append(f"System: {content}")
        elif role == "user":
            parts.append(f"User: {content}")
        elif role == "tool":
            parts.append(f"Observation ({m.get('name')}): {content}")
        elif role == "assistant":
            if content:
                parts.append(f"Assistant: {content}")
            for c in m.get("tool_calls") or []:
                args = json.dumps(c.get("arguments"), ensure_ascii=False, sort_keys=True)
                parts.append(f"Assistant calls {c.get('name')}({args})")
    return "\n\n".join(parts)


def _tool_text(tool: dict) -> str:
    schema = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    req = set(schema.get("required") or [])
    lines = [f"## {tool.get('name')}", tool.get("description") or "", "Parameters:"]
    lines += [ln for p, s in props.items() for ln in _param_lines(p, s, p in req, 0)] or ["- (none)"]
    return "\n".join(lines)


def sft_record(traj_row: dict) -> dict:
    """A trajectory row as an SFT row (:class:`contracts.sft.SftRow`, as written), JSON columns parsed."""
    return SftRow(
        traj_row["trajectory_id"], _loads(traj_row.get("messages"), []), _loads(traj_row.get("tools"), [])
    ).to_json()


def _loads(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return default


# --- conversation templates (template-v1) -----------------------------------------------------
SYSTEM_PROMPTS = [
    "You are a helpful assistant that can call functions to answer the user.",
    "You are an API assistant. Use the provided tools when they fit the request; otherwise answer directly.",
    "You have access to the following tools. Call them with valid JSON arguments when needed.",
]
OFF_TOPIC = [
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen, published in 1813."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 °C at sea level."),
    ("Translate 'good morning' into Spanish.", "'Good morning' in Spanish is 'buenos días'."),
    ("How many days are there in a leap year?", "A leap year has 366 days."),
    ("What's the capital of Australia?", "The capital of Australia is Canberra."),
    ("Explain in one sentence what TCP is.", "TCP is a connection-oriented protocol that delivers a reliable, ordered byte stream between two hosts."),
]  # fmt: skip
_VERBS = set(
    "get list create update delete retrieve fetch search find add remove set send check return post put patch "
    "upload download generate validate cancel start stop run compute calculate convert show describe query count "
    "register subscribe enable disable replace read write modify reset verify submit approve invite assign export "
    "import lookup obtain request look make book track estimate translate detect analyze publish archive restore "
    "resend revoke grant attach detach move copy rename sync refresh close open pause resume schedule follow "
    "unfollow like unlike block unblock join leave accept decline reject mark clear test trigger execute link "
    "unlink merge share transfer pay charge refund confirm complete initiate purchase reply comment vote rate "
    "save load parse render print scan ping notify tag untag star unstar watch unwatch ban unban invite process "
    "manage configure install provision deploy invoke apply authenticate authorize login logout sign encode decode "
    "encrypt decrypt compare predict classify summarize extract filter sort group aggregate resolve reserve "
    "release use provide determine".split()
)
_ASK = [
    "Please {action}{args}.", "Could you {action}{args}?", "I need to {action}{args}.",
    "Can you help me {action}{args}?", "{Action}{args}, please.", "I'd like to {action}{args}.",
]  # fmt: skip
_WITH = [" with {a}", " using {a}", " for {a}", ". Use {a}"]
_ANSWER = [
    "Here is the result: {facts}.", "Done. {Facts}.", "The call succeeded: {facts}.",
    "All set. I got back {facts}.", "I ran {fn} and got {facts}.",
]  # fmt: skip
_NONE_FIT = [
    "I can't do that with the tools I have: they only cover {scope}. You'll need a different service for this request.",
    "None of the available functions fits this request. They are for {scope}, so I won't call any of them.",
    "Sorry, the tools available here ({scope}) can't handle that request.",
]  # fmt: skip


def action_phrase(row: dict) -> str:
    """An imperative phrase for what an operation does: 'Returns a list of users.' -> 'return a
    list of users'; falls back to the method and the function name."""
    text = (row.get("summary") or "").strip() or re.split(
        r"(?<=[.!?])\s", (row.get("description") or "").strip()
    )[0]
    text = " ".join(text.split()).rstrip(".!?:;")
    if not text or len(text) > 140:
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(
            (row.get("method") or "").upper(), "call"
        )
        return f"{verb} {humanize(row.get('function_name') or 'the operation')}"
    words = text.split()
    first = words[0].lower().strip(",:;")
    stem = _stem(first)
    nxt = words[1].lower().strip(",") if len(words) > 1 else ""
    if first in _VERBS:
        words[0] = first
    elif stem in _VERBS or (stem != first and nxt in _OBJECT_STARTS):  # 'Changes the ...' -> 'change the ...'
        words[0] = stem + words[0][len(words[0].rstrip(",:;")) :]
    else:
        words = ["get", *words]
    if len(words) > 1 and words[1][:1].isupper() and not words[1].isupper():
        words[1] = words[1].lower()
    return " ".join(words)


_OBJECT_STARTS = set(
    "a an the all one or information details data list specified existing given new your its their each "
    "every any up in".split()
)


def _stem(word: str) -> str:
    """Third-person verb -> base form ('returns' -> 'return', 'fetches' -> 'fetch', 'queries' -> 'query')."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def facts(observation: str, limit: int = 3) -> str:
    """A few scalar fields of a JSON observation, as prose: 'id 42, status active and total 3'."""
    body = _loads(observation, None)
    found: list[str] = []
    todo = [body]
    while todo and len(found) < limit:
        node = todo.pop(0)
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str | int | float | bool) and len(found) < limit and k not in ("request",):
                    found.append(f"{humanize(k)} {v}")
                elif isinstance(v, dict | list):
                    todo.append(v)
        elif isinstance(node, list) and node:
            todo.append(node[0])
    if not found:
        return "an empty result" if body in ({}, [], None) else "the requested data"
    return found[0] if len(found) == 1 else ", ".join(found[:-1]) + " and " + found[-1]


class TemplateGenerator:
    """Template text for requests and answers (the default :class:`forge.synth.trajectories.TextGenerator`).

    Requests state every argument value verbatim (via :func:`phrase_arguments`), so a model can
    and must copy them into its call."""

    name = "template-v1"

    def write_request(
        self, ops: list[dict], args: list[dict], *, pattern: str, rng: random.Random, link: dict | None = None
    ) -> str:
        parts = [self._ask(op, a, rng) for op, a in zip(ops, args, strict=True)]
        if pattern == "parallel":
            listed = "; ".join(f"({i}) {phrase_arguments(a)}" for i, a in enumerate(args, 1))
            return rng.choice(
                ["Please {action} for each of these: {l}.", "I need to {action} {n} times: {l}."]
            ).format(action=action_phrase(ops[0]), l=listed, n=len(args))
        if pattern == "multi_step" and link:
            rest = phrase_arguments(args[1])
            then = action_phrase(ops[1]) + (f" with {rest}" if rest else "")
            first = parts[0].rstrip(".?!").removesuffix(", please")
            return f"{first}, and then use the {humanize(link['field'])} from the result to {then}."
        if len(parts) > 1:
            joined = rng.choice(["First, {a} Then, {b}", "{a} Also, {b}", "Two things. {a} And {b}"])
            rest = " ".join(_lower_first(p) for p in parts[1:])
            return joined.format(a=parts[0], b=rest)
        return parts[0]

    @staticmethod
    def _ask(op: dict, args: dict, rng: random.Random) -> str:
        action = action_phrase(op)
        phrased = phrase_arguments(args)
        tail = rng.choice(_WITH).format(a=phrased) if phrased else ""
        return rng.choice(_ASK).format(action=action, Action=action[:1].upper() + action[1:], args=tail)

    def write_answer(
        self, ops: list[dict], args: list[dict], observations: list[str], *, pattern: str, rng: random.Random
    ) -> str:
        if pattern == "irrelevance":
            scope = "; ".join(action_phrase(op) for op in ops[:3]) or "other tasks"
            return rng.choice(_NONE_FIT).format(scope=scope)
        errors = [_error_message(o) for o in observations]
        if any(errors):
            failed = "; ".join(
                f"{op.get('function_name')}: {e}" for op, e in zip(ops, errors, strict=False) if e
            )
            return f"Some of the calls failed ({failed}), so I could not complete the request."
        if len(observations) == 1:
            f = facts(observations[0])
            return rng.choice(_ANSWER).format(
                facts=f, Facts=f[:1].upper() + f[1:], fn=ops[0].get("function_name")
            )
        listed = "; ".join(f"{i}) {facts(o)}" for i, o in enumerate(observations, 1))
        return rng.choice(["Here are the results: {l}.", "All {n} calls succeeded: {l}."]).format(
            l=listed, n=len(observations)
        )


def _error_message(observation: str) -> str | None:
    body = _loads(observation, None)
    err = body.get("error") if isinstance(body, dict) else None
    return str(err.get("message", err)) if isinstance(err, dict) else (str(err) if err else None)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
