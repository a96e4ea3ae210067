"""Arrow schema of ``raw.documents``: pages and files the crawler and hub connectors fetched.

Grain: one row per stored page of the latest crawl run (its canonical URI), so a weekly rebuild
replaces the table; a page answered with 304 keeps its earlier text and ``fetched_at``.
Lives beside the crawler (not in ``forge/schemas.py``) until the lead adopts it.
"""

from __future__ import annotations

import pyarrow as pa

from forge.schemas import TS

DOCUMENTS = pa.schema(
    [
        ("uri", pa.string()),  # canonical, normalized URL of the page
        ("source", pa.string()),  # web_docs | hub_docs | ... (the crawl's configured source)
        ("status", pa.int32()),  # HTTP status the stored content came with (200)
        ("content_type", pa.string()),  # media type without parameters (text/html)
        ("title", pa.string()),
        ("text", pa.string()),  # main text (boilerplate removed), paragraphs on separate lines
        ("sha256", pa.string()),  # of text
        ("depth", pa.int32()),  # link distance from the nearest seed (seeds: 0)
        ("parent_uri", pa.string()),  # the page whose link discovered it (lineage); null for seeds
        ("fetched_at", TS),  # when this content was downloaded (a 304 keeps the old time)
        ("validated_at", TS),  # when the latest run last confirmed it (200 or 304)
        ("etag", pa.string()),
        ("last_modified", pa.string()),  # the server's Last-Modified header, verbatim
        ("requested_uri", pa.string()),  # the frontier URL (differs from uri after redirects/canonical)
        ("n_chars", pa.int64()),
        ("n_apis", pa.int32()),  # API signatures extracted from the page
    ]
)
