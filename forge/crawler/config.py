"""Crawl configuration: what to crawl (seeds, scopes, depth, budget) and how politely.

One frozen dataclass, built from a profile's YAML mapping with ``CrawlConfig.from_mapping`` so a
typo in a key is an error, not a silently ignored setting. Times are seconds, sizes bytes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__version__ = "0.1"

#: Product token robots.txt groups are matched against (``User-agent: HephaestusForge``).
ROBOTS_TOKEN = "HephaestusForge"


@dataclass(frozen=True)
class CrawlConfig:
    """Settings of one crawl. Defaults are polite enough for a public documentation site.

    ``scopes``: a URL is in scope when it starts with one of the prefixes, or matches one of the
    regexes given as ``"re:<pattern>"``; empty means "under the directory of some seed".
    ``allow_addresses``: IPs, CIDRs or host names exempt from the private-address guard
    (tests put ``127.0.0.1`` here; production leaves it empty).
    """

    seeds: tuple[str, ...]
    max_depth: int = 2
    max_pages: int = 1000  # fetches (200, 304 and failures alike) per run: the page budget
    scopes: tuple[str, ...] = ()
    allow_addresses: tuple[str, ...] = ()
    user_agent: str = (
        f"{ROBOTS_TOKEN}/{__version__} (API-documentation corpus crawler; polite, obeys robots.txt)"
    )
    respect_robots: bool = True
    obey_nofollow: bool = True
    min_delay_s: float = 1.0  # per host, between request starts (robots Crawl-delay may raise it)
    max_crawl_delay_s: float = 30.0  # cap on a robots Crawl-delay we honour
    per_host_concurrency: int = 2
    max_concurrency: int = 8
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0  # between two reads of the response
    page_timeout_s: float = 60.0  # whole attempt (a server dripping bytes slowly is cut here)
    max_retries: int = 3  # extra attempts after the first, for timeouts, 5xx and 429
    backoff_base_s: float = 0.5  # attempt k waits base * 2**k, plus up to 100% jitter
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0  # a longer Retry-After gives up on the URL ("retry_after_too_long")
    max_redirects: int = 5
    max_bytes: int = 5 * 1024 * 1024
    content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml")
    source: str = "web_docs"  # raw.documents.source and raw.api_operations.source
    api_version: str = ""  # version column of extracted API rows (e.g. "3.11" for Python docs)
    license: str = "unknown"
    extract_apis: bool = True
    extract_workers: int = 0  # >0: parse pages in a process pool of this size (CPU-bound HTML parsing)
    dns_cache_s: float = 60.0
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("CrawlConfig needs at least one seed URL")
        if self.max_depth < 0 or self.max_pages < 0:
            raise ValueError("max_depth and max_pages must be >= 0")
        if self.per_host_concurrency < 1 or self.max_concurrency < 1:
            raise ValueError("concurrency limits must be >= 1")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "scopes", tuple(self.scopes))
        object.__setattr__(self, "allow_addresses", tuple(self.allow_addresses))
        object.__setattr__(self, "content_types", tuple(c.lower() for c in self.content_types))
        patterns = tuple(re.compile(s[3:]) for s in self.scopes if s.startswith("re:"))
        object.__setattr__(self, "_compiled", patterns)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CrawlConfig:
        """Build from a YAML/JSON mapping; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown crawl config keys: {unknown}; known: {sorted(names)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (for fingerprints and run metadata)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def prefixes(self) -> tuple[str, ...]:
        """Prefix scopes; when none (and no regex) is configured, each seed's directory."""
        explicit = tuple(s for s in self.scopes if not s.startswith("re:"))
        if explicit or self._compiled:
            return explicit
        return tuple(s[: s.rfind("/") + 1] if s.count("/") > 2 else s.rstrip("/") + "/" for s in self.seeds)

    def in_scope(self, url: str) -> bool:
        """Whether a normalized URL is inside the configured scopes."""
        if any(url.startswith(p) for p in self.prefixes()):
            return True
        return any(p.search(url) for p in self._compiled)
