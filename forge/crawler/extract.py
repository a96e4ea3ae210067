"""Main text, links and page metadata out of HTML, in one pass of the standard library's parser.

Neither ``trafilatura`` nor ``selectolax`` is installed in this environment, so a small readability
heuristic on ``html.parser`` does the job: if the page has a main-content container (``<main>``,
``<article>``, ``role="main"``, Sphinx's ``div.body``, ``#content``), only text inside it is kept;
otherwise the body's text minus navigation, headers, footers, sidebars, scripts and forms. Block
elements become line breaks so paragraphs survive. The same pass feeds an optional second
handler (``forge.crawler.apidocs``) so each page is parsed once.

``extract_page`` is a pure function of (html, url) so it can run in a process pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from forge.crawler.htmltok import tokenize
from forge.crawler.urls import BadURL, normalize_url

_SKIP = {"script", "style", "noscript", "template", "svg", "form", "button", "select", "textarea", "iframe"}
_BOILER_TAGS = {"nav", "header", "footer", "aside"}
_BOILER_CLASS = re.compile(
    r"\b(sphinxsidebar|sidebar|related|footer|header|navbar|nav|menu|breadcrumbs?|toc)\b"
)
_MAIN_CLASS = re.compile(r"\b(body|content|main-content|document)\b")
_BLOCK = {"p", "div", "section", "br", "li", "dt", "dd", "tr", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "table",
          "blockquote", "article", "main", "ul", "ol", "dl", "hr"}  # fmt: skip
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_WS = re.compile(r"[ \t\r\f\v]+")
_NL = re.compile(r"\s*\n\s*")


@dataclass
class PageExtract:
    """What the crawler keeps of a page: its text, title, outgoing links and directives."""

    text: str = ""
    title: str = ""
    links: list[str] = field(default_factory=list)
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False
    signatures: list[dict[str, Any]] = field(default_factory=list)


class _PageHandler:
    """Parser events -> PageExtract (driven by ``htmltok.tokenize`` or by ``html.parser``)."""

    def __init__(self, url: str, sink: Any = None) -> None:
        self.base = url
        self.sink = sink
        self.out = PageExtract()
        self._stack: list[tuple[str, int]] = []  # (tag, flags): 1 = skip, 2 = boilerplate, 4 = main
        self._skip = 0
        self._boiler = 0
        self._main = 0
        self._found_main = False
        self._in_title = False
        self._all: list[str] = []
        self._main_parts: list[str] = []
        self._links: dict[str, None] = {}

    # the open-element stack is kept only for tags that change what text counts
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.sink is not None:
            self.sink.start(tag, attrs)
        if (
            not attrs
            and tag not in _BLOCK
            and tag not in _SKIP
            and tag not in _BOILER_TAGS
            and tag != "title"
        ):
            return
        a = dict(attrs)
        if tag == "a":
            href = a.get("href")
            if href and not (self.out.nofollow or "nofollow" in (a.get("rel") or "")):
                self._add_link(href)
        elif tag == "link" and "canonical" in (a.get("rel") or "").lower().split() and a.get("href"):
            self.out.canonical = self._resolve(a["href"] or "")
        elif tag == "base" and a.get("href"):
            self.base = self._resolve(a["href"] or "") or self.base
        elif tag == "meta" and (a.get("name") or "").lower() == "robots":
            content = (a.get("content") or "").lower()
            self.out.noindex = self.out.noindex or "noindex" in content or "none" in content
            self.out.nofollow = self.out.nofollow or "nofollow" in content or "none" in content
        elif tag == "title":
            self._in_title = True
        if tag in _VOID:
            if tag in _BLOCK:
                self._emit("\n")
            return
        cls = a.get("class") or ""
        flags = 0
        if tag in _SKIP:
            flags = 1
        elif tag in _BOILER_TAGS or a.get("role") == "navigation" or _BOILER_CLASS.search(cls):
            flags = 2
        elif (
            tag in ("main", "article")
            or a.get("role") == "main"
            or (tag == "div" and (_MAIN_CLASS.search(cls) or a.get("id") in ("content", "main")))
        ):
            flags = 4
        if flags or tag in _BLOCK:
            self._stack.append((tag, flags))
            self._skip += flags == 1
            self._boiler += flags == 2
            if flags == 4 and not self._main and not self._found_main:
                self._main_parts = []
            self._main += flags == 4
            if tag in _BLOCK:
                self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.sink is not None:
            self.sink.end(tag)
        if tag == "title":
            self._in_title = False
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for _t, flags in self._stack[i:]:
                    self._skip -= flags == 1
                    self._boiler -= flags == 2
                    if flags == 4:
                        self._main -= 1
                        self._found_main = self._found_main or (self._main == 0 and bool(self._main_parts))
                del self._stack[i:]
                if tag in _BLOCK:
                    self._emit("\n")
                return

    def handle_data(self, data: str) -> None:
        if self.sink is not None:
            self.sink.data(data)
        if self._in_title:
            self.out.title += data
            return
        if self._skip:
            return
        self._emit(data)

    def _emit(self, data: str) -> None:
        if self._skip or self._boiler:
            return
        self._all.append(data)
        if self._main and not self._found_main:
            self._main_parts.append(data)

    def _resolve(self, href: str) -> str | None:
        try:
            return normalize_url(href, base=self.base)
        except (BadURL, ValueError):
            return None

    def _add_link(self, href: str) -> None:
        href = href.strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
            return
        url = self._resolve(href)
        if url is not None:
            self._links[url] = None

    def result(self) -> PageExtract:
        parts = self._main_parts if self._found_main or self._main else self._all
        text = _NL.sub("\n", _WS.sub(" ", "".join(parts))).strip()
        self.out.text = text
        self.out.title = _WS.sub(" ", self.out.title).strip()
        self.out.links = [] if self.out.nofollow else list(self._links)
        if self.sink is not None:
            self.out.signatures = self.sink.result()
        return self.out


class _StdlibDriver(HTMLParser):
    def __init__(self, handler: _PageHandler) -> None:
        super().__init__(convert_charrefs=True)
        self.handle_starttag = handler.handle_starttag  # type: ignore[method-assign]
        self.handle_endtag = handler.handle_endtag  # type: ignore[method-assign]
        self.handle_data = handler.handle_data  # type: ignore[method-assign]


def extract_page(html: str, url: str, with_apis: bool = True, parser: str = "fast") -> PageExtract:
    """Text, title, links (normalized, de-duplicated, in page order), canonical URL, robots meta
    directives and, if ``with_apis``, the Sphinx/pydoc API signatures of one HTML page.

    ``parser``: ``"fast"`` (``forge.crawler.htmltok``, the default) or ``"stdlib"`` (``html.parser``);
    both are lenient, so malformed HTML never raises and unclosed elements end with the document.
    """
    sink = None
    if with_apis:
        from forge.crawler.apidocs import ApiDocCollector

        sink = ApiDocCollector()
    handler = _PageHandler(url, sink)
    if parser == "fast":
        tokenize(html, handler)
    elif parser == "stdlib":
        driver = _StdlibDriver(handler)
        driver.feed(html)
        driver.close()
    else:
        raise ValueError(f"unknown parser {parser!r} (fast | stdlib)")
    return handler.result()
