"""The one way the crawler (and the hub connectors) reach the network: ``SafeFetcher.fetch``.

Per request, in order: http/https only; host resolved and checked by the SSRF guard (the
connection is then pinned to the checked address); robots.txt consulted; a slot taken from the
host's concurrency limit and rate limit; the request sent with an identifying User-Agent and,
on a re-crawl, ``If-None-Match`` / ``If-Modified-Since``. Answers are handled so that a bad
server costs little: timeouts and 5xx are retried with exponential backoff and jitter, 429/503
honour ``Retry-After`` (and slow the whole host down), redirects are followed by hand with a hop
limit and loop detection, the content type is checked from the headers before reading, and the
body is streamed and abandoned once it passes ``max_bytes``. Every failure ends in a
``FetchResult`` whose ``reason`` names it (``http_404``, ``timeout``, ``too_large``...).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from forge.crawler.config import CrawlConfig
from forge.crawler.robots import RobotsRules
from forge.crawler.ssrf import AddressGuard, BlockedAddress
from forge.crawler.urls import BadURL, host_key, normalize_url, robots_url

_REDIRECTS = {301, 302, 303, 307, 308}
_RETRY_STATUS = {500, 502, 503, 504, 429}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.I)


@dataclass
class FetchResult:
    """Outcome of fetching one URL. ``reason`` is None when content (or a 304) was obtained."""

    url: str
    final_url: str
    status: int | None = None
    reason: str | None = None
    detail: str = ""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    text: str | None = None
    n_bytes: int = 0
    n_attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def not_modified(self) -> bool:
        return self.reason is None and self.status == 304


class _Fail(Exception):
    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail, self.status = reason, detail, status


@dataclass
class _Host:
    sem: asyncio.Semaphore
    delay: float
    next_at: float = 0.0
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # one request start at a time


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_s(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [d, 2d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * (2**attempt))
    return d + random.uniform(0, d)


def _decode(body: bytes, header_charset: str | None) -> str:
    charset = header_charset
    if not charset:
        m = _META_CHARSET.search(body[:4096])
        charset = m.group(1).decode("ascii") if m else "utf-8"
    try:
        return body.decode(charset)
    except LookupError:
        return body.decode("utf-8")


class SafeFetcher:
    """Async HTTP client with the crawler's safety and politeness rules. Use ``async with``.

    ``events`` counts what happened besides outcomes (retries, Retry-After waits, robots reads);
    ``transport`` lets tests plug in an ``httpx.MockTransport``.
    """

    def __init__(
        self,
        config: CrawlConfig,
        guard: AddressGuard | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        events: Counter | None = None,
    ) -> None:
        self.config = config
        self.guard = guard or AddressGuard(config.allow_addresses, cache_s=config.dns_cache_s)
        self.events = events if events is not None else Counter()
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=None,
        )
        limits = httpx.Limits(max_connections=config.max_concurrency * 2, max_keepalive_connections=32)
        self._client = httpx.AsyncClient(
            timeout=timeout, limits=limits, follow_redirects=False, transport=transport, trust_env=False
        )
        self._hosts: dict[str, _Host] = {}
        self._robots: dict[str, RobotsRules] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---------------------------------------------------------------- politeness
    def _host(self, key: str) -> _Host:
        st = self._hosts.get(key)
        if st is None:
            st = self._hosts[key] = _Host(
                asyncio.Semaphore(self.config.per_host_concurrency), self.config.min_delay_s
            )
        return st

    async def _take_slot(self, key: str) -> _Host:
        st = self._host(key)
        await st.sem.acquire()
        # Starts are spaced from when each request really went, not from when it was due: a late
        # wake-up must not let the next request follow closer than the host's delay.
        async with st.turn:
            while (wait := st.next_at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            st.next_at = time.monotonic() + st.delay
        return st

    def _hold_host(self, key: str, seconds: float) -> None:
        st = self._host(key)
        st.next_at = max(st.next_at, time.monotonic() + seconds)

    async def robots_for(self, url: str) -> RobotsRules:
        """The robots.txt rules of ``url``'s host, fetched once per crawl (through the guard)."""
        key = host_key(url)
        lock = self._robots_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._robots:
                res = await self.fetch(robots_url(url), check_robots=False, content_types=())
                self.events["robots_fetched"] += 1
                if res.ok and res.text is not None:
                    rules = RobotsRules.parse(res.text)
                else:
                    rules = RobotsRules.from_status(res.status if res.reason != "ssrf_blocked" else 404)
                    self.events[f"robots_{rules.status}"] += 1
                delay = rules.crawl_delay(self.config.user_agent)
                if delay is not None:
                    st = self._host(key)
                    st.delay = max(st.delay, min(delay, self.config.max_crawl_delay_s))
                self._robots[key] = rules
            return self._robots[key]

    # ---------------------------------------------------------------- fetching
    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        check_robots: bool = True,
        content_types: tuple[str, ...] | None = None,
        allow_redirect: Callable[[str], str | None] | None = None,
    ) -> FetchResult:
        """Fetch ``url`` (normalized by the caller) following redirects; never raises for bad servers.

        ``content_types``: accepted media types (None = the config's; ``()`` = any).
        ``allow_redirect(url)`` returns a skip reason for a redirect target, or None to follow it.
        """
        accepted = self.config.content_types if content_types is None else content_types
        result = FetchResult(url=url, final_url=url)
        chain = [url]
        current = url
        while True:
            try:
                await self._check(current, check_robots)
                conditional = (etag, last_modified) if current == url else (None, None)
                status, location = await self._attempts(current, result, conditional, accepted)
            except _Fail as exc:
                result.reason, result.detail = exc.reason, exc.detail
                result.status = exc.status if exc.status is not None else result.status
                return result
            if status not in _REDIRECTS:
                result.final_url = current
                return result
            try:
                target = normalize_url(location or "", base=current)
            except BadURL as exc:
                result.reason, result.detail = "bad_redirect", str(exc)
                return result
            if target in chain:
                result.reason, result.detail = "redirect_loop", " -> ".join([*chain, target])[-500:]
                return result
            if len(chain) > self.config.max_redirects:
                result.reason, result.detail = "too_many_redirects", f"{len(chain) - 1} hops from {url}"
                return result
            refused = allow_redirect(target) if allow_redirect else None
            if refused:
                result.reason, result.detail = refused, f"{current} -> {target}"
                return result
            chain.append(target)
            current = target
            self.events["redirects_followed"] += 1

    async def _check(self, url: str, check_robots: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise _Fail("bad_scheme", url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.guard.resolve, parts.hostname or "", port
            )
        except BlockedAddress as exc:
            raise _Fail("ssrf_blocked", f"{url}: {exc}") from None
        except LookupError as exc:
            raise _Fail("dns_error", str(exc)) from None
        if check_robots and self.config.respect_robots:
            rules = await self.robots_for(url)
            if not rules.can_fetch(url, self.config.user_agent):
                raise _Fail("robots", url)

    async def _attempts(
        self,
        url: str,
        result: FetchResult,
        conditional: tuple[str | None, str | None],
        accepted: tuple[str, ...],
    ) -> tuple[int, str | None]:
        """Send with retries; fill ``result``; return (status, Location). Raises ``_Fail`` on give-up."""
        cfg = self.config
        key = host_key(url)
        last: _Fail | None = None
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self.events["retries"] += 1
            result.n_attempts += 1
            st = await self._take_slot(key)
            try:
                async with asyncio.timeout(cfg.page_timeout_s):
                    return await self._one(url, result, conditional, accepted)
            except _Fail as exc:
                if exc.status not in _RETRY_STATUS and exc.reason not in ("timeout", "transport_error"):
                    raise
                last = exc
                wait = backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s)
                if exc.status in (429, 503) and exc.detail.startswith("retry_after="):
                    ra = float(exc.detail.split("=", 1)[1])
                    if ra > cfg.max_retry_after_s:
                        raise _Fail(
                            "retry_after_too_long", f"{url}: Retry-After {ra:g}s", exc.status
                        ) from None
                    self.events["retry_after_honoured"] += 1
                    wait = ra
                self._hold_host(key, wait)  # the whole host waits, not only this URL
            except TimeoutError:
                last = _Fail("timeout", f"{url}: no complete answer in {cfg.page_timeout_s:g}s")
                self._hold_host(key, backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s))
            finally:
                st.sem.release()
        assert last is not None
        raise last

    async def _one(
        self,
        url: str,
        result: FetchResult,
        conditional: tuple[str | None, str | None],
        accepted: tuple[str, ...],
    ) -> tuple[int, str | None]:
        parts = urlsplit(url)
        resolved = self.guard.resolve(
            parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        )
        ip = resolved.addresses[0]
        netloc = (f"[{ip}]" if ":" in ip else ip) + (f":{parts.port}" if parts.port else "")
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {
            "Host": parts.netloc,
            "User-Agent": self.config.user_agent,
            "Accept": "text/html,*/*;q=0.5",
        }
        if conditional[0]:
            headers["If-None-Match"] = conditional[0]
        if conditional[1]:
            headers["If-Modified-Since"] = conditional[1]
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        request = self._client.build_request("GET", pinned, headers=headers, extensions=extensions)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Fail("timeout", f"{url}: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise _Fail("transport_error", f"{url}: {type(exc).__name__}: {exc}"[:300]) from None
        try:
            return await self._read(url, response, result, accepted)
        except httpx.TimeoutException as exc:
            raise _Fail("timeout", f"{url}: {type(exc).__name__} while reading") from None
        except httpx.TransportError as exc:
            raise _Fail("transport_error", f"{url}: {type(exc).__name__}: {exc}"[:300]) from None
        finally:
            await response.aclose()

    async def _read(
        self, url: str, response: httpx.Response, result: FetchResult, accepted: tuple[str, ...]
    ) -> tuple[int, str | None]:
        status = response.status_code
        result.status = status
        h = response.headers
        result.etag, result.last_modified = h.get("etag"), h.get("last-modified")
        if status in _REDIRECTS:
            return status, h.get("location")
        if status == 304:
            return status, None
        if status in (429, 503):
            ra = retry_after_seconds(h.get("retry-after"))
            raise _Fail(f"http_{status}", f"retry_after={ra}" if ra is not None else url, status)
        if status != 200:
            raise _Fail(f"http_{status}", url, status)
        media = (h.get("content-type") or "").split(";", 1)[0].strip().lower()
        result.content_type = media or None
        if accepted and media and media not in accepted:
            raise _Fail("bad_content_type", f"{url}: {media}", status)
        declared = h.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_bytes:
            raise _Fail("too_large", f"{url}: Content-Length {declared} > {self.config.max_bytes}", status)
        chunks: list[bytes] = []
        n = 0
        async for chunk in response.aiter_bytes():
            n += len(chunk)
            if n > self.config.max_bytes:
                raise _Fail("too_large", f"{url}: body passed {self.config.max_bytes} bytes", status)
            chunks.append(chunk)
        body = b"".join(chunks)
        result.n_bytes = n
        if b"\x00" in body[:2048]:
            raise _Fail("binary_body", f"{url}: NUL bytes in a {media or 'untyped'} body", status)
        try:
            result.text = _decode(body, response.charset_encoding)
        except UnicodeDecodeError as exc:
            raise _Fail("bad_encoding", f"{url}: {exc}"[:300], status) from None
        return status, None
