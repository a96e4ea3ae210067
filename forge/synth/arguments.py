"""Argument synthesis: realistic values that validate against a JSON Schema.

Used to fill tool calls in synthetic trajectories, mock responses (from response schemas) and the
unseen-API benchmark. Values come from the property name where it says what it holds (``city``,
``email``, ``limit``...) and from the schema's constraints otherwise. Schemas are read as they
come out of API docs: JSON Schema 2020-12, OpenAPI 3.0 idioms (``nullable``, boolean
``exclusiveMinimum``) and BFCL type names (``dict``, ``float``, ``tuple``, ``any``).
What cannot be satisfied (an unsupported ``pattern``, contradictory bounds) raises
:class:`CannotSatisfy` rather than returning a value that would fail validation.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import random
import re
import string
import uuid
from typing import Any

try:
    import re._parser as _sre_parse  # Python >= 3.11
except ImportError:  # pragma: no cover - Python 3.10 and older
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_TYPE_ALIASES = {"dict": "object", "float": "number", "tuple": "array", "int": "integer", "file": "string"}
_JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")


class CannotSatisfy(ValueError):
    """The generator cannot produce a value for this schema (e.g. a regex it cannot invert)."""


def generate_arguments(
    schema: dict, rng: random.Random, *, name_hint: str = "", include_optional: float = 0.5
) -> dict:
    """Arguments (a dict) for an object schema: every required property, each optional one with
    probability ``include_optional``. Raises :class:`CannotSatisfy` when no valid value exists."""
    value = generate_value(
        schema or {"type": "object"}, rng, name_hint=name_hint, include_optional=include_optional
    )
    if not isinstance(value, dict):
        raise CannotSatisfy(f"top-level schema is not an object: {str(schema)[:120]}")
    return value


def generate_value(
    schema: Any,
    rng: random.Random,
    *,
    name_hint: str = "",
    include_optional: float = 0.5,
    max_depth: int = 6,
    max_items: int = 3,
) -> Any:
    """One value for ``schema``; ``max_depth`` bounds nesting, ``max_items`` array lengths
    (unless ``minItems`` asks for more). Responses use small values of both to keep mocks short."""
    try:
        return _Gen(rng, include_optional, max_depth, max_items).value(schema, name_hint, 0)
    except (TypeError, AttributeError, KeyError, ValueError, RecursionError) as exc:
        if isinstance(exc, CannotSatisfy):
            raise
        raise CannotSatisfy(f"malformed schema ({type(exc).__name__}: {exc})") from exc


def schema_types(schema: dict) -> list[str]:
    """JSON types the schema allows (aliases mapped, inferred from keywords when ``type`` is absent)."""
    t = schema.get("type")
    types = t if isinstance(t, list) else [t] if t else []
    types = [_TYPE_ALIASES.get(x, x) for x in types if isinstance(x, str) and x != "any"]
    types = [x for x in types if x in _JSON_TYPES]
    if types:
        return types
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return ["object"]
    if "items" in schema or "prefixItems" in schema:
        return ["array"]
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return ["number"]
    return ["string"]


def merge_all_of(schema: dict) -> dict:
    """Fold ``allOf`` into one schema: properties merged, ``required`` united, other keys layered."""
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf") or []:
        if not isinstance(part, dict):
            continue
        part = merge_all_of(part) if "allOf" in part else part
        for k, v in part.items():
            if k == "properties" and isinstance(v, dict):
                out["properties"] = {**out.get("properties", {}), **v}
            elif k == "required" and isinstance(v, list):
                names = [r for r in v if isinstance(r, str)]
                out["required"] = sorted(set(out.get("required", [])) | set(names))
            elif k not in out:
                out[k] = v
    return out


class _Gen:
    def __init__(self, rng: random.Random, include_optional: float, max_depth: int, max_items: int) -> None:
        self.rng, self.p_opt, self.max_depth, self.max_items = rng, include_optional, max_depth, max_items

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return self._string({}, name)
        if schema is False:
            raise CannotSatisfy("schema is false")
        if "allOf" in schema:
            schema = merge_all_of(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            allowed = schema_types(schema) if "type" in schema else None
            choices = [
                v for v in schema["enum"] if v is not None and (not allowed or _json_type(v) in allowed)
            ]
            if not choices:
                raise CannotSatisfy(f"no enum value of type {allowed}: {str(schema['enum'])[:80]}")
            return self.rng.choice(choices)
        for key in ("oneOf", "anyOf"):
            options = [o for o in schema.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
            if options:
                base = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
                return self.value(merge_all_of({"allOf": [base, self.rng.choice(options)]}), name, depth)
        types = [t for t in schema_types(schema) if t != "null"] or ["null"]
        default = schema.get("default")
        if default is not None and self.rng.random() < 0.25 and _json_type(default) in types:
            return default
        kind = self.rng.choice(types)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._number(schema, name, integer=True)
        if kind == "number":
            return self._number(schema, name, integer=False)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _object(self, schema: dict, depth: int) -> dict:
        props = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        out: dict[str, Any] = {}
        if depth >= self.max_depth:
            keys = [k for k in required if k in props]
        else:
            keys = [k for k in props if k in required or self.rng.random() < self.p_opt]
            need = int(schema.get("minProperties") or 0) - len(keys)
            spare = [k for k in props if k not in keys]
            keys += spare[: max(0, need)]
        for key in keys:
            out[key] = self.value(props[key], key, depth + 1)
        for key in required:  # required but undeclared: a string is the least surprising guess
            if key not in out:
                out[key] = self._string({}, key)
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict) and depth < self.max_depth:
            out[self.rng.choice(_WORDS)] = self.value(extra, "", depth + 1)
        return out

    def _array(self, schema: dict, name: str, depth: int) -> list:
        lo = int(schema.get("minItems") or 0)
        hi = schema.get("maxItems")
        hi = int(hi) if isinstance(hi, int | float) else max(lo, self.max_items)
        if lo > hi:
            raise CannotSatisfy(f"minItems {lo} > maxItems {hi}")
        if depth >= self.max_depth:
            n = lo
        else:
            n = self.rng.randint(max(lo, 1 if hi >= 1 else 0), max(lo, min(hi, self.max_items)))
        prefix = schema.get("prefixItems") or (
            schema["items"] if isinstance(schema.get("items"), list) else []
        )
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        single = re.sub(r"(ies)$", "y", name) if name.endswith("ies") else name.rstrip("s")
        out: list[Any] = []
        for i in range(max(n, len(prefix) if lo >= len(prefix) else n)):
            sub = prefix[i] if i < len(prefix) else items
            for _ in range(8):  # uniqueItems: a few redraws before giving up
                v = self.value(sub, single, depth + 1)
                if not schema.get("uniqueItems") or v not in out:
                    break
            else:
                if len(out) >= lo:
                    break
                raise CannotSatisfy(f"cannot draw {lo} unique items for {name!r}")
            out.append(v)
        return out

    def _number(self, schema: dict, name: str, *, integer: bool) -> int | float:
        lo, hi = _bounds(schema, integer)
        step = schema.get("multipleOf")
        hinted = _name_number(name_tokens(name), self.rng, integer)
        if hinted is not None and lo <= hinted <= hi and (not step or _is_multiple(hinted, step)):
            return hinted
        if lo > hi:
            raise CannotSatisfy(f"empty numeric range [{lo}, {hi}] for {name!r}")
        soft_lo = lo if lo > -1e9 else (0 if hi >= 0 else hi - 100)
        soft_hi = hi if hi < 1e9 else soft_lo + (100 if integer else 1000)
        if step:
            k_lo, k_hi = _ceil(soft_lo / step), int(soft_hi // step)
            if k_lo > k_hi:
                raise CannotSatisfy(f"no multiple of {step} in [{lo}, {hi}]")
            v = self.rng.randint(k_lo, min(k_hi, k_lo + 100)) * step
            return int(v) if integer else v
        if integer:
            return self.rng.randint(int(_ceil(soft_lo)), int(soft_hi // 1))
        v = round(self.rng.uniform(soft_lo, soft_hi), 2)
        return v if lo <= v <= hi else soft_lo

    def _string(self, schema: dict, name: str) -> str:
        lo = int(schema.get("minLength") or 0)
        hi = int(schema["maxLength"]) if isinstance(schema.get("maxLength"), int | float) else 10**6
        fmt = schema.get("format") if isinstance(schema.get("format"), str) else ""
        pattern = schema.get("pattern") if isinstance(schema.get("pattern"), str) else None
        if lo > hi:
            raise CannotSatisfy(f"minLength {lo} > maxLength {hi} for {name!r}")
        formatted = _formatted(fmt, self.rng, name) if fmt else None
        candidates = [formatted] if formatted else [_name_string(name_tokens(name), self.rng)]
        for c in candidates:
            if lo <= len(c) <= hi and (pattern is None or _search(pattern, c)):
                return c
        if formatted:  # a checked format (date, uuid, email...) cannot be padded or cut
            raise CannotSatisfy(f"format {fmt!r} conflicts with length [{lo}, {hi}] / pattern {pattern!r}")
        if pattern is not None:
            return regex_example(pattern, self.rng, min_len=lo, max_len=hi)
        base = candidates[0][:hi]
        while len(base) < lo:
            base += self.rng.choice(string.ascii_lowercase)
        return base


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "null")


def _bounds(schema: dict, integer: bool) -> tuple[float, float]:
    lo, hi = schema.get("minimum", -1e12), schema.get("maximum", 1e12)
    lo = lo if isinstance(lo, int | float) else -1e12
    hi = hi if isinstance(hi, int | float) else 1e12
    tiny = 1 if integer else 0.01
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if ex_lo is True:
        lo += tiny
    elif isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool):
        lo = max(lo, ex_lo + tiny)
    if ex_hi is True:
        hi -= tiny
    elif isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool):
        hi = min(hi, ex_hi - tiny)
    fmt = schema.get("format")
    if fmt == "int32":
        lo, hi = max(lo, -(2**31)), min(hi, 2**31 - 1)
    return lo, hi


def _ceil(x: float) -> int:
    return int(-(-x // 1))


def _is_multiple(v: float, step: float) -> bool:
    q = v / step
    return abs(q - round(q)) < 1e-9


def _search(pattern: str, s: str) -> bool:
    try:
        return re.search(pattern, s) is not None
    except re.error:
        return False


def _formatted(fmt: str, rng: random.Random, name: str) -> str | None:
    fmt = fmt.lower()
    today = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 730))
    if fmt == "date":
        return today.isoformat()
    if fmt in ("date-time", "datetime"):
        return f"{today.isoformat()}T{rng.randint(0, 23):02d}:{rng.choice((0, 15, 30, 45)):02d}:00Z"
    if fmt == "time":
        return f"{rng.randint(0, 23):02d}:{rng.choice((0, 15, 30, 45)):02d}:00Z"
    if fmt == "email":
        return _name_string(("email",), rng)
    if fmt in ("uri", "url", "uri-reference", "iri"):
        return _name_string(("url",), rng)
    if fmt == "uuid":
        return str(_uuid(rng))
    if fmt == "hostname":
        return rng.choice(_DOMAINS)
    if fmt == "ipv4":
        return f"192.0.2.{rng.randint(1, 254)}"
    if fmt == "ipv6":
        return f"2001:db8::{rng.randint(1, 65535):x}"
    if fmt == "byte":
        return base64.b64encode(rng.choice(_WORDS).encode()).decode()
    if fmt == "password":
        return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12))
    return None


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def regex_example(pattern: str, rng: random.Random, *, min_len: int = 0, max_len: int = 10**6) -> str:
    """A string of length [min_len, max_len] that ``re.search(pattern, s)`` accepts, by walking the
    parsed regex. Best effort: lookarounds, unicode classes (``\\p{L}``) and lengths it cannot
    reach raise :class:`CannotSatisfy`."""
    try:
        parsed = _sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise CannotSatisfy(f"bad pattern {pattern!r}: {exc}") from exc
    # Random repeat counts first; then stretch the first open-ended repeats to reach min_len.
    for extra in (None, None, None, 0):
        if extra == 0:
            shortest = len(_walk(parsed, rng, {}, [0]))
            extra = max(0, min_len - shortest)
        out = _walk(parsed, rng, {}, None if extra is None else [extra])
        if min_len <= len(out) <= max_len and _search(pattern, out):
            return out
    raise CannotSatisfy(f"no string of length [{min_len}, {max_len}] matching {pattern!r}")


_CATEGORIES = {
    "CATEGORY_DIGIT": string.digits,
    "CATEGORY_NOT_DIGIT": string.ascii_letters,
    "CATEGORY_WORD": string.ascii_letters + string.digits,
    "CATEGORY_NOT_WORD": "-.: ",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits + "-_."


def _walk(parsed: Any, rng: random.Random, groups: dict[int, str], extra: list[int] | None) -> str:
    """Expand a parsed regex; ``extra`` (a one-item budget) switches repeats from random counts to
    "minimum, plus whatever budget is left", which aims the output at a target length."""
    out = []
    for op, av in parsed:
        op = str(op)
        if op == "LITERAL":
            out.append(chr(av))
        elif op == "NOT_LITERAL":
            out.append(next(c for c in "ab" if ord(c) != av))
        elif op == "ANY":
            out.append(rng.choice(string.ascii_lowercase))
        elif op == "IN":
            out.append(_pick_in(av, rng))
        elif op == "BRANCH":
            out.append(_walk(rng.choice(av[1]) if extra is None else av[1][0], rng, groups, extra))
        elif op == "SUBPATTERN":
            text = _walk(av[-1], rng, groups, extra)
            if av[0] is not None:
                groups[av[0]] = text
            out.append(text)
        elif op == "ATOMIC_GROUP":
            out.append(_walk(av, rng, groups, extra))
        elif op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            if extra is None:
                out.extend(_walk(sub, rng, groups, extra) for _ in range(rng.randint(lo, min(hi, lo + 3))))
                continue
            n = 0
            while n < lo or (n < hi and extra[0] > 0):
                piece = _walk(sub, rng, groups, extra)
                if n >= lo:
                    extra[0] -= max(1, len(piece))
                out.append(piece)
                n += 1
        elif op == "GROUPREF" and av in groups:
            out.append(groups[av])
        elif op == "AT":
            continue
        else:
            raise CannotSatisfy(f"regex construct {op} not supported")
    return "".join(out)


def _pick_in(items: list, rng: random.Random) -> str:
    pool: list[str] = []
    negate = False
    for op, av in items:
        op = str(op)
        if op == "NEGATE":
            negate = True
        elif op == "LITERAL":
            pool.append(chr(av))
        elif op == "RANGE":
            lo, hi = av
            pool.extend(chr(c) for c in range(lo, min(hi, lo + 200) + 1))
        elif op == "CATEGORY":
            pool.extend(_CATEGORIES.get(str(av), "a"))
    if negate:
        pool = [c for c in _PRINTABLE if c not in set(pool)]
    if not pool:
        raise CannotSatisfy("empty character class")
    return rng.choice(pool)


def describe_value(value: Any) -> str:
    """How a value reads inside a sentence; strings and numbers appear verbatim, so a request
    phrased with it names the exact value the call must carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        parts = [describe_value(v) for v in value]
        if len(parts) <= 1:
            return parts[0] if parts else "an empty list"
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    if isinstance(value, dict):
        inner = ", ".join(f"{humanize(k)} {describe_value(v)}" for k, v in value.items())
        return f"({inner})" if inner else "nothing"
    if isinstance(value, str):
        return f'"{value}"' if (" " in value or value == "") else value
    return str(value)


