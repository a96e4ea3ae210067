"""Benchmark decontamination by word n-gram overlap (the paper's "string matching against the corpus").

Benchmark items (BFCL questions and function documents, HumanEval prompts and canonical solutions,
held-out API docs; :func:`benchmark_index`) are indexed as sets of word n-grams after
normalization (lowercase, punctuation removed); a corpus document is contaminated by an item when
they share at least ``min_shared`` n-grams. Default ``n = 8``: long enough that common phrases do
not match, short enough for BFCL questions (median ~21 words, ~10% under 8).

Items shorter than ``n`` words would have no n-gram at all and could never be found, so they
are indexed by their *whole* word sequence and match a document that contains that exact
sequence. Items shorter than ``min_item_words`` (default 4: "yes", "continue", ...) would match
nearly every document and are skipped, counted in ``NgramIndex.stats``.

N-grams are kept as tuples of words in a dict (exact, no hash collisions; BFCL's ~7k items give a
few hundred thousand keys). A document is checked in one pass: its windows of the shortest key
length are tested against the set of key prefixes, and only the rare positions that pass are
looked up at each key length.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge.core.stage import Stage, StageConfig
from forge.core.stats import StepStats

DEFAULT_N = 8
DEFAULT_MIN_ITEM_WORDS = 4
_WORD_RE = re.compile(r"[^\W_]+")  # runs of Unicode letters/digits; '_' counts as punctuation

Ngram = tuple[str, ...]


def normalize_words(text: str) -> list[str]:
    """Lowercase, drop punctuation (underscores included, so ``get_weather`` -> ``get weather``), split."""
    return _WORD_RE.findall(text.lower())


def ngrams(words: list[str], n: int) -> set[Ngram]:
    """The set of contiguous ``n``-word tuples of ``words`` (empty when ``len(words) < n``)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return set(zip(*(words[i:] for i in range(n)), strict=False))


@dataclass
class NgramIndex:
    """N-grams of benchmark items -> the items that contain them.

    ``lengths`` are the n-gram lengths present: ``n`` plus the lengths of short items indexed by
    their full word sequence.
    """

    n: int
    table: dict[Ngram, list[tuple[str, str]]] = field(default_factory=dict)  # ngram -> [(benchmark, item_id)]
    lengths: set[int] = field(default_factory=set)
    prefixes: set[Ngram] = field(default_factory=set)  # first ``min_len`` words of every key
    min_len: int = 0
    n_items: int = 0
    stats: StepStats = field(default_factory=lambda: StepStats("decontam_index"))

    def add(
        self, item_id: str, benchmark: str, text: str, *, min_item_words: int = DEFAULT_MIN_ITEM_WORDS
    ) -> bool:
        """Index one item; return False (and count why) when it is too short to match safely."""
        words = normalize_words(text or "")
        if len(words) < min_item_words:
            self.stats.drop("too_few_words", f"{benchmark}/{item_id}: {len(words)} words")
            return False
        k = min(self.n, len(words))
        owner = (benchmark, str(item_id))
        for g in ngrams(words, k):
            if all(w.isdigit() for w in g):
                continue  # "1 2 3 4 5 6 7 8": a counting run, not a benchmark's words
            bucket = self.table.setdefault(g, [])
            if owner not in bucket:
                bucket.append(owner)
        self.lengths.add(k)
        if self.min_len == 0 or k < self.min_len:
            # A new shortest key length: prefixes must be rebuilt at that length (rare).
            self.min_len = k
            self.prefixes = {key[:k] for key in self.table}
        else:
            self.prefixes.update(g[: self.min_len] for g in ngrams(words, k))
        self.n_items += 1
        self.stats.keep()
        return True

    def shared(self, text: str) -> dict[tuple[str, str], list[Ngram]]:
        """For each item sharing n-grams with ``text``: the shared n-grams (distinct).

        One pass over the document's ``min_len``-word windows against the set of key prefixes
        finds candidate positions; only there are the longer keys looked up.
        """
        words = normalize_words(text)
        hits: dict[tuple[str, str], list[Ngram]] = defaultdict(list)
        m = self.min_len
        if not self.table or len(words) < m:
            return hits
        prefixes, table, lengths = self.prefixes, self.table, sorted(self.lengths)
        seen: set[Ngram] = set()
        for pos, g in enumerate(zip(*(words[i:] for i in range(m)), strict=False)):
            if g not in prefixes:
                continue
            for k in lengths:
                key = g if k == m else tuple(words[pos : pos + k])
                if len(key) == k and key in table and key not in seen:
                    seen.add(key)
                    for owner in table[key]:
                        hits[owner].append(key)
        return hits

    def matches(self, text: str) -> list[tuple[str, str, int]]:
        """``(benchmark, item_id, n_shared)`` for every item sharing at least one n-gram, most shared first."""
        found = [(b, i, len(gs)) for (b, i), gs in self.shared(text).items()]
        return sorted(found, key=lambda t: (-t[2], t[0], t[1]))


