"""Code fingerprints follow the real imports: for every stage, and for every library entry module an
asset fingerprints, an edit deep in its import closure changes the fingerprint and an edit outside
it does not. Stages and entry modules are discovered from the sources, never listed here."""

from __future__ import annotations

import ast
import importlib
import shutil
from collections import deque
from pathlib import Path

import pytest

from forge.core.stage import (
    PROJECT_PACKAGES,
    REPO_ROOT,
    Stage,
    StageConfig,
    code_fingerprint,
    direct_imports,
    import_closure,
)


def _module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _defines_stage(path: Path) -> bool:
    """A module-level ``NAME = Stage(...)`` in the file."""
    tree = ast.parse(path.read_bytes())
    return any(
        isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "Stage"
        for node in tree.body
    )


def discover_stages() -> list[Stage]:
    """Every ``Stage`` object defined at module level anywhere under ``forge/``."""
    stages: list[Stage] = []
    for path in sorted((REPO_ROOT / "forge").rglob("*.py")):
        if _defines_stage(path):
            module = importlib.import_module(_module_name(path))
            stages += [
                v for v in vars(module).values() if isinstance(v, Stage) and v.module == module.__name__
            ]
    return stages


def asset_entry_modules() -> list[tuple[str, ...]]:
    """The module names each ``code_fingerprint(...)`` call in ``assets/`` names (string literals,
    or module-level string constants of the same file)."""
    found: set[tuple[str, ...]] = set()
    for path in sorted((REPO_ROOT / "assets").glob("*.py")):
        tree = ast.parse(path.read_bytes())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "code_fingerprint":
                names = []
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names.append(arg.value)
                    elif isinstance(arg, ast.Name) and arg.id in constants:
                        names.append(constants[arg.id])
                if names and len(names) == len(node.args):
                    found.add(tuple(names))
    return sorted(found)


STAGES = discover_stages()
ENTRIES = asset_entry_modules()
TARGETS = [pytest.param((s.module,), id=f"stage:{s.name}:{s.module}") for s in STAGES] + [
    pytest.param(names, id="asset:" + "+".join(names)) for names in ENTRIES
]


