"""One shape for the library steps that assets call, and their code fingerprints.

A :class:`Stage` is a name, a typed configuration (a pydantic model: unknown keys are errors) and a
``run``. Its code fingerprint is the digest of every project source file its module imports,
directly or transitively — found by reading the imports (``ast``), never from a hand-written list,
so a change anywhere in what a stage runs makes its output stale, and a change elsewhere does not.

The closure is static: ``import a.b``, ``from a import b`` (``b`` a submodule or a name in ``a``),
relative imports and imports inside functions all count; a package's ``__init__.py`` counts
whenever one of its modules is imported (Python runs it). Only the project's own packages are
followed; third-party code enters a fingerprint through the versions an asset folds in.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

#: Top-level packages whose sources are followed into a fingerprint.
PROJECT_PACKAGES = ("contracts", "forge", "training", "evaluation")
REPO_ROOT = Path(__file__).resolve().parents[2]


class StageConfig(BaseModel):
    """Base of every stage's configuration: strict (a misspelled key is an error), immutable.

    Where one profile section feeds a stage, the stage's configuration class is that section's model
    (the profile composes it), so its field defaults are the only ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Fields that change how fast a stage runs, never what it writes (e.g. ``workers``): left out
    #: of the fingerprint, so a rerun with more processes is not a rebuild.
    speed_only: ClassVar[frozenset[str]] = frozenset()

    def fingerprint_fields(self) -> dict[str, Any]:
        """The settings that decide the output, as plain data (for the stage's fingerprint)."""
        return self.model_dump(mode="json", exclude=set(self.speed_only))


C = TypeVar("C", bound=StageConfig)


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_project(module: str) -> bool:
    return module.split(".", 1)[0] in PROJECT_PACKAGES


def direct_imports(module: str, root: Path = REPO_ROOT) -> set[str]:
    """The project modules ``module``'s own source imports (not transitively), with the packages
    whose ``__init__`` those imports run."""
    path = _module_file(module, root)
    if path is None:
        raise ModuleNotFoundError(f"{module} is not a module under {root}")
    return _imports(path, module, root)


def _imports(path: Path, module: str, root: Path) -> set[str]:
    """The project modules one source file imports (each candidate checked to exist under root)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # submodules
    out: set[str] = set()
    for name in found:
        if not _is_project(name):
            continue
        parts = name.split(".")
        # a package's __init__ runs for every module imported from it
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if _module_file(prefix, root) is not None:
                out.add(prefix)
    return out


def import_closure(*modules: str, root: Path = REPO_ROOT) -> list[str]:
    """Every project module that ``modules`` import, transitively (themselves included), sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            raise ModuleNotFoundError(f"{name} is not a module under {root}")
        seen.add(name)
        for parent in _parents(name):
            if parent not in seen and _module_file(parent, root) is not None:
                todo.append(parent)
        todo.extend(_imports(path, name, root) - seen)
    return sorted(seen)


def _parents(module: str) -> Iterable[str]:
    parts = module.split(".")
    return (".".join(parts[:i]) for i in range(1, len(parts)))


@lru_cache(maxsize=256)
def _cached_fingerprint(modules: tuple[str, ...], root: Path) -> str:
    h = hashlib.sha256()
    for name in import_closure(*modules, root=root):
        path = _module_file(name, root)
        assert path is not None
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_fingerprint(*modules: str | ModuleType, root: Path | None = None) -> str:
    """Digest of the sources in the import closure of ``modules`` (names or module objects).

    Cached per process for the repository's own tree (the code does not change under a running
    process); pass ``root`` to fingerprint another copy of the tree (tests do).
    """
    names = tuple(sorted(m.__name__ if isinstance(m, ModuleType) else m for m in modules))
    if root is None:
        return _cached_fingerprint(names, REPO_ROOT)
    return _cached_fingerprint.__wrapped__(names, Path(root))


@dataclass(frozen=True)
class Stage(Generic[C]):
    """A library step an asset runs: ``run(config, *, out_dir, **inputs)`` writes ``out_dir`` and
    returns the metadata to report.

    ``module`` is the module whose import closure is the stage's code (by default the one that
    defines ``run``); ``code_fingerprint()`` digests it.
    """

    name: str
    config: type[C]
    run: Callable[..., dict[str, Any]]
    module: str = field(default="")

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", self.run.__module__)

    def code_fingerprint(self) -> str:
        return code_fingerprint(self.module)

    def parse(self, raw: dict[str, Any] | None) -> C:
        """The typed configuration from a profile section (errors name the unknown key)."""
        return self.config.model_validate(raw or {})