def build_index(
    items: Iterable[tuple[str, str, str]],
    n: int = DEFAULT_N,
    *,
    min_item_words: int = DEFAULT_MIN_ITEM_WORDS,
) -> NgramIndex:
    """Index ``(item_id, benchmark, text)`` triples; see :class:`NgramIndex` for short items."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    index = NgramIndex(n=n)
    for item_id, benchmark, text in items:
        index.add(item_id, benchmark, text, min_item_words=min_item_words)
    return index


def find_contamination(
    docs: Iterable[Mapping[str, Any]],
    index: NgramIndex,
    min_shared: int = 1,
    *,
    stats: StepStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one row per (document, item) pair sharing at least ``min_shared`` n-grams.

    Rows: ``{doc_id, benchmark, item_id, n_shared_ngrams, example_ngram}`` where
    ``example_ngram`` is one shared n-gram as space-joined words (the smallest, for determinism).
    Documents without text are counted in ``stats`` as ``missing_text``; every checked document
    counts as kept, so ``stats.n_kept`` is the number of documents scanned.
    """
    stats = stats if stats is not None else StepStats("find_contamination")
    for doc in docs:
        text = doc.get("text")
        if not isinstance(text, str):
            stats.drop("missing_text", doc.get("doc_id"))
            continue
        stats.keep()
        hits = index.shared(text)
        for (benchmark, item_id), grams in sorted(hits.items()):
            if len(grams) >= min_shared:
                yield {
                    "doc_id": doc.get("doc_id"),
                    "benchmark": benchmark,
                    "item_id": item_id,
                    "n_shared_ngrams": len(grams),
                    "example_ngram": " ".join(min(grams)),
                }


# --- the benchmarks the corpus is checked against -------------------------------------------------

#: columns of ``fct_contamination``: ``benchmark`` (bfcl, humaneval, heldout_api) and ``reason`` (the
#: part of the benchmark that matched: question, function_doc, prompt, canonical_solution, api_doc)
CONTAMINATION_COLUMNS = ["doc_id", "benchmark", "reason", "item_id", "n_shared_ngrams", "example_ngram"]


def function_doc_text(fn: Mapping[str, Any]) -> str:
    """The words of one BFCL function document: its name (``math.factorial`` -> ``math factorial``),
    description, and every parameter's name and description, nested properties included."""
    parts = [str(fn.get("name") or ""), str(fn.get("description") or "")]

    def walk(schema: Any) -> None:
        if not isinstance(schema, Mapping):
            return
        for name, prop in (schema.get("properties") or {}).items():
            parts.append(str(name))
            if isinstance(prop, Mapping):
                parts.append(str(prop.get("description") or ""))
                walk(prop)
                walk(prop.get("items"))

    walk(fn.get("parameters"))
    return " ".join(p for p in parts if p)


