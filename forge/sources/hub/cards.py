"""Hub documentation -> API rows (``source="hub_docs"``): Hugging Face model cards and TorchHub
``hubconf.py`` entry points.

- A model card is the model repo's ``README.md``: YAML front matter (``pipeline_tag``,
  ``library_name``, ``license``, ``tags``) and Markdown. One row per model: the tool is "run this
  model's pipeline", its arguments come from the task (``forge.sources.hub.tasks``), and the card's
  summary and usage code blocks become the description.
- ``hubconf.py`` is parsed with ``ast`` and never imported or executed (it may download weights or
  run arbitrary code). Each public top-level function is an entry point: one row, parameters from
  its signature (defaults via ``ast.literal_eval``) and docstring (``docstring_parser``). Names a
  hubconf only imports are counted (``imported_entrypoint``), their code is elsewhere.

Local layout (fixtures, mirrors): ``<root>/hf/<org>__<name>/README.md`` and
``<root>/torchhub/<owner>__<repo>/hubconf.py``. The live path fetches the same files through the
crawler's ``SafeFetcher`` (SSRF guard, robots.txt, rate limits) from configurable base URLs.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from contracts.tables import api_operation_row
from forge.core.ids import sanitize_function_name
from forge.core.stats import StepStats
from forge.crawler.config import CrawlConfig
from forge.crawler.fetcher import SafeFetcher
from forge.sources.hub.tasks import TASK_ALIASES, TASKS, task_signature
from forge.sources.python.introspect import docstring_parts
from forge.sources.python.signatures import text_param_schema

SOURCE = "hub_docs"
HF_BASE = "https://huggingface.co"
GITHUB_RAW_BASE = "https://raw.githubusercontent.com"
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_FENCE = re.compile(r"```([\w+-]*)[^\n]*\n(.*?)```", re.S)
_PIPELINE_CALL = re.compile(r"""pipeline\(\s*(?:task\s*=\s*)?["']([a-z0-9-]+)["']""")


def _row(provider: str, api_name: str, version: str, method: str, path: str, function_name: str,
         **fields: Any) -> dict[str, Any]:  # fmt: skip
    """A hub_docs row: the identifying fields positionally, the rest as ``api_operation_row``'s."""
    return api_operation_row(
        source=SOURCE, provider=provider, api_name=api_name, version=version, method=method, path=path,
        function_name=sanitize_function_name(function_name), **fields,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- model cards
def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter mapping, Markdown body); ({}, text) when there is none.
    Raises ``yaml.YAMLError``/``ValueError`` when the front matter is not a YAML mapping."""
    m = _FRONT.match(text.lstrip("\ufeff"))
    if not m:
        return {}, text
    meta = yaml.safe_load(m.group(1)) or {}
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, text[m.end() :]


def _summary(body: str) -> str | None:
    """First prose paragraph of a card (not a heading, list, table, badge, code or HTML)."""
    stripped = re.sub(r"^\s*#.*$", "", _FENCE.sub("", body), flags=re.M)  # headings are not prose
    candidates = []
    for para in re.split(r"\n\s*\n", stripped):
        p = para.strip()
        if p and not p.startswith(("#", "- ", "* ", "|", "<", "![", "[!", ">", "---")):
            p = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", p).replace("**", "")
            candidates.append(re.sub(r"\s+", " ", p)[:1000])
    # a real sentence beats a caption such as "Example of single-label classification:"
    return next(
        (c for c in candidates if len(c) >= 60 and not c.endswith(":")), candidates[0] if candidates else None
    )


def parse_model_card(
    text: str, model_id: str, *, source_uri: str, fetched_at: datetime, stats: StepStats, revision: str = ""
) -> dict[str, Any] | None:
    """The API row of one model card, or None after counting why (``bad_front_matter``, ``no_task``)."""
    try:
        meta, body = split_front_matter(text)
    except (yaml.YAMLError, ValueError) as exc:
        stats.drop("bad_front_matter", f"{model_id}: {str(exc)[:200]}")
        return None
    blocks = [(lang.lower(), code.strip()) for lang, code in _FENCE.findall(body)]
    tags = [str(t) for t in (meta.get("tags") or []) if isinstance(t, (str, int))]
    task = meta.get("pipeline_tag")
    if not isinstance(task, str) or not task:
        called = [m for _, code in blocks for m in _PIPELINE_CALL.findall(code)]
        task = next((t for t in [*called, *tags] if TASK_ALIASES.get(t, t) in TASKS), None)
    signature = task_signature(task) if task else None
    if signature is None:
        if not task:
            why = "no pipeline_tag, and no known task among its tags or pipeline() calls"
            stats.drop("no_task", f"{model_id}: {why}")
        else:
            stats.drop("unknown_task", f"{model_id}: task {task!r} has no known signature")
        return None
    parameters, result = signature
    usage = [code for lang, code in blocks if lang in ("python", "py", "bash", "sh", "")]
    summary = _summary(body)
    description = "\n\n".join(
        x for x in (summary, *(f"Usage:\n```python\n{code}\n```" for code in usage[:3])) if x
    )  # fmt: skip
    org, _, name = model_id.rpartition("/")
    lic = meta.get("license")
    library = meta.get("library_name") or ("transformers" if "transformers" in body else None)
    stats.keep()
    return _row(
        org or "huggingface", model_id, revision, "pipeline", model_id, model_id.replace("/", "."),
        summary=summary or f"{task} model {model_id}", description=description or None, parameters=parameters,
        responses={"200": {"description": result}},
        tags=[f"task:{task}", *([f"library:{library}"] if library else []), *tags],
        source_uri=source_uri, license=", ".join(lic) if isinstance(lic, list) else str(lic or "unknown"),
        fetched_at=fetched_at,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- hubconf.py
def _literal(node: ast.expr | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return True, ast.unparse(node)


def parse_hubconf(
    source: str, repo: str, *, source_uri: str, fetched_at: datetime, stats: StepStats, ref: str = ""
) -> list[dict[str, Any]]:
    """API rows of a ``hubconf.py``'s public functions (``repo`` = ``owner/name``). Never executes it."""
    try:
        tree = ast.parse(source, filename=source_uri)
    except SyntaxError as exc:
        stats.drop("hubconf_syntax_error", f"{repo}: {exc}")
        return []
    owner, _, name = repo.partition("/")
    rows = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module not in ("__future__", "typing"):
            # torch.hub.list() exposes these too, but their code lives in another module: counted, not parsed
            for alias in node.names:
                public = alias.asname or alias.name
                if not public.startswith("_") and public != "*":
                    stats.drop("imported_entrypoint", f"{repo}: {public} from {node.module}")
            continue
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        summary, long_desc, param_docs, returns_doc = docstring_parts(ast.get_docstring(node) or "")
        a = node.args
        positional = [*a.posonlyargs, *a.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        params = [(arg, d, "positional_or_keyword") for arg, d in zip(positional, defaults, strict=True)]
        params += [(arg, d, "keyword_only") for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
        if a.kwarg:
            params.append((a.kwarg, None, "var_keyword"))
        props: dict[str, Any] = {}
        required: list[str] = []
        for arg, default, kind in params:
            has_default, value = _literal(default)
            p = {"name": arg.arg, "annotation": ast.unparse(arg.annotation) if arg.annotation else None,
                 "default": repr(value) if has_default else None, "kind": kind, "optional": False}  # fmt: skip
            props[arg.arg] = text_param_schema(p, param_docs.get(arg.arg))
            if not has_default and kind != "var_keyword":
                required.append(arg.arg)
        returns = {"description": returns_doc or "a torch.nn.Module (the loaded model)"}
        if node.returns is not None:
            returns["annotation"] = ast.unparse(node.returns)
        stats.keep()
        rows.append(
            _row(
                owner,
                repo,
                ref,
                "torchhub_entrypoint",
                f"{repo}:{node.name}",
                f"{name}.{node.name}",
                summary=summary,
                description="\n\n".join(x for x in (summary, long_desc) if x) or None,
                parameters={"type": "object", "properties": props, "required": required},
                responses={"return": returns},
                tags=["torchhub", repo],
                source_uri=source_uri,
                license="unknown",
                fetched_at=fetched_at,
            )  # fmt: skip
        )
    return rows


# ---------------------------------------------------------------------------------------- local & live
def iter_local_hub_docs(
    root: Path, stats: StepStats, fetched_at: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of every card under ``<root>/hf`` and hubconf under ``<root>/torchhub`` (sorted)."""
    root = Path(root)
    for path in sorted((root / "hf").glob("*/README.md")):
        when = fetched_at or datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).replace(microsecond=0)
        model_id = path.parent.name.replace("__", "/", 1)
        row = _read_and_parse(path, lambda t, p=path, m=model_id, w=when: parse_model_card(
            t, m, source_uri=str(p), fetched_at=w, stats=stats), stats)  # fmt: skip
        if row:
            yield row
    for path in sorted((root / "torchhub").glob("*/hubconf.py")):
        when = fetched_at or datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).replace(microsecond=0)
        repo = path.parent.name.replace("__", "/", 1)
        yield from _read_and_parse(path, lambda t, p=path, r=repo, w=when: parse_hubconf(
            t, r, source_uri=str(p), fetched_at=w, stats=stats), stats) or []  # fmt: skip


def _read_and_parse(path: Path, parse: Any, stats: StepStats) -> Any:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        stats.drop("bad_encoding", f"{path}: {exc}")
        return None


def fetch_hub_docs(
    models: Iterable[str] = (),
    repos: Iterable[str] = (),
    *,
    stats: StepStats,
    config: CrawlConfig | None = None,
    hf_base: str = HF_BASE,
    github_raw_base: str = GITHUB_RAW_BASE,
    revision: str = "main",
) -> list[dict[str, Any]]:
    """Live path: download model cards (``<hf_base>/<model>/raw/<revision>/README.md``) and hubconfs
    (``<github_raw_base>/<owner>/<repo>/<ref>/hubconf.py``; ``repo`` may be ``owner/name:ref``) through
    the crawler's ``SafeFetcher``, then parse them. A failed download is a counted drop
    (``fetch_<reason>``). ``config`` carries politeness and the SSRF allow-list."""
    models, repos = list(models), list(repos)
    config = config or CrawlConfig(seeds=(hf_base,))
    hf_base, github_raw_base = hf_base.rstrip("/"), github_raw_base.rstrip("/")

    async def go() -> list[tuple[str, str, Any]]:
        async with SafeFetcher(config) as fetcher:
            jobs = [("hf", m, f"{hf_base}/{m}/raw/{revision}/README.md") for m in models]
            for r in repos:
                name, _, ref = r.partition(":")
                jobs.append(("torchhub", r, f"{github_raw_base}/{name}/{ref or 'main'}/hubconf.py"))
            results = await asyncio.gather(*(fetcher.fetch(url, content_types=()) for _, _, url in jobs))
            return [(kind, key, res) for (kind, key, _), res in zip(jobs, results, strict=True)]

    rows: list[dict[str, Any]] = []
    for kind, key, res in asyncio.run(go()):
        if not res.ok or res.text is None:
            stats.drop(f"fetch_{res.reason or 'no_body'}", f"{res.url}: {res.detail}")
            continue
        now = datetime.now(UTC).replace(microsecond=0)
        if kind == "hf":
            row = parse_model_card(res.text, key, source_uri=res.final_url, fetched_at=now, stats=stats,
                                   revision=revision)  # fmt: skip
            rows.extend([row] if row else [])
        else:
            name, _, ref = key.partition(":")
            rows.extend(parse_hubconf(res.text, name, source_uri=res.final_url, fetched_at=now, stats=stats,
                                      ref=ref or "main"))  # fmt: skip
    return rows


__all__ = ["fetch_hub_docs", "iter_local_hub_docs", "parse_hubconf", "parse_model_card", "split_front_matter"]
