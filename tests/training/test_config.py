import json

import pytest
import yaml

from training.config import RunConfig, debug_config, flatten, load_config, to_dict


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
