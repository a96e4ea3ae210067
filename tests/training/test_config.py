import dataclasses
import json

import pytest
import yaml

from training.config import LoraConfig, ModelConfig, RunConfig, debug_config, flatten, load_config, to_dict


def test_json_and_yaml_round_trip(tmp_path):
    cfg = debug_config(tmp_path / "out")
    cfg.optim.betas = (0.8, 0.99)
    cfg.lora.target_modules = ["q_proj"]
    data = to_dict(cfg)
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    for name in ("c.json", "c.yaml"):
        loaded = load_config(tmp_path / name)
        assert isinstance(loaded, RunConfig)
        assert loaded == cfg
        assert loaded.optim.betas == (0.8, 0.99)


def test_partial_config_fills_defaults_and_mlflow(tmp_path):
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "output_dir": "o",
                "schedule": {"max_steps": 3},
                "mlflow": {"tracking_uri": "sqlite:///x.db", "experiment": "e"},
            }
        )
    )
    cfg = load_config(tmp_path / "c.json")
    assert cfg.schedule.max_steps == 3 and cfg.schedule.micro_batch_size == 4
    assert cfg.mlflow is not None and cfg.mlflow.experiment == "e" and cfg.mlflow.run_id is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"output_dir": "o", "schedule": {"max_step": 3}}, "unknown key(s) ['max_step'] in schedule"),
        ({"schedule": {}}, "output_dir"),
        ({"output_dir": "o", "model": {"init": "pretrained"}}, "name_or_path is required"),
        ({"output_dir": "o", "device": "tpu"}, "device must be"),
        ({"output_dir": "o", "schedule": {"max_steps": 0}}, "schedule.max_steps must be >= 1"),
        ({"output_dir": "o", "model": 3}, "model must be an object"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, data, message):
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ValueError) as err:
        load_config(tmp_path / "c.json")
    assert message in str(err.value)


def test_missing_and_invalid_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        load_config(tmp_path / "bad.json")


def test_flatten_for_mlflow_params(tmp_path):
    flat = flatten(to_dict(debug_config(tmp_path)))
    assert flat["model.hidden_size"] == 64
    assert flat["optim.betas"] == [0.9, 0.95]
    assert flat["mlflow"] is None
    assert not any(isinstance(v, dict) and v for v in flat.values())


def test_debug_config_rejects_unknown_override(tmp_path):
    assert debug_config(tmp_path, seed=7).seed == 7
    with pytest.raises(ValueError, match="unknown field 'sede'"):
        debug_config(tmp_path, sede=7)


def test_gpu_config_is_the_350m_compiled_run_and_round_trips(tmp_path):
    from training.config import LLAMA_SIZES, config_from_dict, gpu_config, to_dict

    cfg = gpu_config(tmp_path, shards_dir="/data/shards")
    assert cfg.compile and cfg.device == "cuda" and cfg.model.hidden_size == 1024
    assert cfg.schedule.micro_batch_size * cfg.data.seq_len == 16384
    assert config_from_dict(to_dict(cfg)) == cfg
    assert (
        gpu_config(tmp_path, size="1b").model.num_key_value_heads == LLAMA_SIZES["1b"]["num_key_value_heads"]
    )
    with pytest.raises(ValueError, match="unknown size"):
        gpu_config(tmp_path, size="7b")
    bad = to_dict(cfg)
    bad["parallel"] = "zero3"
    with pytest.raises(ValueError, match="parallel must be"):
        config_from_dict(bad)


# Profile sections: what orchestration/profiles/*.yaml hold under `model:` and `training:`.
MODEL = {"init": "config", "name_or_path": None, "hidden_size": 32, "num_hidden_layers": 2}
TRAINING = {
    "device": "cpu",
    "doc_mask": True,
    "perf": {"prefetch_batches": 0},
    "stage1": {"max_steps": 6, "micro_batch_size": 2, "seq_len": 64, "lr": 0.003, "min_lr": 0.0003},
    "sft": {"max_steps": 4, "seq_len": 512, "lora": {"r": 4, "alpha": 8}, "full_finetune": False},
}


def _stage(stage, tmp_path, model=MODEL, training=TRAINING):
    from training.config import from_profile

    trained = stage != "base"
    return from_profile(
        stage,
        model,
        training,
        output_dir=tmp_path / stage,
        tokenizer_dir=tmp_path / "tok",
        parent_hf=tmp_path / "parent" / "hf" if trained else None,
        data=tmp_path / "data" if trained else None,
    )


