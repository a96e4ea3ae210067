"""A stateful executor for synthesized APIs: resources created, read, updated and deleted consistently.

The stateless :class:`forge.synth.executor.MockExecutor` answers every call on its own. Multi-turn
conversations need the API to remember: an id returned by a create must be readable afterwards, an
update must show in the next read, a deleted resource must be gone (404), and creating the same
thing twice must conflict (409). :func:`crud_resources` finds the REST collections of an API from
its operations' method and path (``POST /pets`` creates, ``GET|PUT|PATCH|DELETE /pets/{petId}``
read, update, delete, ``GET /pets`` lists); :class:`StatefulExecutor` keeps one store per
conversation and answers those operations from it, after the same JSON-Schema validation the mock
does. Every other operation goes to the wrapped mock unchanged.

Grain of the store: one record per resource id per collection and parent (the values of the
collection's own path parameters, ``/spaces/{id}/entities``); ids are deterministic
(``<singular>-<n>``, or ``n`` where the id is declared an integer) so a conversation replays
identically for a seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from forge.synth.executor import ExecutionResult, MockExecutor, error_body

_ITEM_PATH = re.compile(r"^(?P<collection>/.*?)/\{(?P<param>[^}/]+)\}/?$")
#: Parameter names that make a natural key: creating a second resource with the same value conflicts.
NATURAL_KEYS = ("name", "title", "email", "username", "slug", "key", "code", "label")


@dataclass
class Resource:
    """One REST collection of an API and the operations (function names) that act on it."""

    collection: str
    id_param: str
    create: str | None = None
    read: str | None = None
    update: str | None = None
    delete: str | None = None
    list: str | None = None
    natural_key: str | None = None  # a create parameter whose value must be unique
    integer_ids: bool = False  # the id parameter is declared an integer: ids are 1, 2, ...

    @property
    def singular(self) -> str:
        """The collection's last path segment, singular and readable (``/v1/user-groups`` -> ``user group``)."""
        last = [p for p in self.collection.split("/") if p and not p.startswith("{")]
        word = (last[-1] if last else "resource").replace("-", " ").replace("_", " ")
        return word[:-3] + "y" if word.endswith("ies") else word[:-1] if word.endswith("s") else word

    #: path parameters of the collection that its create takes (``/spaces/{id}/entities`` ->
    #: ``["id"]``): the scope a resource lives in; the same id under another parent is another one
    parents: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """A create and at least one operation on a single resource: enough for a stateful conversation."""
        return self.create is not None and any((self.read, self.update, self.delete))

    def roles(self) -> dict[str, str]:
        """Function name -> its role on this collection."""
        named = {"create": self.create, "read": self.read, "update": self.update}
        named |= {"delete": self.delete, "list": self.list}
        return {name: role for role, name in named.items() if name}


def _properties(row: dict) -> dict:
    raw = row.get("parameters")
    try:
        schema = raw if isinstance(raw, dict) else json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


