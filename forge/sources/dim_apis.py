"""The deduplicated API operations (the warehouse's ``dim_apis``) as the input of the corpus.

``dim_apis`` counts an operation once across spec versions and sources (its newest version;
``fct_duplicate_apis`` lists the copies merged into it), and unions all four API tables: OpenAPI
operations, Python functions, hub entry points and the signatures of crawled documentation. Agent
documents and synthesis read it here, so a merged copy is neither rendered nor synthesized twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from forge.core.warehouse import connect, iter_rows

#: The columns the renderers and synthesis read (JSON columns as text, as in the raw tables),
#: one API's rows contiguous (ordered by API), so chunked readers never split an API.
DIM_APIS_QUERY = """
    select api_id, source, provider, api_name, version, function_name, method, path, summary,
           description, cast(parameters as varchar) as parameters,
           cast(responses as varchar) as responses, license, source_uri, fetched_at,
           n_copies, n_versions
    from dim_apis
    order by provider, api_name, version, source, function_name, api_id
"""


def iter_dim_apis(warehouse: str | Path) -> Iterator[dict[str, Any]]:
    """``dim_apis`` rows as dicts, in API order."""
    yield from iter_rows(warehouse, DIM_APIS_QUERY)


def export_dim_apis(warehouse: str | Path, path: Path) -> Path:
    """``dim_apis`` as one Parquet file at ``path``, in API order (the file readers of synthesis)."""
    quoted = str(path).replace("'", "''")
    with connect(warehouse) as con:
        con.execute(f"copy ({DIM_APIS_QUERY}) to '{quoted}' (format parquet)")
    return path
