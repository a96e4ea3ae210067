"""The forbidden-address guard: literal addresses, names that resolve to them, and refusal before
any connection (no request may reach a forbidden address, nor the local server when it is not
allow-listed)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import pytest
from crawler_faultserver import fast

from forge.crawler import AddressGuard, BlockedAddress, CrawlConfig, Crawler, SafeFetcher, address_problem


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.10", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link_local"),
        ("fe80::1", "link_local"),
        ("fd00:ec2::254", "metadata"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not_global"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped IPv6 must not hide a private address
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_problem(addr, problem):
    assert address_problem(ipaddress.ip_address(addr)) == problem


def _fake_dns(monkeypatch, answers):
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_names_resolving_to_forbidden_addresses(monkeypatch):
    calls = _fake_dns(
        monkeypatch,
        {"public.example": ["93.184.216.34"], "evil.example": ["10.0.0.5"],
         "mixed.example": ["93.184.216.34", "127.0.0.1"], "meta.example": ["169.254.169.254"]},
    )  # fmt: skip
    guard = AddressGuard()
    assert guard.resolve("public.example", 80).addresses == ("93.184.216.34",)
    for host in ("evil.example", "mixed.example", "meta.example"):
        with pytest.raises(BlockedAddress):
            guard.resolve(host, 80)
    with pytest.raises(BlockedAddress):
        guard.resolve("metadata.google.internal", 80)
    assert "metadata.google.internal" not in calls  # refused by name, no DNS query
    with pytest.raises(LookupError):
        guard.resolve("nowhere.example", 80)


def test_allow_list_is_explicit(monkeypatch):
    _fake_dns(monkeypatch, {"localhost": ["127.0.0.1"], "dev.internal": ["10.1.2.3"]})
    with pytest.raises(BlockedAddress):
        AddressGuard().resolve("localhost", 80)
    assert AddressGuard(["127.0.0.1"]).resolve("localhost", 80).addresses == ("127.0.0.1",)
    with pytest.raises(BlockedAddress):
        AddressGuard(["127.0.0.1"]).resolve("::1", 80)  # allowing 127.0.0.1 allows nothing else
    assert AddressGuard(["10.0.0.0/8"]).resolve("dev.internal", 80).addresses == ("10.1.2.3",)
    assert AddressGuard(["dev.internal"]).resolve("dev.internal", 80).addresses == ("10.1.2.3",)


def test_fetcher_refuses_before_connecting(site):
    s, base = site
    port = base.rsplit(":", 1)[1].strip("/")
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="should never be reached")

    cfg = CrawlConfig(seeds=("http://x/",), **fast(allow_addresses=()))
    targets = ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
               f"http://localhost:{port}/index.html", f"http://127.0.0.1:{port}/index.html"]  # fmt: skip

    async def go() -> list[str | None]:
        async with SafeFetcher(cfg, transport=httpx.MockTransport(handler)) as fetcher:
            results = [await fetcher.fetch(u) for u in targets]
            results.append(await fetcher.fetch("ftp://127.0.0.1/x"))
            return [r.reason for r in results]

    reasons = asyncio.run(go())
    assert reasons == ["ssrf_blocked"] * 5 + ["bad_scheme"]
    assert sent == [] and s.log == []


def test_crawler_without_allow_list_refuses_local_server(site, tmp_path):
    s, base = site
    cfg = CrawlConfig(seeds=(base + "index.html",), **fast(allow_addresses=()))
    with Crawler(cfg, tmp_path / "c.duckdb") as crawler:
        summary = crawler.run()
    assert summary["skipped_by_reason"] == {"ssrf_blocked": 1}
    assert summary["pages_fetched"] == 0
    assert s.log == []  # not even robots.txt was requested


def test_redirect_to_forbidden_address_is_refused(tmp_path):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    cfg = CrawlConfig(seeds=("http://127.0.0.1:9/start",), **fast(scopes=("re:.*",)))

    async def go():
        async with SafeFetcher(cfg, transport=httpx.MockTransport(handler)) as fetcher:
            return await fetcher.fetch("http://127.0.0.1:9/start")

    res = asyncio.run(go())
    assert res.reason == "ssrf_blocked"
    assert all("169.254" not in u for u in sent)