def crud_resources(api_rows: Iterable[dict]) -> list[Resource]:
    """The complete REST collections among one API's operations (see the module docstring).

    An item operation counts only when its path parameter is one of its arguments (the caller must
    be able to pass the id); the first operation of each role wins.
    """
    found: dict[str, Resource] = {}
    api_rows_list = list(api_rows)
    for row in api_rows_list:
        name, method, path = row.get("function_name"), str(row.get("method") or "").upper(), row.get("path")
        if not name or not isinstance(path, str):
            continue
        item = _ITEM_PATH.match(path)
        if item:
            collection, param = item.group("collection"), item.group("param")
            role = {"GET": "read", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(method)
            if role is None or param not in _properties(row):
                continue
            resource = found.setdefault(collection, Resource(collection, param))
            resource.id_param = resource.id_param or param  # the collection was seen first
            if resource.id_param != param:
                continue
            spec = _properties(row)[param]
            if isinstance(spec, dict) and spec.get("type") in ("integer", "number"):
                resource.integer_ids = True
        else:
            role = {"POST": "create", "GET": "list"}.get(method)
            if role is None:
                continue
            resource = found.setdefault(path.rstrip("/") or "/", Resource(path.rstrip("/") or "/", ""))
        if getattr(resource, role) is None:
            setattr(resource, role, name)
    props = {row.get("function_name"): _properties(row) for row in api_rows_list}
    for resource in found.values():
        if resource.create is None:
            continue
        templated = re.findall(r"\{([^}/]+)\}", resource.collection)
        resource.parents = tuple(p for p in templated if p in props[resource.create])
        resource.natural_key = next(  # a parent names the scope, not the resource
            (k for k in NATURAL_KEYS if k in props[resource.create] and k not in resource.parents), None
        )
        for role in (
            "read",
            "update",
            "delete",
            "list",
        ):  # an operation that cannot name the scope is left out
            name = getattr(resource, role)
            if name and any(p not in props[name] for p in resource.parents):
                setattr(resource, role, None)
    return [r for r in found.values() if r.complete and r.id_param]


@dataclass
class StatefulExecutor:
    """Answers CRUD operations from a per-conversation store; everything else goes to ``mock``.

    Arguments are validated by the mock first (an invalid call gets the mock's 400 error body). Then:
    create stores ``{"id": <new id>, **arguments}`` (409 ``conflict`` when the natural key's value,
    or a client-given id, is taken; the body names the existing id), read returns the record, update
    merges the arguments into it, delete removes it, list returns every record; an id that is not in
    the store is a 404 ``not_found``. Errors are ``ExecutionResult(ok=False, validated=True)``, like
    the mock's own rejections, with ``error`` prefixed by its kind.
    """

    mock: MockExecutor
    resources: list[Resource]
    stores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._roles = {name: (r, role) for r in self.resources for name, role in r.roles().items()}

    def check(self, name: str, arguments: Any) -> str | None:
        return self.mock.check(name, arguments)

    def validator(self, name: str) -> tuple[Any, str | None]:
        return self.mock.validator(name)

    def call(self, name: str, arguments: Any) -> ExecutionResult:
        if name not in self._roles or self.mock.check(name, arguments) is not None:
            return self.mock.call(name, arguments)
        resource, role = self._roles[name]
        args = dict(arguments)
        scope = json.dumps([str(args.get(p)) for p in resource.parents])
        store = self.stores.setdefault(f"{resource.collection} {scope}", {})
        if role == "list":
            records = list(store.values())
            return _ok({"items": records, "count": len(records)})
        if role == "create":
            return self._create(resource, store, args)
        ident = args.pop(resource.id_param, "")
        key = str(ident)
        if key not in store:
            message = f"{resource.singular} {json.dumps(ident)} not found"
            return ExecutionResult(False, error_body(404, message), f"not_found: {message}", True)
        if role == "read":
            return _ok(store[key])
        if role == "update":
            changes = {k: v for k, v in args.items() if k not in resource.parents and k != "id"}
            store[key] = {**store[key], **changes}
            return _ok(store[key])
        record = store.pop(key)
        return _ok({"deleted": True, "id": record["id"]})

    def _create(self, resource: Resource, store: dict, args: dict) -> ExecutionResult:
        given = args.get(resource.id_param)
        natural = resource.natural_key
        taken = (
            str(given)
            if given is not None and str(given) in store
            else next(
                (
                    k
                    for k, r in store.items()
                    if natural and natural in args and r.get(natural) == args[natural]
                ),
                None,
            )
        )
        if taken is not None:
            message = f"{resource.singular} already exists"
            existing = store[taken]["id"]
            return ExecutionResult(
                False, error_body(409, message, existing_id=existing), f"conflict: {message} ({taken})", True
            )
        if given is not None:
            ident: Any = given
        else:
            n = self.counters.get(resource.collection, 0) + 1
            self.counters[resource.collection] = n
            ident = n if resource.integer_ids else f"{resource.singular.replace(' ', '-')}-{n}"
        fields = {k: v for k, v in args.items() if k != resource.id_param and k not in resource.parents}
        store[str(ident)] = {"id": ident, **{k: v for k, v in fields.items() if k != "id"}}
        return _ok(store[str(ident)])


def _ok(body: dict) -> ExecutionResult:
    return ExecutionResult(True, json.dumps(body, ensure_ascii=False), None, True)