def test_discovery_finds_the_stages_and_the_asset_entry_modules():
    names = {s.name for s in STAGES}
    assert {
        "openapi_operations",
        "python_module_operations",
        "hub_doc_operations",
        "dataset_trajectories",
        "code_documents",
        "text_documents",
        "bfcl_items",
        "web_docs_crawl",
        "trajectories",
        "agent_documents",
        "tokenizer",
        "cpt_shards",
        "sft_dataset",
        "unseen_api_benchmark",
        "heldout_texts",
    } <= names
    assert len(names) == len(STAGES), "two stages share a name"
    assert ("evaluation.pipeline",) in ENTRIES
    for stage in STAGES:
        assert issubclass(stage.config, StageConfig), stage.name


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the project's packages, edited by the tests below."""
    root = tmp_path_factory.mktemp("tree")
    for package in PROJECT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _file(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")


def deepest(entries: tuple[str, ...], root: Path) -> str:
    """The module of the closure farthest (in import hops) from the entry modules; ties go to the
    last in sorted order."""
    depth = dict.fromkeys(entries, 0)
    todo = deque(entries)
    while todo:
        name = todo.popleft()
        for dep in sorted(direct_imports(name, root)):
            if dep not in depth:
                depth[dep] = depth[name] + 1
                todo.append(dep)
    candidates = [m for m in depth if m not in entries]
    return max(sorted(candidates), key=lambda m: depth[m])


def _edited(root: Path, module: str, modules: tuple[str, ...]) -> str:
    """The fingerprint of ``modules`` with a comment appended to ``module``'s source."""
    path = _file(root, module)
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit the fingerprint must see\n")
        return code_fingerprint(*modules, root=root)
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("modules", TARGETS)
def test_an_edit_deep_in_the_closure_changes_the_fingerprint(tree: Path, modules: tuple[str, ...]):
    before = code_fingerprint(*modules, root=tree)
    target = deepest(modules, tree)
    assert target in import_closure(*modules, root=tree)
    assert _edited(tree, target, modules) != before, target
    assert code_fingerprint(*modules, root=tree) == before


@pytest.mark.parametrize("modules", TARGETS)
def test_an_edit_outside_the_closure_leaves_it(tree: Path, modules: tuple[str, ...]):
    closure = set(import_closure(*modules, root=tree))
    everything = sorted(
        _module_name(p, tree) for package in PROJECT_PACKAGES for p in (tree / package).rglob("*.py")
    )
    outside = [m for m in everything if m not in closure]
    assert outside, "the closure holds the whole project"
    before = code_fingerprint(*modules, root=tree)
    for module in (outside[0], outside[-1]):
        assert _edited(tree, module, modules) == before, module


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_closure_follows_submodule_relative_and_function_level_imports(tmp_path: Path):
    _write(
        tmp_path,
        {
            "forge/__init__.py": "",
            "forge/a.py": "from forge import b\nfrom forge.b import helper\n",
            "forge/b.py": "from .sub import c\n\ndef helper():\n    return c\n",
            "forge/sub/__init__.py": '"""a package."""\n',
            "forge/sub/c.py": "def late():\n    import forge.d\n    return forge.d\n",
            "forge/d.py": "from contracts.x import Y\n",
            "forge/e.py": "import forge.a\n",
            "contracts/__init__.py": "",
            "contracts/x.py": "import json\nY = 1\n",
            "contracts/unused.py": "",
        },
    )
    closure = import_closure("forge.a", root=tmp_path)
    assert closure == [
        "contracts",
        "contracts.x",
        "forge",
        "forge.a",
        "forge.b",
        "forge.d",
        "forge.sub",
        "forge.sub.c",
    ]
    before = code_fingerprint("forge.a", root=tmp_path)
    assert _edited(tmp_path, "contracts.unused", ("forge.a",)) == before
    assert _edited(tmp_path, "forge.e", ("forge.a",)) == before
    for module in ("forge.d", "contracts.x", "forge.sub", "forge.sub.c"):
        assert _edited(tmp_path, module, ("forge.a",)) != before, module


def test_a_relative_import_resolves_against_the_package(tmp_path: Path):
    _write(
        tmp_path,
        {
            "evaluation/__init__.py": "",
            "evaluation/bench/__init__.py": "",
            "evaluation/bench/run.py": "from . import score\nfrom ..shared import util\n",
            "evaluation/bench/score.py": "",
            "evaluation/shared/__init__.py": "from .util import thing\n",
            "evaluation/shared/util.py": "thing = 1\n",
        },
    )
    assert import_closure("evaluation.bench.run", root=tmp_path) == [
        "evaluation",
        "evaluation.bench",
        "evaluation.bench.run",
        "evaluation.bench.score",
        "evaluation.shared",
        "evaluation.shared.util",
    ]


def test_speed_only_settings_stay_out_of_the_fingerprint_fields():
    from forge.sources.openapi.stage import OpenApiConfig

    fields = OpenApiConfig(workers=8, max_specs=3).fingerprint_fields()
    assert "workers" not in fields and fields["max_specs"] == 3


@pytest.mark.parametrize(
    ("entry", "needed"),
    [
        # the modules hand-written lists used to leave out
        ("forge.corpus.tokenizer", ["contracts.chat"]),
        ("forge.sources.webdocs", ["forge.crawler.crawl", "forge.crawler.fetcher", "forge.crawler.extract"]),
        ("forge.sources.datasets.stage", ["forge.sources.datasets.xlam", "forge.sources.datasets.toolbench"]),
        ("forge.synth.stage", ["forge.text.render", "forge.synth.generators", "forge.synth.executor"]),
        (
            "evaluation.pipeline",
            ["evaluation.humaneval", "evaluation.perplexity", "evaluation.generation.engine"],
        ),
    ],
)
def test_closures_hold_what_the_code_runs(entry: str, needed: list[str]):
    closure = import_closure(entry)
    assert set(needed) <= set(closure), set(needed) - set(closure)
