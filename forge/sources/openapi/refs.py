"""Bounded resolution of local ``$ref``s in an OpenAPI document.

Specs in the APIs.guru directory are bundled (no external refs) but not dereferenced, and many
schemas are recursive (trees, error chains) or fan out into thousands of nodes (cloud SDK specs).
The resolver inlines every local JSON-pointer ref (``#/components/...``, Swagger 2
``#/definitions/...``, even ``#/paths/...``) and keeps the output bounded:

- a ref met again inside its own expansion becomes ``{"x-recursive-ref": ref}``;
- more than ``max_ref_depth`` nested expansions become ``{"x-truncated-ref": ref}``;
- nesting deeper than ``max_depth`` becomes ``{"x-truncated": "depth"}``;
- past ``max_nodes`` visited nodes in one call (a string weighs 1 + len/64), objects stop
  growing and carry ``"x-truncated": "size"`` (a fresh one is just ``{"x-truncated": "size"}``);
- strings longer than ``max_chars`` are cut (with an ellipsis).

Vendor extensions (``x-*``), examples, ``xml`` and ``externalDocs`` are dropped from schemas:
they are noise for a model reading the tool document. Property names are never dropped. Every
cut is counted in ``events`` so the caller can report it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import unquote

_MISSING = object()

#: Keys dropped while walking (never when they are names inside a ``properties`` map).
DROPPED_KEYS = frozenset({"example", "examples", "xml", "externalDocs"})
#: Keys whose values are maps from arbitrary names to schemas (their keys are data, not keywords).
NAME_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"})
#: Events that do not depend on where a ref is met; replayed when an expansion is reused.
_REPLAYED = ("string_truncated", "external_ref_kept", "unresolved_ref", "ref_depth_truncated")


class RefResolver:
    """Inline local ``$ref``s of one document with bounded depth and size (see module docstring)."""

    def __init__(
        self,
        root: dict[str, Any],
        *,
        max_ref_depth: int = 8,
        max_depth: int = 32,
        max_nodes: int = 4000,
        max_chars: int = 1000,
    ) -> None:
        self.root = root
        self.max_ref_depth = max_ref_depth
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_chars = max_chars
        self.events: Counter = Counter()
        self._lookups: dict[str, Any] = {}
        self._nodes = 0
        self._budget = max_nodes
        self._ref_depth = max_ref_depth
        self._cut_size = False
        self._cuts = 0  # bounds hit so far (recursion, depth, ref depth, size): see _expand_target
        self._deepest = 0
        self._inner: set[str] = set()
        self._done: dict[str, tuple] = {}

    def lookup(self, ref: str) -> Any:
        """The raw target of a local ref (``#/a/b~1c``), or ``_MISSING``; cached per ref."""
        hit = self._lookups.get(ref, _MISSING)
        if hit is not _MISSING:
            return hit
        node: Any = self.root
        fragment = unquote(ref[1:]) if ref.startswith("#") else _MISSING
        if fragment is _MISSING:
            node = _MISSING
        elif fragment not in ("", "/"):
            for token in fragment.lstrip("/").split("/"):
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and token in node:
                    node = node[token]
                elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                else:
                    node = _MISSING
                    break
        self._lookups[ref] = node
        return node

    def deref(self, node: Any, limit: int = 16) -> Any:
        """Follow a chain of refs at the top of ``node`` only (no walk); for parameters, path items."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and limit > 0:
            ref = node["$ref"]
            if ref in seen:
                self.events["recursive_ref_cut"] += 1
                return {"x-recursive-ref": ref}
            seen.add(ref)
            target = self.lookup(ref)
            if target is _MISSING:
                self.events["unresolved_ref"] += 1
                return {"x-unresolved-ref": ref}
            node, limit = target, limit - 1
        return node

    def resolve(self, node: Any, *, max_nodes: int | None = None, max_ref_depth: int | None = None) -> Any:
        """A resolved copy of ``node``; the keyword arguments override the bounds for this call.

        The result may share sub-objects with earlier results of this resolver (see ``_expand``):
        treat it as read-only.
        """
        self._nodes = 0
        self._budget = self.max_nodes if max_nodes is None else max_nodes
        self._ref_depth = self.max_ref_depth if max_ref_depth is None else max_ref_depth
        self._cut_size = False
        self._deepest = 0
        return self._walk(node, 0, (), False)

    def _walk(self, node: Any, depth: int, stack: tuple[str, ...], in_map: bool) -> Any:
        kind = type(node)
        if kind is str:
            self._nodes += 1 + len(node) // 64  # long texts weigh more: the budget bounds bytes too
            if len(node) > self.max_chars:
                self.events["string_truncated"] += 1
                return node[: self.max_chars - 1] + "…"
            return node
        if kind is not dict and kind is not list:
            if not isinstance(node, dict | list):  # scalars (and only exotic subclasses go on)
                self._nodes += 1
                return node
        self._nodes += 1
        if self._nodes > self._budget:
            if not self._cut_size:
                self.events["schema_truncated_size"] += 1
                self._cut_size = True
            self._cuts += 1
            return {"x-truncated": "size"}
        if depth > self._deepest:
            self._deepest = depth
        if isinstance(node, list):
            items = []
            for value in node:
                if self._nodes > self._budget:  # e.g. an enum of 5,000 codes: keep the first ones
                    self.events["list_truncated"] += 1
                    self._cuts += 1
                    break
                items.append(self._walk(value, depth + 1, stack, False))
            return items
        if depth > self.max_depth:
            self.events["schema_truncated_depth"] += 1
            self._cuts += 1
            return {"x-truncated": "depth"}
        ref = node.get("$ref") if not in_map else None
        if isinstance(ref, str):
            return self._expand(node, ref, depth, stack)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if self._nodes > self._budget:
                out["x-truncated"] = "size"  # the remaining keys (names, mappings) are left out
                self._cuts += 1
                break
            if not in_map and (key in DROPPED_KEYS or key.startswith("x-")):
                continue
            out[key] = self._walk(value, depth + 1, stack, (not in_map) and key in NAME_MAPS)
        return out

    def _expand(self, node: dict[str, Any], ref: str, depth: int, stack: tuple[str, ...]) -> Any:
        if not ref.startswith("#"):
            self.events["external_ref_kept"] += 1
            return {"x-external-ref": ref}
        if ref in stack:
            self.events["recursive_ref_cut"] += 1
            self._cuts += 1
            return {"x-recursive-ref": ref}
        if len(stack) >= self._ref_depth:
            # depends only on the ref budget left, which keys the reuse cache: not a "cut" there
            self.events["ref_depth_truncated"] += 1
            self._inner.add(ref)
            return {"x-truncated-ref": ref}
        out = self._expand_target(ref, depth, stack)
        siblings = {k: v for k, v in node.items() if k != "$ref" and not k.startswith("x-")}
        if siblings and isinstance(out, dict):
            # OpenAPI 3.1 allows keywords beside $ref (description, nullable): they refine the target.
            out = {**out, **{k: self._walk(v, depth + 1, stack, k in NAME_MAPS) for k, v in siblings.items()}}
        return out

    def _expand_target(self, ref: str, depth: int, stack: tuple[str, ...]) -> Any:
        """The walked target of ``ref``, reused from an earlier expansion when that one is valid here.

        Cloud specs reuse the same component schemas in hundreds of operations; walking each again
        dominated ingest time. An expansion is keyed by the ref and the ref nesting left below it
        (``max_ref_depth`` cuts inside depend only on that). It is reusable when no other bound was
        hit inside it (no recursion, depth or size cut), and in a new place gives the same result as
        long as (a) none of the refs met inside it is on the new stack (no new recursion cut),
        (b) its deepest node still fits ``max_depth`` from here, and (c) its node count fits the
        remaining budget. Counted events inside it (cut strings, ref-depth cuts, unresolved refs)
        are replayed so the totals equal a fresh walk's.
        """
        key = (ref, self._ref_depth - len(stack))
        hit = self._done.get(key)
        if hit is not None:
            out, n_nodes, rel_depth, inner, replay = hit
            if (
                self._nodes + n_nodes <= self._budget
                and depth + rel_depth <= self.max_depth
                and inner.isdisjoint(stack)
            ):
                self._nodes += n_nodes
                self._deepest = max(self._deepest, depth + rel_depth)
                self._inner.update(inner)
                self._inner.add(ref)
                for event, n in replay:
                    self.events[event] += n
                return out
        target = self.lookup(ref)
        if target is _MISSING:
            self.events["unresolved_ref"] += 1
            return {"x-unresolved-ref": ref}
        cuts, nodes, deepest, outer_inner = self._cuts, self._nodes, self._deepest, self._inner
        before = [self.events[e] for e in _REPLAYED]
        self._deepest, self._inner = depth, set()
        out = self._walk(target, depth, (*stack, ref), False)
        if self._cuts == cuts:
            replay = tuple(
                (e, self.events[e] - b) for e, b in zip(_REPLAYED, before, strict=True) if self.events[e] > b
            )
            self._done[key] = (
                out,
                self._nodes - nodes,
                self._deepest - depth,
                frozenset(self._inner),
                replay,
            )
        self._deepest = max(deepest, self._deepest)
        outer_inner.update(self._inner)
        outer_inner.add(ref)
        self._inner = outer_inner
        return out
