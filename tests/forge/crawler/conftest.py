"""Fixtures: the fault-injecting site on 127.0.0.1 and a fast, test-sized crawl config."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "crawler_faultserver", Path(__file__).with_name("faultserver.py")
)
faultserver = importlib.util.module_from_spec(_spec)
sys.modules["crawler_faultserver"] = faultserver
_spec.loader.exec_module(faultserver)


@pytest.fixture
def site() -> Iterator[tuple[object, str]]:
    server, s, base = faultserver.serve()
    try:
        yield s, base
    finally:
        server.shutdown()
        server.server_close()