def humanize(name: str) -> str:
    """``maxResults`` / ``max_results`` -> ``max results``."""
    return " ".join(name_tokens(name)) or name


def phrase_arguments(args: dict) -> str:
    """``{"city": "Paris", "limit": 5}`` -> ``city Paris and limit 5``; '' for no arguments."""
    parts = [f"{humanize(k)} {describe_value(v)}" for k, v in args.items()]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# --- realistic values by property name -------------------------------------------------------
_WORDS = ["alpha", "harbor", "summit", "maple", "orbit", "cedar", "nova", "delta", "ember", "lumen"]
_DOMAINS = ["example.com", "example.org", "api.example.net"]
_FIRST = ["Alice", "Bob", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
_LAST = ["Martin", "Nguyen", "Okafor", "Rossi", "Schmidt", "Tanaka", "Silva", "Kowalski"]
_TABLE: list[tuple[frozenset[str], list[str]]] = [
    (frozenset({"city", "town"}), ["Paris", "Berlin", "Tokyo", "Nairobi", "Toronto", "Lisbon", "Seoul"]),
    (frozenset({"country"}), ["France", "Germany", "Japan", "Kenya", "Canada", "Brazil", "India"]),
    (frozenset({"currency"}), ["USD", "EUR", "GBP", "JPY", "CHF"]),
    (frozenset({"lang", "language", "locale"}), ["en", "fr", "de", "es", "ja"]),
    (
        frozenset({"query", "q", "search", "keyword", "keywords", "term"}),
        ["wireless headphones", "climate report 2023", "python tutorial", "italian restaurants"],
    ),
    (frozenset({"symbol", "ticker"}), ["AAPL", "MSFT", "EURUSD", "TSLA"]),
    (frozenset({"sort", "order", "direction"}), ["asc", "desc"]),
    (frozenset({"format"}), ["json", "csv", "xml"]),
    (frozenset({"status", "state"}), ["active", "pending", "closed"]),
    (frozenset({"region", "zone"}), ["us-east-1", "eu-west-1", "ap-southeast-2"]),
    (frozenset({"timezone", "tz"}), ["Europe/Paris", "America/New_York", "Asia/Tokyo"]),
    (frozenset({"color", "colour"}), ["red", "blue", "green"]),
    (frozenset({"phone", "mobile", "msisdn"}), ["+14155550123", "+442071838750"]),
    (frozenset({"zip", "postal", "postcode", "zipcode"}), ["94103", "10115", "75001"]),
    (frozenset({"address", "street"}), ["221B Baker Street", "1600 Amphitheatre Parkway"]),
    (frozenset({"title", "subject", "headline"}), ["Quarterly report", "Team offsite", "Welcome aboard"]),
    (
        frozenset({"description", "message", "text", "body", "comment", "content", "note", "notes"}),
        ["Please review the attached draft.", "Meeting moved to Friday.", "Thanks for the update."],
    ),
    (
        frozenset({"tag", "tags", "label", "labels", "category", "categories", "type", "kind"}),
        ["news", "sports", "finance", "travel", "standard"],
    ),
    (frozenset({"version"}), ["v1", "2.0", "2024-01-01"]),
    (frozenset({"password", "secret"}), ["S3cure!pass42"]),
    (frozenset({"username", "login", "handle"}), ["jdoe", "alice_m", "dev_ops42"]),
]


@functools.lru_cache(maxsize=65536)
def name_tokens(name: str) -> tuple[str, ...]:
    """``maxResults`` / ``max-results`` / ``max_results`` -> ``("max", "results")`` (cached: the
    same property names recur across thousands of operations)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name or "")
    return tuple(t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t)


def _name_string(tokens: tuple[str, ...], rng: random.Random) -> str:
    last = tokens[-1] if tokens else ""
    hexid = f"{rng.getrandbits(32):08x}"
    if last == "email" or "email" in tokens:
        return f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}@{rng.choice(_DOMAINS)}"
    if last in ("url", "uri", "link", "website", "homepage", "callback", "webhook"):
        return f"https://{rng.choice(_DOMAINS)}/{rng.choice(_WORDS)}/{hexid[:4]}"
    if last in ("id", "uuid", "guid", "key", "token", "ref", "code") and "country" not in tokens:
        return hexid if last != "uuid" else _uuid(rng)
    if last in ("date", "day", "since", "until", "from", "to", "start", "end") or "date" in tokens:
        return (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 730))).isoformat()
    if "name" in tokens:
        if "first" in tokens or "given" in tokens:
            return rng.choice(_FIRST)
        if "last" in tokens or "family" in tokens or "surname" in tokens:
            return rng.choice(_LAST)
        if len(tokens) == 1 or tokens[0] in ("full", "display", "user", "customer", "contact", "person"):
            return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        return f"{rng.choice(_WORDS)}-{tokens[0]}"
    if last in ("domain", "host", "hostname"):
        return rng.choice(_DOMAINS)
    if last in ("ip", "ipaddress"):
        return f"192.0.2.{rng.randint(1, 254)}"
    if "country" in tokens and last == "code":
        return rng.choice(["US", "FR", "DE", "JP", "KE"])
    for keys, values in _TABLE:
        if last in keys or (keys & set(tokens) and len(tokens) <= 2):
            return rng.choice(values)
    return f"{rng.choice(_WORDS)}-{rng.randint(1, 99)}" if tokens else rng.choice(_WORDS)


def _name_number(tokens: tuple[str, ...], rng: random.Random, integer: bool) -> int | float | None:
    last = tokens[-1] if tokens else ""
    if last in ("limit", "size", "count", "max", "results", "top", "first", "num") or "per" in tokens:
        return rng.choice([5, 10, 20, 25, 50])
    if last in ("page",):
        return rng.randint(1, 5)
    if last in ("offset", "skip", "start"):
        return rng.choice([0, 10, 20, 50])
    if last in ("year",):
        return rng.randint(2018, 2025)
    if last in ("month",):
        return rng.randint(1, 12)
    if last in ("day",):
        return rng.randint(1, 28)
    if last in ("lat", "latitude"):
        return rng.randint(-60, 60) if integer else round(rng.uniform(-60, 60), 4)
    if last in ("lon", "lng", "longitude"):
        return rng.randint(-170, 170) if integer else round(rng.uniform(-170, 170), 4)
    if last in ("amount", "price", "cost", "total", "balance"):
        return rng.randint(5, 500) if integer else round(rng.uniform(5, 500), 2)
    if last in ("id", "number", "no"):
        return rng.randint(1, 99999)
    if last in ("age",):
        return rng.randint(18, 80)
    return None
