"""A fault-injecting documentation site on 127.0.0.1 for the crawler tests.

Serves a small generated site whose pages exercise every rule of the crawler: robots.txt
disallows, a 429 with Retry-After, 500s, slow answers, a redirect loop, an off-site redirect, a
huge page, binary bodies, an undeclared non-UTF-8 page, malformed HTML, a canonical link, an
ETag page, Last-Modified on ordinary pages, and Sphinx / pydoc API pages. Every request is logged
(path, monotonic time, headers) so tests can check what was, and was not, sent.
"""

from __future__ import annotations

import pydoc
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAST_MODIFIED = "Tue, 12 May 2026 05:17:27 GMT"

SPHINX_API = """<!DOCTYPE html><html><head><title>demo.tools — Demo tools</title></head><body>
<div class="related" role="navigation"><a href="index.html">index</a> NAVTEXT</div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
<section id="module-demo.tools"><h1>demo.tools — Demo tools</h1><p>Helpers for the demo.</p>
<dl class="py function">
<dt class="sig sig-object py" id="demo.tools.resize">
<span class="sig-prename descclassname"><span class="pre">demo.tools.</span></span><span class="sig-name descname"><span class="pre">resize</span></span><span class="sig-paren">(</span><em class="sig-param"><span class="n"><span class="pre">image</span></span></em>, <em class="sig-param"><span class="n"><span class="pre">width</span></span><span class="p"><span class="pre">:</span></span> <span class="n"><span class="pre">int</span></span></em>, <em class="sig-param"><span class="o"><span class="pre">*</span></span></em>, <em class="sig-param"><span class="n"><span class="pre">keep_ratio</span></span><span class="o"><span class="pre">=</span></span><span class="default_value"><span class="pre">True</span></span></em>, <em class="sig-param"><span class="o"><span class="pre">**</span></span><span class="n"><span class="pre">options</span></span></em><span class="sig-paren">)</span><a class="headerlink" href="#demo.tools.resize">¶</a></dt>
<dd><p>Resize <em>image</em> to <em>width</em> pixels.</p>
<dl class="field-list simple"><dt class="field-odd">Parameters<span class="colon">:</span></dt>
<dd class="field-odd"><ul class="simple"><li><p><strong>image</strong> (<em>bytes</em>) – the encoded image</p></li>
<li><p><strong>width</strong> – target width in pixels</p></li></ul></dd></dl></dd></dl>
<dl class="py class">
<dt class="sig sig-object py" id="demo.tools.Cache"><em class="property"><span class="pre">class</span> </em><span class="sig-prename descclassname"><span class="pre">demo.tools.</span></span><span class="sig-name descname"><span class="pre">Cache</span></span><span class="sig-paren">(</span><em class="sig-param"><span class="n"><span class="pre">size</span></span><span class="o"><span class="pre">=</span></span><span class="default_value"><span class="pre">128</span></span></em><span class="sig-paren">)</span></dt>
<dd><p>A bounded cache.</p>
<dl class="py method">
<dt class="sig sig-object py" id="demo.tools.Cache.get"><span class="sig-name descname"><span class="pre">get</span></span><span class="sig-paren">(</span><em class="sig-param"><span class="n"><span class="pre">key</span></span></em><span class="optional">[</span>, <em class="sig-param"><span class="n"><span class="pre">default</span></span></em><span class="optional">]</span><span class="sig-paren">)</span></dt>
<dd><p>Return the value for <em>key</em>.</p></dd></dl>
</dd></dl>
<dl class="py data"><dt class="sig sig-object py" id="demo.tools.VERSION">VERSION</dt><dd><p>Not a call.</p></dd></dl>
</section></div></div></div>
<div class="sphinxsidebar" role="navigation">SIDEBARTEXT <a href="a.html">a</a></div></div>
<div class="footer">FOOTERTEXT</div></body></html>"""


def pydoc_page() -> str:
    """A real pydoc HTML page (``pydoc.HTMLDoc``) of a small generated module."""
    mod = types.ModuleType("demo_pydoc", "A demo module for pydoc pages.")
    src = (
        "def greet(name, times=1, *, loud=False):\n    'Greet someone.'\n    return name\n"
        "class Counter:\n    'Counts.'\n    def add(self, n=1):\n        'Add n.'\n        return n\n"
    )
    exec(compile(src, "demo_pydoc.py", "exec"), mod.__dict__)  # noqa: S102 - our own literal source
    for obj in (mod.greet, mod.Counter):
        obj.__module__ = "demo_pydoc"
    doc = pydoc.HTMLDoc()
    sys.modules["demo_pydoc"] = mod  # pydoc documents only functions whose module it can find
    try:
        return doc.page(pydoc.describe(mod), doc.document(mod, "demo_pydoc"))
    finally:
        del sys.modules["demo_pydoc"]


def _page(title: str, body: str, links: list[str] = (), head: str = "") -> bytes:  # type: ignore[assignment]
    anchors = "".join(f'<li><a href="{h}">{h}</a></li>' for h in links)
    html = (
        f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head><body><nav>NAVTEXT</nav>"
        f"<main><h1>{title}</h1><p>{body}</p><ul>{anchors}</ul></main><footer>FOOTERTEXT</footer></body></html>"
    )
    return html.encode()


