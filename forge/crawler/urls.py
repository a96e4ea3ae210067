"""URL normalization, so that one page has one key in the frontier.

``http://Docs.Example.org:80/a/./b/../c?b=2&a=1#frag`` and ``http://docs.example.org/a/c?a=1&b=2``
are the same page: the host is lowercased (IDNA-encoded), the default port dropped, the path's dot
segments resolved, the fragment dropped and the query parameters sorted. Percent-encoding is made
canonical (unreserved characters decoded, the rest upper-case hex) by a quote/unquote round trip.
"""

from __future__ import annotations

import posixpath
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/:@!$&'()*+,;=~%"


class BadURL(ValueError):
    """A URL that cannot be crawled (unparseable, no host, or a scheme other than http/https)."""


def _normalize_path(path: str) -> str:
    if not path:
        return "/"
    trailing = path.endswith("/")
    resolved = posixpath.normpath(path)
    if resolved.startswith("//"):  # normpath keeps a leading '//' (POSIX); URLs do not need it
        resolved = "/" + resolved.lstrip("/")
    if resolved == ".":
        resolved = "/"
    if trailing and not resolved.endswith("/"):
        resolved += "/"
    return quote(unquote(resolved), safe=_PATH_SAFE.replace("%", ""))


def normalize_url(url: str, base: str | None = None) -> str:
    """Absolute, canonical form of ``url`` (resolved against ``base`` if given).

    Raises ``BadURL`` for anything but http/https with a host.
    """
    url = url.strip()
    if base is not None:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadURL(f"unparseable URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadURL(f"scheme {scheme or '(none)'!r} is not http/https: {url[:200]}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadURL(f"no host in {url[:200]}")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        if ":" not in host:  # an IPv6 literal is not IDNA-encodable and needs no encoding
            raise BadURL(f"bad host name {host!r}") from exc
        host = host.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    query = ""
    if parts.query:
        pairs = sorted(parse_qsl(parts.query, keep_blank_values=True))
        query = urlencode(pairs, quote_via=quote)
    return urlunsplit((scheme, netloc, _normalize_path(parts.path), query, ""))


def host_key(url: str) -> str:
    """``host[:port]`` of a normalized URL: the unit of rate limiting and robots.txt."""
    return urlsplit(url).netloc


def robots_url(url: str) -> str:
    """The robots.txt that governs ``url``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
