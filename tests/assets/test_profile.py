from pathlib import Path

import pytest

from assets.profile import PROFILES_DIR, Paths, deep_merge, load_profile


def test_every_profile_loads_with_the_sections_assets_read():
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert names == ["cluster", "default", "gpu", "micro"]
    for name in names:
        profile = load_profile(name)
        assert profile["name"] == name
        for section in (
            "sources",
            "synthesis",
            "warehouse",
            "tokenizer",
            "mixture",
            "model",
            "training",
            "evaluation",
        ):
            assert section in profile, f"{name} lacks {section}"
        assert set(profile["mixture"]) == {"stage1", "stage2"}


def test_extends_deep_merges_over_the_parent():
    gpu, default = load_profile("gpu"), load_profile("default")
    assert gpu["model"]["hidden_size"] == 1024
    # not overridden in gpu.yaml: inherited from default
    assert gpu["mixture"]["stage1"]["ratios"] == default["mixture"]["stage1"]["ratios"]
    assert gpu["sources"]["openapi"]["providers"] is None
    assert load_profile("cluster")["model"]["hidden_size"] == 1024


def test_default_profile_holds_out_providers_it_also_ingests():
    p = load_profile("default")
    heldout = set(p["sources"]["heldout_providers"])
    assert heldout and heldout <= set(p["sources"]["openapi"]["providers"])


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="known profiles"):
        load_profile("nope")


def test_profile_by_path(tmp_path: Path):
    f = tmp_path / "mine.yaml"
    f.write_text("extends: micro\nname: mine\nsynthesis: {per_api: 7}\n")
    p = load_profile(str(f))
    assert p["name"] == "mine" and p["synthesis"]["per_api"] == 7 and p["synthesis"]["seed"] == 0


def test_deep_merge_does_not_mutate_inputs():
    a = {"x": {"y": 1, "z": 2}}
    b = {"x": {"y": 3}}
    assert deep_merge(a, b) == {"x": {"y": 3, "z": 2}}
    assert a == {"x": {"y": 1, "z": 2}}


def test_paths_layout(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    paths = Paths(home=tmp_path, profile="micro")
    assert paths.raw("api_operations") == tmp_path / "micro" / "data" / "raw" / "api_operations"
    assert paths.cache == tmp_path / "cache"
    assert paths.tracking_uri == f"sqlite:///{tmp_path / 'micro' / 'mlflow' / 'mlflow.db'}"
