"""robots.txt: parse once per host, answer "may we fetch this URL?" and "how slowly?".

Uses ``protego`` (Scrapy's maintained parser: wildcards, ``$``, longest-match precedence) when it
is installed, else the standard library's ``urllib.robotparser``. What happens when robots.txt
cannot be read follows RFC 9309: a 4xx answer means no rules (allow all), a 5xx answer or an
unreachable server means "assume complete disallow" until a later crawl reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.robotparser import RobotFileParser

try:  # optional, better parser
    from protego import Protego  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    Protego = None


@dataclass
class RobotsRules:
    """The rules of one host for one user agent. ``allow_all``/``deny_all`` short-circuit parsing."""

    parser: Any = None
    allow_all: bool = False
    deny_all: bool = False
    status: str = "ok"  # ok | missing (4xx) | unavailable (5xx, network)

    @classmethod
    def parse(cls, text: str) -> RobotsRules:
        if Protego is not None:
            return cls(parser=Protego.parse(text))
        parser = RobotFileParser()
        parser.parse(text.splitlines())
        return cls(parser=parser)

    @classmethod
    def from_status(cls, status: int | None) -> RobotsRules:
        """Rules when robots.txt could not be read: HTTP ``status`` (None = network failure)."""
        if status is not None and 400 <= status < 500:
            return cls(allow_all=True, status="missing")
        return cls(deny_all=True, status="unavailable")

    def can_fetch(self, url: str, agent: str) -> bool:
        if self.allow_all:
            return True
        if self.deny_all:
            return False
        if isinstance(self.parser, RobotFileParser):  # note the argument order differs
            return bool(self.parser.can_fetch(agent, url))
        return bool(self.parser.can_fetch(url, agent))

    def crawl_delay(self, agent: str) -> float | None:
        """Crawl-delay in seconds for ``agent`` (None when not set)."""
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(agent)
        return float(delay) if delay is not None else None