INDEX_LINKS = [
    "a.html", "b.html", "private/secret.html", "loop1", "big.html", "binary.bin", "binary.html",
    "slow.html", "r429.html", "e500.html", "etag.html", "dup.html", "api.html", "pydoc.html",
    "latin.html", "malformed.html", "missing.html", "deep/1.html", "redirect.html", "offsite",
    "http://example.com/outside.html", "http://10.0.0.1/internal.html", "mailto:x@example.com",
]  # fmt: skip


class Site:
    """The routes of the fault site. ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.r429_served = False
        self.slow_s = 1.5

    def hits(self, path: str) -> int:
        return sum(1 for p, _, _ in self.log if p == path)

    def route(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        html = {"Content-Type": "text/html; charset=utf-8"}
        lm = html | {"Last-Modified": LAST_MODIFIED}
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"
        if path in ("/", "/index.html"):
            return self._conditional(headers, lm, _page("Index", "Welcome to the demo docs.", INDEX_LINKS))
        if path in (
            "/a.html",
            "/b.html",
            "/deep/1.html",
            "/deep/2.html",
            "/deep/3.html",
            "/private/secret.html",
        ):
            nxt = {
                "/deep/1.html": ["2.html"],
                "/deep/2.html": ["3.html"],
                "/a.html": ["b.html", "a.html#frag"],
            }
            return self._conditional(headers, lm, _page(path, f"Body of {path} page.", nxt.get(path, [])))
        if path == "/loop1":
            return 302, {"Location": "/loop2"}, b""
        if path == "/loop2":
            return 302, {"Location": "http://127.0.0.1:{port}/loop1".replace("{port}", headers["_port"])}, b""
        if path == "/redirect.html":
            return 301, {"Location": "b.html"}, b""
        if path == "/offsite":
            return 302, {"Location": "http://example.org/elsewhere"}, b""
        if path == "/big.html":
            return (
                200,
                html | {"_no_length": "1"},
                b"<html><body>" + b"<p>big</p>" * 40_000 + b"</body></html>",
            )
        if path == "/binary.bin":
            return 200, {"Content-Type": "application/octet-stream"}, bytes(range(256)) * 10
        if path == "/binary.html":
            return 200, html, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
        if path == "/slow.html":
            time.sleep(self.slow_s)
            return 200, html, _page("Slow", "Too late.")
        if path == "/r429.html":
            with self.lock:
                first, self.r429_served = not self.r429_served, True
            if first:
                return 429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"slow down"
            return 200, html, _page("After 429", "Patience pays.")
        if path == "/e500.html":
            return 500, {"Content-Type": "text/plain"}, b"boom"
        if path == "/etag.html":
            if headers.get("if-none-match") == '"v1"':
                return 304, {"ETag": '"v1"'}, b""
            return 200, html | {"ETag": '"v1"'}, _page("ETag page", "Validated by entity tag.")
        if path == "/dup.html":
            head = '<link rel="canonical" href="a.html">'
            return self._conditional(headers, lm, _page("Dup of a", "Same as a.", head=head))
        if path == "/api.html":
            return self._conditional(headers, lm, SPHINX_API.encode())
        if path == "/pydoc.html":
            return self._conditional(headers, lm, pydoc_page().encode())
        if path == "/latin.html":
            return (
                200,
                {"Content-Type": "text/html"},
                "<html><body><p>Caf\u00e9 cr\u00e8me</p></body></html>".encode("latin-1"),
            )
        if path == "/malformed.html":
            body = b'<html><body><div><p>Unclosed <b>bold <a href="a.html">a</a><dl class="py function"><dt class="sig" id="m.f">'
            return 200, html, body + b'<em class="sig-param">x</em></dt><dd><p>Broken f.<table><tr><td>cell'
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _conditional(
        self, headers: dict[str, str], hdrs: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if headers.get("if-modified-since") == LAST_MODIFIED:
            return 304, {"Last-Modified": LAST_MODIFIED}, b""
        return 200, hdrs, body


def serve(site: Site | None = None) -> tuple[ThreadingHTTPServer, Site, str]:
    """Start the site on 127.0.0.1 (free port) in a daemon thread; return (server, site, base URL)."""
    site = site or Site()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            with site.lock:
                site.log.append((path, time.monotonic(), headers))
            headers["_port"] = str(self.server.server_address[1])
            status, hdrs, body = site.route(path, headers)
            no_length = hdrs.pop("_no_length", None)
            try:
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                if no_length:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, site, f"http://127.0.0.1:{server.server_address[1]}/"


def fast(**over: object) -> dict[str, object]:
    """Config keys for tests: politeness on but tiny, timeouts short, loopback allow-listed."""
    cfg: dict[str, object] = {
        "allow_addresses": ("127.0.0.1",),
        "min_delay_s": 0.0,
        "max_concurrency": 8,
        "per_host_concurrency": 4,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 0.5,
        "page_timeout_s": 2.0,
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "max_bytes": 100_000,
        "max_depth": 2,
    }
    cfg.update(over)
    return cfg