def distinct_function_docs(functions_json: Iterable[str | None]) -> Iterator[tuple[str, str]]:
    """``(item_id, text)`` of every distinct BFCL function document in the items' ``functions``
    (JSON lists; the same function recurs across items). ``item_id`` is the function's name, with
    ``#2``, ``#3``... when one name has several different documents. Unparsable JSON is skipped."""
    import json

    seen: dict[str, set[str]] = {}
    for raw in functions_json:
        try:
            fns = json.loads(raw) if raw else []
        except (TypeError, ValueError):
            continue
        for fn in fns if isinstance(fns, list) else [fns]:
            if not isinstance(fn, Mapping):
                continue
            text = function_doc_text(fn)
            name = str(fn.get("name") or "function")
            texts = seen.setdefault(name, set())
            if text in texts:
                continue
            texts.add(text)
            yield (name if len(texts) == 1 else f"{name}#{len(texts)}"), text


def benchmark_index(
    n: int,
    *,
    bfcl_questions: Iterable[tuple[str, str]] = (),
    bfcl_functions: Iterable[str | None] = (),
    humaneval: Iterable[tuple[str, str, str]] = (),
    heldout_apis: Iterable[tuple[str, str]] = (),
) -> NgramIndex:
    """One index over every benchmark text the corpus must not hold:

    * BFCL questions ``(item_id, text)``: shorter than ``n`` words matched whole from 6 words up
      (shorter ones are stock phrases every chat transcript repeats);
    * BFCL function documents (each item's ``functions`` JSON), HumanEval ``(task_id, part, text)``
      with part ``prompt`` or ``canonical_solution``, and held-out APIs ``(api_id, text)``: full
      ``n``-grams only (short API phrases and one-line solutions recur in unrelated text and code).

    Owners are ``("<benchmark>/<reason>", item_id)``; :func:`contamination_rows` splits them.
    """
    index = NgramIndex(n=n)
    for item_id, text in bfcl_questions:
        index.add(item_id, "bfcl/question", text, min_item_words=min(n, 6))
    for item_id, text in distinct_function_docs(bfcl_functions):
        index.add(item_id, "bfcl/function_doc", text, min_item_words=n)
    for task_id, part, text in humaneval:
        index.add(task_id, f"humaneval/{part}", text, min_item_words=n)
    for api_id, text in heldout_apis:
        index.add(api_id, "heldout_api/api_doc", text, min_item_words=n)
    return index


def contamination_rows(
    docs: Iterable[Mapping[str, Any]], index: NgramIndex, min_shared: int = 1
) -> Iterator[dict[str, Any]]:
    """:func:`find_contamination` with the owner's ``benchmark/reason`` split into two columns
    (:data:`CONTAMINATION_COLUMNS`)."""
    for row in find_contamination(docs, index, min_shared):
        benchmark, _, reason = row["benchmark"].partition("/")
        yield {**row, "benchmark": benchmark, "reason": reason or "ngram"}


class HumanEvalItemsConfig(StageConfig):
    """No settings: every problem's prompt and canonical solution is benchmark text."""


def write_humaneval_items(cfg: HumanEvalItemsConfig, *, problems_path: Path, out_dir: Path) -> dict[str, Any]:
    """HumanEval's problems file -> ``out_dir/part-0.parquet`` (raw.humaneval_items): one row per
    problem part (prompt, canonical solution), for decontamination. The asset passes the path (the
    evaluation's copy: a local file or the downloaded wheel's); the file is read here through
    ``contracts.humaneval``, never through the evaluation package."""
    from contracts.humaneval import read_problems
    from contracts.tables import HUMANEVAL_ITEMS
    from forge.core.io import write_parquet

    problems = read_problems(problems_path)
    rows = [
        {"item_id": p["task_id"], "part": part, "text": p[part], "source_uri": str(problems_path)}
        for p in problems
        for part in ("prompt", "canonical_solution")
        if isinstance(p.get(part), str) and p[part].strip()
    ]
    n = write_parquet(out_dir / "part-0.parquet", rows, HUMANEVAL_ITEMS)
    return {"n_rows": n, "n_problems": len(problems)}


HUMANEVAL_ITEMS_STAGE = Stage("humaneval_items", HumanEvalItemsConfig, write_humaneval_items)
