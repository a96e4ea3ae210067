from pathlib import Path

import pytest

from assets.profile import (
    PROFILES_DIR,
    Paths,
    Profile,
    ProfileError,
    SourcesSection,
    deep_merge,
    load_profile,
    load_settings,
)


def test_every_profile_loads_with_the_sections_assets_read():
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert names == ["cluster", "cluster_micro", "default", "gpu", "micro", "research_gpu"]
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
    # gpu.yaml overrides one ratio (retrieved: 0.25); the others are inherited from default, key by key
    g, d = gpu["mixture"]["stage1"]["ratios"], default["mixture"]["stage1"]["ratios"]
    assert g["retrieved"] == 0.25 != d["retrieved"]
    assert {k: v for k, v in g.items() if k != "retrieved"} == {
        k: v for k, v in d.items() if k != "retrieved"
    }
    assert gpu["mixture"]["stage1"]["token_budget"] == 2_000_000_000  # the override beside them
    assert gpu["sources"]["openapi"]["providers"] is None
    assert load_profile("cluster")["model"]["hidden_size"] == 1024


def test_profiles_that_run_multi_turn_give_the_model_room_for_its_prompts():
    """BFCL's multi-turn conversations start at ~3-7k tokens of function docs (bench tokenizer; the gpu
    profile's comment): a profile that runs them with a shorter context ends every one at its first
    prompt, a score of nothing. The demo (default) runs them too."""
    from contracts.bfcl import MULTI_TURN_CATEGORIES

    running = []
    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        settings = load_settings(path.stem)
        if set(settings.evaluation.bfcl.categories) & set(MULTI_TURN_CATEGORIES):
            running.append(path.stem)
            assert settings.model["max_position_embeddings"] >= 8192, path.stem
    assert {"default", "gpu", "cluster"} <= set(running)


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


def _profile(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def test_a_misspelled_key_names_the_file_the_section_and_the_key(tmp_path: Path):
    f = _profile(tmp_path, "extends: micro\nname: my\nsources:\n  openapi: {provders: [x.com]}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(str(f))
    assert str(err.value) == f"{f}: sources.openapi: unknown key 'provders'"
    with pytest.raises(ProfileError):
        load_settings(str(f))


def test_errors_name_the_file_of_the_extends_chain_that_holds_the_key(tmp_path: Path):
    parent = _profile(tmp_path, "extends: micro\nname: parent\nsynthesis: {per_apii: 2}\n", "parent.yaml")
    child = _profile(tmp_path, f"extends: {parent}\nname: child\n", "child.yaml")
    with pytest.raises(ProfileError, match=rf"^{parent}: synthesis: unknown key 'per_apii'$"):
        load_profile(str(child))


def test_list_entries_and_values_are_checked_too(tmp_path: Path):
    f = _profile(
        tmp_path,
        "extends: micro\nname: my\nsources:\n  crawl: [{name: a, seeds: [index.html], max_dept: 2}]\n"
        "mixture:\n  stage1: {token_budget: lots}\n",
    )
    with pytest.raises(ProfileError) as err:
        load_profile(str(f))
    lines = str(err.value).splitlines()
    assert f"{f}: sources.crawl[0]: unknown key 'max_dept'" in lines
    assert any(line.startswith(f"{f}: mixture.stage1.token_budget: ") for line in lines)


def test_the_training_sections_are_checked_by_training(tmp_path: Path):
    f = _profile(tmp_path, "extends: micro\nname: my\ntraining:\n  stage1: {max_stepz: 3}\n")
    with pytest.raises(ProfileError, match="max_stepz"):
        load_profile(str(f))


def test_every_shipped_profile_loads_typed():
    for name in ("micro", "default", "gpu", "cluster"):
        settings = load_settings(name)
        assert settings.name == name
        assert settings.mixture.stage1.token_budget > 0
    assert load_settings("gpu").sources.openapi.providers is None
    assert load_settings("micro").evaluation.humaneval.local_path


def test_defaults_come_from_the_stage_configs(tmp_path: Path):
    """A section left out is its model's defaults, and the model is the stage's own config class."""
    from evaluation.config import EvaluationConfig
    from forge.sources.openapi.stage import OpenApiConfig
    from forge.synth.stage import SynthesisConfig

    f = _profile(
        tmp_path, "name: bare\nmixture:\n  stage1: {token_budget: 10}\n  stage2: {token_budget: 5}\n"
    )
    settings = load_settings(str(f))
    assert Profile.model_fields["synthesis"].annotation is SynthesisConfig
    assert SourcesSection.model_fields["openapi"].annotation is OpenApiConfig
    assert settings.synthesis == SynthesisConfig() and settings.synthesis.chunk_ops == 4000
    assert settings.sources.openapi == OpenApiConfig()
    assert settings.evaluation == EvaluationConfig()
    assert settings.mixture.stage1.ratios == {"agent": 1.0, "code": 1.0, "text": 1.0}
