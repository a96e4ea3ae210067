"""A polite, resumable, SSRF-safe documentation crawler.

Public entry points: ``CrawlConfig`` (what and how), ``Crawler`` (run / resume / export),
``SafeFetcher`` (the only network path, also used by ``forge.sources.hub.cards``), ``AddressGuard``
(the private-address check), ``normalize_url`` and ``extract_page``. Run from a shell with
``python -m forge.crawler SEED... --max-depth N --max-pages N --allow-host HOST --db PATH``.

The crawler stores and exports API rows but does not build them: the caller hands ``Crawler`` the
function that turns a page's signatures into rows (``forge.sources.webdocs.signature_rows``), so
the crawler imports nothing of the sources that use it.
"""

from forge.crawler.config import CrawlConfig
from forge.crawler.crawl import Crawler, crawl_and_export
from forge.crawler.extract import PageExtract, extract_page
from forge.crawler.fetcher import FetchResult, SafeFetcher
from forge.crawler.ssrf import AddressGuard, BlockedAddress, address_problem
from forge.crawler.urls import BadURL, normalize_url

__all__ = [
    "AddressGuard",
    "BadURL",
    "BlockedAddress",
    "CrawlConfig",
    "Crawler",
    "FetchResult",
    "PageExtract",
    "SafeFetcher",
    "address_problem",
    "crawl_and_export",
    "extract_page",
    "normalize_url",
]
