"""Python module introspection: in a subprocess, with docstring parsing and counted skips."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Literal, Optional, Union

import pytest

from forge.core.stats import StepStats
from forge.sources.python.introspect import introspect_modules
from forge.sources.python.signatures import annotation_schema

TOOLMOD = '''
"""A toy module for tests."""
import os

__all__ = ["add", "Greeter", "sep_style", "BadThing"]

def add(a: int, b: float = 1.5, *rest: int, label: str | None = None, **extra) -> float:
    """Add two numbers.

    Longer text.

    Args:
        a: the first number.
        b: the second number.
        label: an optional label.

    Returns:
        The sum.
    """
    return a + b

def sep_style(path, mode="r"):
    """Open something.

    :param path: where it is.
    :param mode: how to open it.
    """

def hidden():
    """Not in __all__."""

class Greeter:
    """Greets people.

    Parameters
    ----------
    name : str
        Who to greet.
    """

    def __init__(self, name: str, times: int = 1):
        self.name = name

    def greet(self, loud: bool = False) -> str:
        """Say hello."""
        return "hi"

    def _private(self):
        pass

class BadThing(Exception):
    pass
'''


@pytest.fixture()
def toy_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "toymod.py").write_text(textwrap.dedent(TOOLMOD))
    (tmp_path / "sleepy.py").write_text("import time\ntime.sleep(30)\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def test_introspect_rows_schema_and_docstrings(toy_path: Path) -> None:
    stats = StepStats("py")
    rows = {r["function_name"]: r for r in introspect_modules(["toymod"], stats, timeout_s=30)}
    assert set(rows) == {"toymod.add", "toymod.Greeter", "toymod.Greeter.greet", "toymod.sep_style"}
    assert stats.n_kept == 4 and stats.dropped == {"exception_class": 1}
    add = rows["toymod.add"]
    params = json.loads(add["parameters"])
    assert params["required"] == ["a"]
    props = params["properties"]
    assert props["a"] == {"type": "integer", "description": "the first number."}
    assert props["b"]["type"] == "number" and props["b"]["default"] == 1.5
    assert props["rest"]["type"] == "array" and props["rest"]["items"] == {"type": "integer"}
    assert props["extra"]["type"] == "object"
    assert props["label"]["type"] == "string" and props["label"]["nullable"] is True
    assert add["summary"] == "Add two numbers." and "Longer text." in add["description"]
    assert json.loads(add["responses"]) == {"return": {"type": "number", "description": "The sum."}}
    assert add["method"] == "function" and add["path"] == "toymod.add" and add["provider"] == "toymod"
    assert add["source_uri"].endswith("toymod.py")
    sphinx = json.loads(rows["toymod.sep_style"]["parameters"])["properties"]
    assert sphinx["path"]["description"] == "where it is." and sphinx["mode"]["default"] == "r"
    cls = rows["toymod.Greeter"]
    cls_params = json.loads(cls["parameters"])
    assert cls["method"] == "class" and cls_params["required"] == ["name"]
    assert cls_params["properties"]["name"]["description"] == "Who to greet."
    greet = json.loads(rows["toymod.Greeter.greet"]["parameters"])
    assert "self" not in greet["properties"] and greet["properties"]["loud"]["default"] is False


def test_import_failure_and_timeout_are_counted_skips(toy_path: Path) -> None:
    stats = StepStats("py")
    rows = introspect_modules(["sleepy", "broken", "no_such_module_xyz", "toymod"], stats, timeout_s=3)
    assert len(rows) == 4  # the good module still comes through
    assert stats.dropped["import_timeout"] == 1
    assert stats.dropped["import_error"] == 2
    assert "boom at import" in " ".join(stats.examples["import_error"])


def test_stdlib_module_has_license_and_stable_ids() -> None:
    a = introspect_modules(["textwrap"], StepStats("a"), timeout_s=30)
    b = introspect_modules(["textwrap"], StepStats("b"), timeout_s=30)
    assert [r["api_id"] for r in a] == [r["api_id"] for r in b]
    dedent = next(r for r in a if r["function_name"] == "textwrap.dedent")
    assert dedent["license"] == "PSF-2.0" and json.loads(dedent["parameters"])["required"] == ["text"]


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (int, {"type": "integer"}),
        (bool, {"type": "boolean"}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Optional[int], {"type": "integer", "nullable": True}),  # noqa: UP045 - typing form on purpose
        (Union[int, str, None], {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),  # noqa: UP007
        (Literal["a", "b"], {"enum": ["a", "b"]}),
        (Path, {"description": "type: pathlib.Path"}),
        ("int", {"type": "integer"}),
    ],
)
def test_annotation_schema(tp: object, expected: dict) -> None:
    assert annotation_schema(tp) == expected


def test_sandbox_refuses_network_and_keeps_writes_out_of_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "phones_home.py").write_text(
        "import socket\nsocket.create_connection(('127.0.0.1', 9))\ndef f(x: int) -> int:\n    return x\n"
    )
    (mods / "litters.py").write_text(
        "open('litter.txt', 'w').write('x')\ndef g(y: str) -> str:\n    return y\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(mods))
    monkeypatch.chdir(tmp_path)
    stats = StepStats("py")
    rows = introspect_modules(["phones_home", "litters"], stats, timeout_s=30)
    assert [r["function_name"] for r in rows] == ["litters.g"]
    assert stats.dropped == {"import_error": 1}
    assert "network access is disabled" in stats.examples["import_error"][0]
    assert not (tmp_path / "litter.txt").exists() and not (mods / "litter.txt").exists()


def test_parallel_introspection_keeps_module_order(toy_path: Path) -> None:
    serial, parallel = StepStats("a"), StepStats("b")
    done: list[str] = []
    a = introspect_modules(["textwrap", "toymod", "broken", "fnmatch"], serial, timeout_s=30)
    b = introspect_modules(
        ["textwrap", "toymod", "broken", "fnmatch"],
        parallel,
        timeout_s=30,
        workers=3,
        progress=lambda m, n: done.append(m),
    )
    strip = [{k: v for k, v in r.items() if k != "fetched_at"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "fetched_at"} for r in b]
    assert done == ["textwrap", "toymod", "broken", "fnmatch"]
    assert serial.dropped == parallel.dropped and parallel.dropped["import_error"] == 1


def test_expand_modules_stdlib_and_package_star() -> None:
    from forge.sources.python.introspect import expand_modules

    names = expand_modules(["json", "stdlib", "email.*"])
    assert names[0] == "json" and len(names) == len(set(names))
    assert {"os", "collections.abc", "email.mime.text", "xml.etree.ElementTree"} <= set(names)
    assert not {n for n in names if n.split(".")[0] in {"tkinter", "test", "idlelib"} or "._" in n}
    assert len(names) > 300
    assert expand_modules(["email.*"])[:2] == ["email", "email.base64mime"]