def test_from_profile_maps_sections_to_each_stage(tmp_path):
    base = _stage("base", tmp_path)
    assert base.name == "base" and base.output_dir == str(tmp_path / "base")
    assert (base.model.init, base.model.hidden_size, base.model.tokenizer_dir) == (
        "config",
        32,
        str(tmp_path / "tok"),
    )
    assert base.data.shards_dir is None and base.device == "cpu" and base.perf.prefetch_batches == 0

    s1 = _stage("stage1", tmp_path)
    assert (s1.model.init, s1.model.name_or_path) == ("pretrained", str(tmp_path / "parent" / "hf"))
    assert s1.model.hidden_size == 64  # a trained stage takes its dims from the parent, not the profile
    assert s1.data.shards_dir == str(tmp_path / "data") and s1.data.seq_len == 64 and s1.data.doc_mask
    assert (s1.schedule.max_steps, s1.schedule.micro_batch_size, s1.optim.lr) == (6, 2, 0.003)

    sft = _stage("sft", tmp_path)
    assert sft.data.sft_path == str(tmp_path / "data" / "train.jsonl") and sft.data.shards_dir is None
    assert not sft.data.doc_mask  # document masking is for packed CPT windows only
    assert (sft.lora.r, sft.lora.alpha, sft.full_finetune) == (4, 8, False)
    assert sft.lora.target_modules == LoraConfig().target_modules


def test_keys_a_profile_leaves_out_keep_the_run_config_defaults(tmp_path):
    s2 = _stage("stage2", tmp_path)  # no stage2 block at all
    defaults = RunConfig(output_dir="x")
    assert s2.schedule == defaults.schedule and s2.optim == defaults.optim
    assert s2.seed == defaults.seed and s2.objective == "causal_lm" and s2.compile is False
    s1 = _stage("stage1", tmp_path)
    assert s1.optim.warmup_steps == defaults.optim.warmup_steps and s1.perf.loss_chunk_tokens == 4096
    assert _stage("base", tmp_path, model={}, training={}).model == ModelConfig(
        tokenizer_dir=str(tmp_path / "tok")
    )


def test_every_stage_key_lands_on_its_run_config_field(tmp_path):
    from training.config import StageSection

    values = {"max_steps": 7, "micro_batch_size": 3, "grad_accum_steps": 2, "seq_len": 48, "lr": 0.01,
              "min_lr": 0.001, "warmup_steps": 4, "weight_decay": 0.2, "grad_clip": 0.5, "eval_every": 5,
              "checkpoint_every": 6, "log_every": 2, "objective": "causal_lm", "lora": {"r": 2},
              "full_finetune": True, "parallel": "fsdp"}  # fmt: skip
    assert set(values) == {f.name for f in dataclasses.fields(StageSection)}
    flat = flatten(to_dict(_stage("stage1", tmp_path, training={"stage1": values})))
    assert flat.pop("lora.r") == 2
    for key, value in values.items():
        if key == "lora":
            continue
        got = {k: v for k, v in flat.items() if k == key or k.endswith("." + key)}
        assert list(got.values()) == [value], (key, got)


@pytest.mark.parametrize(
    "model, training, message",
    [
        ({}, {"stage1": {"lrr": 0.1}}, "unknown key(s) ['lrr'] in training.stage1 (did you mean 'lr'?)"),
        ({}, {"devcie": "cpu"}, "unknown key(s) ['devcie'] in training (did you mean 'device'?)"),
        ({}, {"sft": {"lora": {"rank": 4}}}, "unknown key(s) ['rank'] in training.sft.lora"),
        ({}, {"perf": {"prefetch": 2}}, "unknown key(s) ['prefetch'] in training.perf"),
        ({"hiden_size": 8}, {}, "unknown key(s) ['hiden_size'] in model (did you mean 'hidden_size'?)"),
        ({"tokenizer_dir": "t"}, {}, "unknown key(s) ['tokenizer_dir'] in model"),
        ({}, {"stage1": {"lr": "3e-4"}}, "training.stage1.lr must be float, got str '3e-4'"),
        ({}, {"stage2": {"max_steps": 1.5}}, "training.stage2.max_steps must be int"),
        ({}, {"parallel": "zero3"}, "training.parallel must be one of ['ddp', 'fsdp'], got str 'zero3'"),
        ({}, {"sft": {"full_finetune": "no"}}, "training.sft.full_finetune must be bool"),
        ({}, {"stage1": []}, "training.stage1 must be an object"),
        ({}, {"stage1": {"max_steps": 0}}, "profile stage 'stage1': config: schedule.max_steps must be >= 1"),
        ({"init": "pretrained"}, {}, "profile stage 'base': config: model.name_or_path is required"),
    ],
)
def test_a_bad_profile_section_names_the_key_and_its_section(model, training, message):
    from training.config import validate_profile_sections

    with pytest.raises(ValueError) as err:
        validate_profile_sections(model, training)
    assert message in str(err.value)


def test_profile_sections_accept_ints_for_floats_and_empty_blocks(tmp_path):
    from training.config import profile_sections, validate_profile_sections

    validate_profile_sections(
        {"rope_theta": 10000}, {"stage1": None, "nproc_per_node": 2, "stage2": {"lr": 1}}
    )
    model, training = profile_sections(None, {"nproc_per_node": 2})
    assert model == ModelConfig() and training.nproc_per_node == 2
    assert profile_sections({}, {})[1].nproc_per_node == 1
    with pytest.raises(ValueError, match="unknown profile stage 'stage3'"):
        _stage("stage3", tmp_path)
