"""The ablation's arms: one base, identical SFT, a control matched in tokens to CPT1 + CPT2."""

from pathlib import Path

import pytest

from assets.profile import load_profile, load_settings
from training.research import ARMS, arm_configs, grid_run_config, grid_runs, stage_tokens


@pytest.fixture(scope="module")
def cfgs(tmp_path_factory):
    prof = load_profile("micro")
    root = tmp_path_factory.mktemp("arms")
    data = {k: root / k for k in ("general", "stage1", "stage2", "sft")}
    return arm_configs(
        prof["model"], prof["training"], load_settings("micro").research,
        models_dir=root / "models", tokenizer_dir=root / "tok", data_dirs=data,
    ), root  # fmt: skip


def test_every_arm_from_the_same_base(cfgs):
    cfgs, root = cfgs
    assert [a.name for a in ARMS] == list(cfgs)
    assert cfgs["base"].model.init == "config" and cfgs["base"].data.shards_dir == str(root / "general")
    for arm in ARMS:
        if arm.parent:
            assert cfgs[arm.name].model.name_or_path == str(root / "models" / arm.parent / "hf")
    roots = {a.name: a for a in ARMS}
    for arm in ARMS:  # every chain ends at the base
        node = arm
        while node.parent:
            node = roots[node.parent]
        assert node.name == "base"


def test_control_matches_the_cpt_tokens_and_sft_is_identical(cfgs):
    cfgs, root = cfgs
    cpt = stage_tokens(cfgs["cpt1"]) + stage_tokens(cfgs["cpt2"])
    control = stage_tokens(cfgs["control"])
    assert cpt <= control < cpt + stage_tokens(cfgs["control"]) / cfgs["control"].schedule.max_steps
    assert cfgs["control"].data.shards_dir == str(root / "general")
    sfts = [cfgs[n] for n in ("sft_base", "sft_cpt1", "sft_cpt2", "sft_control")]
    for cfg in sfts:
        assert (cfg.schedule, cfg.optim, cfg.lora, cfg.data) == (
            sfts[0].schedule,
            sfts[0].optim,
            sfts[0].lora,
            sfts[0].data,
        )


def test_base_reads_its_research_block(cfgs):
    cfgs, _ = cfgs
    assert cfgs["base"].schedule.max_steps == load_settings("micro").research.ablation.base["max_steps"]


def test_unknown_key_in_research_block_is_an_error(tmp_path):
    from training.research import apply_section

    with pytest.raises(ValueError, match="lrr"):
        apply_section(cfgs_like(tmp_path), {"lrr": 1.0}, "research.ablation.base")


def cfgs_like(tmp_path: Path):
    from training.config import debug_config

    return debug_config(tmp_path)


def test_grid_run_config_trains_the_budget(tmp_path):
    prof, settings = load_profile("micro"), load_settings("micro")
    grid = settings.research.grid
    runs = grid_runs(grid)
    assert len(runs) == len(grid.shares) * len(grid.sizes)
    cfg = grid_run_config(
        prof["model"], prof["training"], grid, runs[0].size,
        output_dir=tmp_path / "o", tokenizer_dir=tmp_path / "t", shards_dir=tmp_path / "s",
    )  # fmt: skip
    assert cfg.model.init == "config" and cfg.model.hidden_size == runs[0].size.hidden_size
    assert stage_tokens(cfg) == grid.train_tokens


def test_research_gpu_profile_is_valid_and_sized():
    settings = load_settings("research_gpu")
    r = settings.research
    assert r.enabled and len(r.grid.shares) >= 6 and max(r.grid.shares) >= 0.8 and len(r.grid.sizes) >= 2


def _grid_driver(tmp_path: Path, train, heldout_loss=lambda hf: {"agent": 1.0, "code": 2.0}):
    """run_grid's arguments around a fake ``train``: real configs, packing and held-out loss counted."""
    from training.research import run_grid

    prof, grid = load_profile("micro"), load_settings("micro").research.grid
    packed: list[float] = []

    def go(workers: int):
        return run_grid(
            grid, tmp_path / "work",
            pack=lambda share, d: (packed.append(share), d.mkdir(parents=True, exist_ok=True)),
            train=train,
            heldout_loss=heldout_loss,
            make_config=lambda run, shards, o: grid_run_config(
                prof["model"], prof["training"], grid, run.size, output_dir=o, tokenizer_dir=tmp_path / "t",
                shards_dir=shards,
            ),
            log=lambda msg: None, workers=workers,
        )  # fmt: skip

    return grid, packed, go


def test_grid_trains_runs_at_once_and_resumes_only_the_failed_one(tmp_path):
    import threading

    barrier, lock, trained, fail = threading.Barrier(2, timeout=30), threading.Lock(), [], {"on": True}

    def train(cfg):
        name = Path(cfg.output_dir).name
        barrier.wait()  # two runs must be in train together, or this times out (BrokenBarrierError)
        with lock:
            trained.append(name)
        if fail["on"] and name == first_name:
            raise RuntimeError(f"{name}: out of memory")
        return {"n_params_non_embedding": 1000}

    grid, packed, go = _grid_driver(tmp_path, train)
    runs = grid_runs(grid)
    assert len(runs) % 2 == 0, "the barrier pairs the runs"
    first_name = runs[0].name
    with pytest.raises(RuntimeError, match="out of memory"):
        go(workers=2)
    assert sorted(trained) == sorted(r.name for r in runs)  # the failure stopped no other run
    assert sorted(packed) == sorted(grid.shares)  # each share packed once, before the runs
    fail["on"], trained[:], barrier = False, [], threading.Barrier(1)
    records = go(workers=2)
    assert trained == [first_name] and packed == sorted(grid.shares)  # only the failed run again
    assert [r["run"] for r in records] == [r.name for r in runs for _ in ("agent", "code")]
    assert {r["tokens"] for r in records} == {grid.train_tokens}


def test_grid_never_loads_two_models_at_once(tmp_path):
    """Held-out loss loads each run's model; transformers' loader patches process-wide state, so two
    loads in the grid's threads at once leave parameters on the meta device (it happened on the H200)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    hf = tmp_path / "hf"
    config = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(hf)
    calls = []

    def heldout_loss(_):
        for _ in range(3):
            model = AutoModelForCausalLM.from_pretrained(hf).to("cpu")  # as evaluation's load_model does
            assert not any(p.is_meta for p in model.parameters())
        calls.append(1)
        return {"agent": 1.0}

    grid, _, go = _grid_driver(tmp_path, lambda cfg: {"n_params_non_embedding": 1000}, heldout_loss)
    go(workers=3)
    assert len(calls) == len(grid_runs(grid))
