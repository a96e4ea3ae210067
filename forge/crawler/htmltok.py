"""A lenient, fast HTML tokenizer with ``html.parser``'s handler interface.

Why: parsing is the crawler's CPU cost. The standard library's ``HTMLParser`` spends most of
its time in per-tag Python bookkeeping (line/offset tracking, one regex call per attribute); on
the Python docs that is ~25 ms per page before any extraction, which alone caps a 2-core crawl
below Scrapy's rate. This tokenizer finds tags with one compiled regex each and hands the same
events to the same handler (``handle_starttag(tag, attrs)``, ``handle_endtag(tag)``,
``handle_data(text)``, entities decoded), so ``forge.crawler.extract`` can use either; a faster
library parser (``selectolax``) would be the next step if it is ever added to the project.

Leniency matches what extraction needs: comments, doctypes and processing instructions are
dropped, ``<script>``/``<style>`` bodies are raw text up to their end tag, a ``<`` that starts
no tag is text, a tag that never closes (an unpaired quote) is dropped up to the next ``>``,
unterminated constructs end at the end of the document. It builds no tree; time is linear in the
page, whatever its quotes.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

# Possessive quantifiers: a failed match never backtracks through a huge attribute (no regex stack).
_TAG = re.compile(r"""(/?)([A-Za-z][A-Za-z0-9:_.-]*+)((?:[^>"']++|"[^"]*+"|'[^']*+')*+)>""")
_TAG_NAME = re.compile(r"/?[A-Za-z]")
_SPECIAL = re.compile(r"!--.*?(?:--!?>|\Z)|![^>]*(?:>|\Z)|\?[^>]*(?:>|\Z)", re.S)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_RAW_END = {t: re.compile(rf"</{t}\s*>", re.I) for t in ("script", "style")}


def _attrs(text: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for m in _ATTR.finditer(text):
        name, dq, sq, bare = m.groups()
        value = dq if dq is not None else sq if sq is not None else bare  # None: a bare attribute
        out.append((name.lower(), unescape(value) if value and "&" in value else value))
    return out


def tokenize(html: str, handler: Any) -> None:
    """Feed ``html`` to ``handler``'s ``handle_starttag`` / ``handle_endtag`` / ``handle_data``."""
    start, end, data = handler.handle_starttag, handler.handle_endtag, handler.handle_data
    pos, n = 0, len(html)
    find, tag_match, special_match, name_match = html.find, _TAG.match, _SPECIAL.match, _TAG_NAME.match
    while pos < n:
        i = find("<", pos)
        if i < 0:
            text = html[pos:]
            data(unescape(text) if "&" in text else text)
            return
        if i > pos:
            text = html[pos:i]
            data(unescape(text) if "&" in text else text)
        m = tag_match(html, i + 1)
        if m is None:
            s = special_match(html, i + 1)
            if s is not None:
                pos = s.end()
            elif name_match(html, i + 1):
                # A tag that never ends: its quote has no partner, so the match ran to the end of
                # the document. Drop it up to the next ">" (or the end) rather than retrying from
                # every later "<", which made hostile pages quadratic (minutes for 1 MB).
                close = find(">", i + 1)
                if close < 0:
                    return
                pos = close + 1
            else:
                data("<")
                pos = i + 1
            continue
        pos = m.end()
        name = m.group(2).lower()
        if m.group(1):
            end(name)
            continue
        rest = m.group(3)
        start(name, _attrs(rest) if rest.strip(" \t\n\r/") else [])
        if rest.endswith("/") and name not in _RAW_END:
            continue
        raw = _RAW_END.get(name)
        if raw is not None:
            close = raw.search(html, pos)
            stop = close.start() if close else n
            if stop > pos:
                data(html[pos:stop])
            if close is None:
                return
            end(name)
            pos = close.end()
