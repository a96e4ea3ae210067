"""Synthesized function-calling trajectories, every call executed by the mock executor.

Grain: ``per_api`` trajectories anchored on each API operation (row), each with a pattern drawn
from ``patterns`` (weights) among those the operation's API allows. Tools shown to the model come
from the anchor's API (provider, api_name, version), where function names are unique. Rows follow
contracts.tables.TRAJECTORIES; an invalid trajectory is yielded with ``is_valid`` False and counted
in ``stats`` under ``invalid_<reason>``; rows not used at all are counted as ``heldout``,
``bad_parameters`` or ``cannot_satisfy``. Deterministic for a seed: each trajectory draws from
``random.Random(f"{seed}|{api_id}|{k}")``. Text comes from :class:`TemplateGenerator` unless a
:class:`TextGenerator` (e.g. an LLM wrapper) is given.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from forge.core.io import sha256_text
from forge.core.stats import StepStats
from forge.synth.arguments import CannotSatisfy, generate_arguments, humanize, merge_all_of, name_tokens
from forge.synth.executor import MockExecutor, success_response
from forge.synth.stateful import Resource, StatefulExecutor, crud_resources
from forge.text.render import OFF_TOPIC, SYSTEM_PROMPTS, TemplateGenerator

PATTERNS = (
    "simple",
    "parallel",
    "multiple",
    "parallel_multiple",
    "multi_step",
    "irrelevance",
    "error_recovery",
    "stateful_crud",
    "stateful_recovery",
    "missing_parameter",
    "missing_function",
)
#: Multi-turn patterns over the stateful executor: they need a REST collection with a create and an
#: item operation (:func:`forge.synth.stateful.crud_resources`), so APIs without one never get them.
CRUD_PATTERNS = frozenset({"stateful_crud", "stateful_recovery"})
DEFAULT_WEIGHTS = {
    "simple": 0.18, "parallel": 0.1, "multiple": 0.15, "parallel_multiple": 0.08,
    "multi_step": 0.13, "irrelevance": 0.08, "error_recovery": 0.1,
    "stateful_crud": 0.08, "stateful_recovery": 0.06, "missing_parameter": 0.05, "missing_function": 0.05,
}  # fmt: skip
#: The user message that comes with functions added mid-conversation (BFCL's wording).
ADDED_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"
# Parameter names too generic to carry a result from one call into the next.
_NO_LINK = {
    "limit", "offset", "page", "format", "fields", "key", "apikey", "version", "apiversion", "lang",
    "language", "locale", "sort", "order", "callback", "pretty", "prettyprint", "alt", "quotauser",
    "oauthtoken", "accesstoken", "uploadtype", "uploadprotocol", "xgafv", "pagetoken", "maxresults",
    "pagesize", "status", "type", "expand", "include",
}  # fmt: skip


class TextGenerator(Protocol):
    """Writes the natural-language turns; :class:`forge.text.render.TemplateGenerator` by default, an LLM
    wrapper later. ``ops`` are API rows, ``args`` the call arguments (aligned with ``ops``)."""

    name: str  # recorded in the ``generator`` column

    def write_request(
        self, ops: list[dict], args: list[dict], *, pattern: str, rng: random.Random, link: dict | None = None
    ) -> str: ...

    def write_answer(
        self, ops: list[dict], args: list[dict], observations: list[str], *, pattern: str, rng: random.Random
    ) -> str: ...


@dataclass(eq=False)  # identity semantics: ops are compared and hashed as objects
class _Op:
    row: dict
    schema: dict
    tool: dict
    props: dict
    response_fields: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    norm_props: dict[str, str] = field(default_factory=dict)  # normalized name -> parameter name
    links: list | None = None  # (other op, parameter, response field), computed on first use
    param_index: dict | None = None  # the API's normalized parameter name -> [(op, parameter)]
    resource: Resource | None = None  # the REST collection this operation acts on (stateful patterns)
    crud: dict[str, _Op] | None = None  # that collection's operations by role


@dataclass
class _Convo:
    """A trajectory being built: messages, per-call records, and the executor that runs calls."""

    ex: MockExecutor | StatefulExecutor
    rng: random.Random
    messages: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)

    def run(
        self, batch: list[tuple[_Op, dict]], content: str = "", expected_error: bool = False
    ) -> list[Any]:
        """One assistant turn calling ``batch`` (in parallel), then one tool message per call."""
        ids = [f"call_{self.rng.getrandbits(40):010x}" for _ in batch]
        tool_calls = [
            {"id": i, "name": op.tool["name"], "arguments": a} for i, (op, a) in zip(ids, batch, strict=True)
        ]
        self.messages.append({"role": "assistant", "content": content, "tool_calls": tool_calls})
        results = []
        for call_id, (op, args) in zip(ids, batch, strict=True):
            res = self.ex.call(op.tool["name"], args)
            results.append(res)
            self.messages.append(
                {"role": "tool", "tool_call_id": call_id, "name": op.tool["name"], "content": res.output}
            )
            self.calls.append({
                "id": call_id, "name": op.tool["name"], "api_id": op.row.get("api_id"),
                "executed": res.validated, "valid": res.ok, "error": res.error, "expected_error": expected_error,
            })  # fmt: skip
        return results


def synthesize(
    api_rows: Iterable[dict],
    *,
    seed: int,
    per_api: int,
    patterns: dict[str, float] | None,
    heldout_providers: set[str],
    stats: StepStats,
    generator: TextGenerator | None = None,
    counters: Counter | None = None,
    created_at: dt.datetime | None = None,
) -> Iterator[dict]:
    """Yield TRAJECTORIES rows; see the module docstring for grain, counting and determinism.

    ``patterns`` maps pattern -> weight (None: DEFAULT_WEIGHTS; unknown names raise ValueError).
    ``counters`` (optional) receives pattern counts and how multi-step / error-recovery turned out.
    ``created_at`` stamps every row (default: now), so two runs differ only if asked to.
    """
    weights = dict(DEFAULT_WEIGHTS if patterns is None else patterns)
    unknown = set(weights) - set(PATTERNS)
    if unknown:
        raise ValueError(f"unknown patterns {sorted(unknown)}; known: {PATTERNS}")
    gen = generator or TemplateGenerator()
    counters = counters if counters is not None else Counter()
    created_at = created_at or dt.datetime.now(dt.UTC)
    groups = _group(api_rows, heldout_providers, stats)
    keys = sorted(groups)
    for key in keys:
        ex = MockExecutor([op.row for op in groups[key]], seed=seed)
        ops = []
        for op in groups[key]:  # an operation whose schema is itself invalid can't be called at all
            broken = ex.validator(op.tool["name"])[1]
            if broken:
                stats.drop("invalid_schema", f"{op.row.get('api_id')} {op.tool['name']}: {broken}")
            else:
                ops.append(op)
        _attach_resources(ops)
        index: dict[str, list[tuple[_Op, str]]] = defaultdict(list)  # normalized param -> (op, param)
        for op in ops:
            for n, p in op.norm_props.items():
                index[n].append((op, p))
        for op in ops:
            op.param_index = index
            for k in range(per_api):
                rng = random.Random(f"{seed}|{op.row.get('api_id')}|{k}")
                pattern = _choose(rng, weights, op, ops)
                j = rng.randrange(len(keys))
                foreign = (
                    groups[keys[j if keys[j] != key else (j + 1) % len(keys)]] if len(keys) > 1 else None
                )
                convo = _Convo(ex, rng)
                try:
                    pattern, tools = _BUILDERS[pattern](convo, op, ops, foreign, gen, counters)
                except CannotSatisfy as exc:
                    stats.drop("cannot_satisfy", f"{op.row.get('function_name')}: {exc}")
                    continue
                row = _finish(convo, pattern, tools, op, gen, seed, k, created_at)
                counters[f"pattern:{pattern}"] += 1
                if row["is_valid"]:
                    stats.keep()
                else:
                    stats.drop(
                        f"invalid_{row['invalid_reason']}", f"{row['trajectory_id']}: {row['calls'][:200]}"
                    )
                yield row


def _group(api_rows: Iterable[dict], heldout: set[str], stats: StepStats) -> dict[tuple, list[_Op]]:
    groups: dict[tuple, list[_Op]] = defaultdict(list)
    seen: set[tuple] = set()
    for row in api_rows:
        if row.get("provider") in heldout:
            stats.drop("heldout", row.get("provider"))
            continue
        if not isinstance(row.get("function_name"), str) or not row["function_name"]:
            stats.drop("bad_row", f"{row.get('api_id')}: no function_name")
            continue
        try:
            raw = row.get("parameters")
            schema = raw if isinstance(raw, dict) else json.loads(raw or '{"type": "object"}')
            if not isinstance(schema, dict):
                raise ValueError("not an object")
        except (TypeError, ValueError) as exc:
            stats.drop("bad_parameters", f"{row.get('api_id')}: {exc}")
            continue
        key = (row.get("provider") or "", row.get("api_name") or "", row.get("version") or "")
        if (key, row.get("function_name")) in seen:
            stats.drop("duplicate_function_name", f"{key}: {row.get('function_name')}")
            continue
        seen.add((key, row.get("function_name")))
        merged = merge_all_of(schema)
        props = merged.get("properties") if isinstance(merged.get("properties"), dict) else {}
        norm = {_norm(p): p for p in props if _norm(p) not in _NO_LINK}
        groups[key].append(_Op(row, schema, tool_doc(row, schema), props, _response_fields(row), norm))
    return groups


def tool_doc(row: dict, schema: dict | None = None) -> dict:
    """The tool document a model sees (rendered by ``contracts.chat``): name, description, JSON Schema parameters."""
    summary, desc = (row.get("summary") or "").strip(), (row.get("description") or "").strip()
    text = (
        summary
        if not desc or desc.startswith(summary.rstrip(".")) and summary
        else f"{summary} {desc}".strip()
    )
    text = (text or desc or row.get("function_name") or "")[:400]
    if schema is None:
        raw = row.get("parameters")
        schema = raw if isinstance(raw, dict) else json.loads(raw or '{"type": "object"}')
    return {"name": row.get("function_name"), "description": text, "parameters": schema}


def _response_fields(row: dict) -> dict[str, tuple[str | None, str]]:
    """Fields of the success response a later call could consume: normalized name -> (parent
    key, field). A nested ``Id`` under ``Inputs`` also answers to ``inputId``."""
    _, schema = success_response(row)
    found: dict[str, tuple[str | None, str]] = {}
    todo: list[tuple[Any, str | None, int]] = [(schema, None, 0)]
    while todo:
        s, parent, depth = todo.pop()
        if not isinstance(s, dict) or depth > 2:
            continue
        props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        for name, sub in props.items():
            found.setdefault(_norm(name), (parent, name))
            if parent and _norm(name) in ("id", "name", "arn", "key"):
                singular = parent[:-1] if parent.endswith("s") else parent
                found.setdefault(_norm(singular + name), (parent, name))
            todo.append((sub, name, depth + 1))
        if isinstance(s.get("items"), dict):
            todo.append((s["items"], parent, depth + 1))
    return found


def _norm(name: str) -> str:
    return "".join(name_tokens(name))


def _eligible(pattern: str, op: _Op, ops: list[_Op]) -> bool:
    if pattern == "parallel":
        return bool(op.props)
    if pattern in ("multiple", "parallel_multiple", "multi_step", "missing_function"):
        return len(ops) >= 2
    if pattern in CRUD_PATTERNS:
        return op.resource is not None
    if pattern == "missing_parameter":
        return bool([r for r in op.schema.get("required") or [] if r in op.props])
    return True


def _attach_resources(ops: list[_Op]) -> None:
    """Mark the operations of each REST collection (create, read, update, delete, list)."""
    by_name = {op.tool["name"]: op for op in ops}
    for resource in crud_resources(op.row for op in ops):
        crud = {role: by_name[name] for name, role in resource.roles().items() if name in by_name}
        if "create" not in crud or not {"read", "update", "delete"} & set(crud):
            continue
        for member in crud.values():
            member.resource, member.crud = resource, crud


def _choose(rng: random.Random, weights: dict[str, float], op: _Op, ops: list[_Op]) -> str:
    allowed = {p: w for p, w in weights.items() if w > 0 and _eligible(p, op, ops)}
    if not allowed:
        return "simple"
    names = sorted(allowed)
    return rng.choices(names, weights=[allowed[n] for n in names])[0]


def _args(convo: _Convo, op: _Op, include_optional: float = 0.5) -> dict:
    """Arguments that the executor accepts (a few redraws: ``oneOf`` can be ambiguous)."""
    args: dict = {}
    for _ in range(3):
        args = generate_arguments(
            op.schema, convo.rng, name_hint=op.tool["name"], include_optional=include_optional
        )
        if convo.ex.check(op.tool["name"], args) is None:
            break
    return args


def _distinct_args(convo: _Convo, op: _Op, n: int) -> list[dict]:
    out: list[dict] = []
    for _ in range(n * 4):
        a = _args(convo, op)
        if a and a not in out:
            out.append(a)
        if len(out) == n:
            break
    return out


def _pick_others(rng: random.Random, ops: list[_Op], exclude: list[_Op], n: int) -> list[_Op]:
    """``n`` distinct ops not in ``exclude``; rejection sampling keeps this O(n) for APIs with
    thousands of operations."""
    n = min(n, len(ops) - len(exclude))
    if len(ops) <= 4 * (n + len(exclude)) + 8:
        return rng.sample([o for o in ops if o not in exclude], max(n, 0))
    out: list[_Op] = []
    while len(out) < n:
        o = ops[rng.randrange(len(ops))]
        if o not in exclude and o not in out:
            out.append(o)
    return out


def _toolset(convo: _Convo, used: list[_Op], ops: list[_Op], extra: int) -> list[dict]:
    picked = used + _pick_others(convo.rng, ops, used, extra)
    convo.rng.shuffle(picked)
    return [o.tool for o in picked]


def _simple(convo, op, ops, foreign, gen, counters, *, distractors: int = 0, pattern: str = "simple"):
    args = _args(convo, op)
    _user(convo, gen, [op.row], [args], pattern)
    res = convo.run([(op, args)])
    _say(convo, gen.write_answer([op.row], [args], [r.output for r in res], pattern=pattern, rng=convo.rng))
    return pattern, _toolset(convo, [op], ops, distractors)


def _multiple(convo, op, ops, foreign, gen, counters):
    return _simple(
        convo, op, ops, foreign, gen, counters, distractors=convo.rng.randint(1, 3), pattern="multiple"
    )


def _parallel(convo, op, ops, foreign, gen, counters):
    batch = [(op, a) for a in _distinct_args(convo, op, convo.rng.randint(2, 3))]
    if len(batch) < 2:
        counters["parallel_downgraded"] += 1
        return _simple(convo, op, ops, foreign, gen, counters)
    return _batch(convo, batch, ops, gen, "parallel", distractors=0)


def _parallel_multiple(convo, op, ops, foreign, gen, counters):
    other = _pick_others(convo.rng, ops, [op], 1)[0]
    batch = [(op, _args(convo, op)), (other, _args(convo, other))]
    if convo.rng.random() < 0.5 and op.props:
        batch += [(op, a) for a in _distinct_args(convo, op, 2) if a != batch[0][1]][:1]
    return _batch(convo, batch, ops, gen, "parallel_multiple", distractors=convo.rng.randint(0, 1))


def _batch(convo, batch, ops, gen, pattern, distractors):
    rows, args = [o.row for o, _ in batch], [a for _, a in batch]
    _user(convo, gen, rows, args, pattern)
    res = convo.run(batch)
    _say(convo, gen.write_answer(rows, args, [r.output for r in res], pattern=pattern, rng=convo.rng))
    used = list(dict.fromkeys(o for o, _ in batch))
    return pattern, _toolset(convo, used, ops, distractors)


def _multi_step(convo, op, ops, foreign, gen, counters):
    """First call's result feeds the second when a response field names a parameter of another
    operation; otherwise two sequential calls (counted as ``multi_step_sequential``)."""
    if op.links is None:
        mine = op.response_fields
        index = op.param_index or {}
        op.links = [(o, p, mine[n]) for n in mine for o, p in index.get(n, ()) if o is not op]
    links = op.links
    other, param, fieldname = (
        convo.rng.choice(links) if links else (_pick_others(convo.rng, ops, [op], 1)[0], None, None)
    )
    args_a, args_b = _args(convo, op), _args(convo, other)
    shown_b = {k: v for k, v in args_b.items() if k != param}
    link = {"field": fieldname[1], "param": param} if param else None
    _user(convo, gen, [op.row, other.row], [args_a, shown_b], "multi_step", link=link)
    res_a = convo.run([(op, args_a)])[0]
    value = _find(json.loads(res_a.output), *fieldname) if param and res_a.ok else None
    if value is not None and convo.ex.check(other.tool["name"], {**args_b, param: value}) is None:
        args_b[param] = value
        counters["multi_step_linked"] += 1
        note = f"Using the {fieldname[1]} from that result, I'll now call {other.tool['name']}."
    else:
        counters["multi_step_sequential"] += 1
        note = f"Next, I'll call {other.tool['name']}."
    res_b = convo.run([(other, args_b)], content=note)[0]
    outputs = [res_a.output, res_b.output]
    _say(
        convo,
        gen.write_answer([op.row, other.row], [args_a, args_b], outputs, pattern="multi_step", rng=convo.rng),
    )
    return "multi_step", _toolset(convo, [op, other], ops, convo.rng.randint(0, 1))


def _find(obj: Any, parent: str | None, key: str, depth: int = 0) -> Any:
    """The first scalar ``key`` in a JSON body, under ``parent`` when given (searched at any
    depth up to 4, lists entered through their items)."""
    if depth > 4:
        return None
    if isinstance(obj, dict):
        if (
            parent is None
            and isinstance(obj.get(key), str | int | float)
            and not isinstance(obj.get(key), bool)
        ):
            return obj[key]
        if parent is not None and parent in obj:
            hit = _find(obj[parent], None, key, depth + 1)
            if hit is not None:
                return hit
        children = list(obj.values())
    else:
        children = obj if isinstance(obj, list) else []
    for child in children:
        found = _find(child, parent, key, depth + 1)
        if found is not None:
            return found
    return None


def _irrelevance(convo, op, ops, foreign, gen, counters):
    """Tools from this API, a request that none of them serves: the assistant answers in text."""
    tools = _toolset(convo, [op], ops, convo.rng.randint(0, 2))
    names = {t["name"] for t in tools}
    candidates = [o for o in foreign or [] if o.tool["name"] not in names]
    if candidates:
        other = convo.rng.choice(candidates)
        try:
            other_args = generate_arguments(other.schema, convo.rng)
        except CannotSatisfy:
            other_args = {}
        _user(convo, gen, [other.row], [other_args], "irrelevance")
        shown = [o.row for o in ops if o.tool["name"] in names]
        _say(convo, gen.write_answer(shown, [], [], pattern="irrelevance", rng=convo.rng))
    else:  # a single API in the input: off-topic questions with known answers
        question, answer = convo.rng.choice(OFF_TOPIC)
        convo.messages.append({"role": "user", "content": question})
        _say(convo, answer)
    return "irrelevance", tools


def _error_recovery(convo, op, ops, foreign, gen, counters):
    """A first call with one deliberately wrong argument, the error body, a corrected call."""
    args = _args(convo, op)
    options = _corruptions(convo.rng, op, args)
    chosen = next(((b, w) for b, w in options if convo.ex.check(op.tool["name"], b) is not None), None)
    if chosen is None:
        counters["error_recovery_downgraded"] += 1
        return _simple(convo, op, ops, foreign, gen, counters)
    bad, what = chosen
    counters[f"error_injected:{what}"] += 1
    _user(convo, gen, [op.row], [args], "error_recovery")
    first = convo.run([(op, bad)], expected_error=True)[0]
    message = json.loads(first.output).get("error", {}).get("message", first.error)
    note = convo.rng.choice(_RETRY).format(message=message)
    res = convo.run([(op, args)], content=note)
    _say(
        convo,
        gen.write_answer([op.row], [args], [r.output for r in res], pattern="error_recovery", rng=convo.rng),
    )
    return "error_recovery", _toolset(convo, [op], ops, convo.rng.randint(0, 1))


_RETRY = [
    "The call failed: {message}. I'll correct that and try again.",
    "That didn't work ({message}). Retrying with a fixed argument.",
    "The API returned an error: {message}. Let me fix the arguments.",
]


def _corruptions(rng: random.Random, op: _Op, args: dict) -> list[tuple[dict, str]]:
    """Plausible mistakes, most realistic first: a number sent as a string, a wrong enum
    spelling, a date in the wrong format, a missing required field, a misspelled parameter."""
    out: list[tuple[dict, str]] = []
    keys = list(args)
    rng.shuffle(keys)
    for k in keys:
        v, s = args[k], op.props.get(k) if isinstance(op.props.get(k), dict) else {}
        if isinstance(v, bool):
            out.append(({**args, k: "yes" if v else "no"}, "wrong_type"))
        elif isinstance(v, int | float):
            out.append(({**args, k: str(v)}, "wrong_type"))
        elif isinstance(v, str) and isinstance(s.get("enum"), list):
            out += [
                ({**args, k: w}, "bad_enum")
                for w in (v.upper(), v.capitalize(), v + "s")
                if w not in s["enum"]
            ][:1]
        elif isinstance(v, str) and s.get("format") in ("date", "date-time"):
            out.append(({**args, k: "next friday"}, "bad_format"))
    required = [r for r in op.schema.get("required") or [] if r in args]
    if required:
        gone = rng.choice(required)
        out.append(({k: v for k, v in args.items() if k != gone}, "missing_required"))
    for k in keys:
        alias = "_".join(name_tokens(k)) if k != "_".join(name_tokens(k)) else k + "s"
        if alias not in op.props:
            out.append(
                ({**{kk: vv for kk, vv in args.items() if kk != k}, alias: args[k]}, "unknown_parameter")
            )
            break
    return out


def _user(convo, gen, rows, args, pattern, **extra) -> None:
    if not convo.messages:
        convo.messages.append({"role": "system", "content": convo.rng.choice(SYSTEM_PROMPTS)})
    text = gen.write_request(rows, args, pattern=pattern, rng=convo.rng, **extra)
    convo.messages.append({"role": "user", "content": text})


def _say(convo: _Convo, text: str) -> None:
    convo.messages.append({"role": "assistant", "content": text})


def _finish(convo, pattern, tools, op, gen, seed, k, created_at) -> dict:
    bad = [c for c in convo.calls if (c["valid"] or not c["executed"]) if c["expected_error"]] + [
        c for c in convo.calls if not c["expected_error"] and not c["valid"]
    ]
    reason = None
    if bad:
        c = bad[0]
        reason = "error_not_raised" if c["expected_error"] else (c["error"] or "unknown").split(":", 1)[0]
    licenses = sorted({op.row.get("license") or "unknown"})
    return {
        "trajectory_id": sha256_text(f"{seed}|{op.row.get('api_id')}|{k}|{gen.name}")[:20],
        "source": "synthetic",
        "pattern": pattern,
        "api_ids": [c for c in dict.fromkeys([op.row.get("api_id")] + [c["api_id"] for c in convo.calls])],
        "providers": [op.row.get("provider")],
        "tools": json.dumps(tools, ensure_ascii=False),
        "messages": json.dumps(convo.messages, ensure_ascii=False),
        "calls": json.dumps(convo.calls, ensure_ascii=False),
        "n_calls": len(convo.calls),
        "n_calls_valid": sum(1 for c in convo.calls if c["valid"]),
        "is_valid": not bad,
        "invalid_reason": reason,
        "license": " AND ".join(licenses),
        "generator": gen.name,
        "created_at": created_at,
    }


# ------------------------------------------------------------------ multi-turn, stateful patterns
def _turn(convo: _Convo, text: str) -> None:
    convo.messages.append({"role": "user", "content": text})


def _with_id(convo: _Convo, op: _Op, ident: Any, created: dict) -> dict | None:
    """Valid arguments for an item operation on ``ident``, under the same parent as at its creation
    (the collection's path parameters taken from ``created``); None when the schema refuses them."""
    parents = {p: created[p] for p in op.resource.parents if p in created and p in op.props}
    args = {**_args(convo, op, include_optional=0.3), **parents}
    if ident is not None:
        args[op.resource.id_param] = ident
    return args if convo.ex.check(op.tool["name"], args) is None else None


def _create(convo: _Convo, op: _Op, gen: TextGenerator, counters: Counter) -> tuple[dict, Any] | None:
    """First turn of a stateful conversation: the user asks for a new resource, the model creates it."""
    convo.ex = StatefulExecutor(convo.ex, [op.resource])
    create = op.crud["create"]
    args = _args(convo, create, include_optional=0.3)
    args.pop(op.resource.id_param, None)
    missing = [p for p in op.resource.parents if p not in args]
    if missing:  # the parent the resource lives under must be named, even where the schema says optional
        full = _args(convo, create, include_optional=1.0)
        args.update({p: full[p] for p in missing if p in full})
    if convo.ex.check(create.tool["name"], args) is not None:
        args = _args(convo, create, include_optional=1.0)
    if any(p not in args for p in op.resource.parents):
        return None
    _user(convo, gen, [create.row], [args], "simple")
    result = convo.run([(create, args)])[0]
    if not result.ok:
        return None
    ident = json.loads(result.output)["id"]
    _say(convo, f"Done: the new {op.resource.singular} has the id {json.dumps(ident)}.")
    return args, ident


def _downgrade(convo, op, ops, foreign, gen, counters):
    """A stateful conversation whose create could not be made: start over as a ``simple`` one."""
    counters["stateful_downgraded"] += 1
    convo.messages.clear()
    convo.calls.clear()
    if isinstance(convo.ex, StatefulExecutor):
        convo.ex = convo.ex.mock
    return _simple(convo, op, ops, foreign, gen, counters)


def _stateful_crud(convo, op, ops, foreign, gen, counters):
    """Create, then follow-up turns about "it" (update, read, delete), whose id only the first result
    holds; a last read after the delete gets the API's 404, which the model reads and reports."""
    created = _create(convo, op, gen, counters)
    if created is None:
        return _downgrade(convo, op, ops, foreign, gen, counters)
    made, ident = created
    crud, noun = op.crud, op.resource.singular
    if "update" in crud and (args := _with_id(convo, crud["update"], ident, made)) is not None:
        change = {k: v for k, v in args.items() if k != op.resource.id_param}
        if change:
            key = convo.rng.choice(sorted(change))
            _turn(convo, f"Now change its {humanize(key)} to {json.dumps(change[key], ensure_ascii=False)}.")
        else:
            _turn(convo, f"Please save that {noun} again without changes.")
        result = convo.run([(crud["update"], args)])[0]
        _say(convo, f"Updated {noun} {json.dumps(ident)}: {result.output[:300]}")
    if "read" in crud and (args := _with_id(convo, crud["read"], ident, made)) is not None:
        _turn(convo, convo.rng.choice([f"Show me that {noun} now.", f"What does the {noun} look like now?"]))
        result = convo.run([(crud["read"], args)])[0]
        _say(convo, f"Here it is: {result.output[:300]}")
    if "delete" in crud and (args := _with_id(convo, crud["delete"], ident, made)) is not None:
        _turn(convo, convo.rng.choice([f"I don't need the {noun} anymore; delete it.", "Please remove it."]))
        convo.run([(crud["delete"], args)])
        _say(convo, f"The {noun} {json.dumps(ident)} is deleted.")
        if "read" in crud and (again := _with_id(convo, crud["read"], ident, made)) is not None:
            _turn(convo, f"Can you check the {noun} once more?")
            error = convo.run([(crud["read"], again)], expected_error=True)[0]
            message = json.loads(error.output).get("error", {}).get("message", error.error)
            _say(convo, f'It no longer exists: the API answered "{message}", as it was deleted a moment ago.')
            counters["stateful_not_found_read"] += 1
    return "stateful_crud", _toolset(convo, list(crud.values()), ops, convo.rng.randint(0, 1))


def _stateful_recovery(convo, op, ops, foreign, gen, counters):
    """A follow-up that fails on the state, and the model recovering from the error body: creating
    a duplicate (409: reuse the existing id it names), or a wrong id (404: list, then retry)."""
    created = _create(convo, op, gen, counters)
    if created is None:
        return _downgrade(convo, op, ops, foreign, gen, counters)
    args, ident = created
    res, crud, noun = op.resource, op.crud, op.resource.singular
    target = crud.get("update") or crud.get("read")
    key = res.natural_key
    if (
        key
        and key in args
        and target is not None
        and (fixed := _with_id(convo, target, ident, args)) is not None
    ):
        _turn(
            convo, f"Also create a {noun} with {humanize(key)} {json.dumps(args[key], ensure_ascii=False)}."
        )
        error = convo.run([(crud["create"], args)], expected_error=True)[0]
        body = json.loads(error.output).get("error", {})
        note = (
            f'The API says: "{body.get("message")}" (existing id {json.dumps(body.get("existing_id"))}). '
            f"I'll use that {noun} instead of creating a duplicate."
        )
        result = convo.run([(target, fixed)], content=note)[0]
        _say(convo, f"There is exactly one {noun} with that {humanize(key)}: {result.output[:300]}")
        counters["stateful_recovered:conflict"] += 1
    elif (
        "list" in crud and target is not None and (fixed := _with_id(convo, target, ident, args)) is not None
    ):
        wrong = ident + 100 if isinstance(ident, int) else f"{ident}0"
        bad = {**fixed, res.id_param: wrong}
        if convo.ex.check(target.tool["name"], bad) is not None:
            counters["stateful_downgraded"] += 1
            return _stateful_crud_rest(convo, op, ops, ident, args)
        _turn(convo, f"Now open {noun} {json.dumps(wrong)}, the one I just made.")
        error = convo.run([(target, bad)], expected_error=True)[0]
        message = json.loads(error.output).get("error", {}).get("message", error.error)
        listing = _with_id(convo, crud["list"], None, args) or _args(
            convo, crud["list"], include_optional=0.0
        )
        convo.run([(crud["list"], listing)], content=f'"{message}". Let me list the {noun}s to find it.')
        result = convo.run([(target, fixed)], content=f"It is {json.dumps(ident)}, not {json.dumps(wrong)}.")[
            0
        ]
        _say(convo, f"Found it under id {json.dumps(ident)}: {result.output[:300]}")
        counters["stateful_recovered:not_found"] += 1
    else:
        return _stateful_crud_rest(convo, op, ops, ident, args)
    return "stateful_recovery", _toolset(convo, list(crud.values()), ops, convo.rng.randint(0, 1))


def _stateful_crud_rest(convo, op, ops, ident, made):
    """A recovery conversation without a conflict or a listing to recover with: a plain read."""
    target = op.crud.get("read") or op.crud.get("update") or op.crud.get("delete")
    args = _with_id(convo, target, ident, made)
    if args is not None:
        _turn(convo, f"Go on with that {op.resource.singular}.")
        result = convo.run([(target, args)])[0]
        _say(convo, result.output[:300])
    return "stateful_crud", _toolset(convo, list(op.crud.values()), ops, 0)


def _missing_parameter(convo, op, ops, foreign, gen, counters):
    """The request leaves out a required value: the model asks instead of guessing, then calls."""
    args = _args(convo, op)
    required = [r for r in op.schema.get("required") or [] if r in args]
    if not required:
        counters["missing_parameter_downgraded"] += 1
        return _simple(convo, op, ops, foreign, gen, counters)
    missing = convo.rng.choice(required)
    shown = {k: v for k, v in args.items() if k != missing}
    _user(convo, gen, [op.row], [shown], "simple")
    _say(
        convo, f"I can do that with {op.tool['name']}, but I need the {humanize(missing)}. What should it be?"
    )
    value = json.dumps(args[missing], ensure_ascii=False)
    _turn(convo, convo.rng.choice([f"Use {value}.", f"The {humanize(missing)} is {value}."]))
    res = convo.run([(op, args)])
    _say(convo, gen.write_answer([op.row], [args], [r.output for r in res], pattern="simple", rng=convo.rng))
    return "missing_parameter", _toolset(convo, [op], ops, convo.rng.randint(0, 2))


def _missing_function(convo, op, ops, foreign, gen, counters):
    """No offered function fits: the model says so instead of misusing one; then the function is
    added (a system message with its document, BFCL's follow-up prompt) and the model calls it."""
    others = _pick_others(convo.rng, ops, [op], convo.rng.randint(1, 3))
    tools = [o.tool for o in others]
    args = _args(convo, op)
    _user(convo, gen, [op.row], [args], "simple")
    _say(convo, "None of the functions I have can do that, so I can't do it yet.")
    convo.messages.append(
        {"role": "system", "content": "Functions added:\n" + json.dumps(op.tool, ensure_ascii=False)}
    )
    _turn(convo, ADDED_FUNCTIONS_PROMPT)
    res = convo.run([(op, args)])
    _say(convo, gen.write_answer([op.row], [args], [r.output for r in res], pattern="simple", rng=convo.rng))
    return "missing_function", tools


_BUILDERS = {
    "simple": _simple, "parallel": _parallel, "multiple": _multiple, "parallel_multiple": _parallel_multiple,
    "multi_step": _multi_step, "irrelevance": _irrelevance, "error_recovery": _error_recovery,
    "stateful_crud": _stateful_crud, "stateful_recovery": _stateful_recovery,
    "missing_parameter": _missing_parameter, "missing_function": _missing_function,
}  # fmt: skip
