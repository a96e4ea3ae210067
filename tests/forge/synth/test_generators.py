"""LLM text generators: an OpenAI-compatible endpoint (a fake server on 127.0.0.1), a tiny local
transformers model, fallback to templates (counted), and synthesize() using a given generator."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from forge.core.stats import StepStats
from forge.synth.generators import (
    LLMGenerator,
    OpenAIChatGenerator,
    TransformersGenerator,
    make_generator,
    missing_values,
)
from forge.synth.trajectories import synthesize
from forge.text.render import TemplateGenerator

OP = {
    "api_id": "w:get_forecast",
    "provider": "weather.example",
    "api_name": "Weather",
    "version": "1",
    "function_name": "get_forecast",
    "method": "GET",
    "path": "/forecast",
    "summary": "Get the weather forecast for a city",
    "description": "",
    "parameters": json.dumps(
        {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        }
    ),
    "responses": json.dumps(
        {
            "200": {
                "description": "OK",
                "schema": {"type": "object", "properties": {"temp_c": {"type": "number"}}},
            }
        }
    ),
    "license": "MIT",
}
ARGS = {"city": "Oslo", "days": 3}


class FakeServer:
    """Answers POST /chat/completions from a script of (status, content, delay_s) steps; the
    last step repeats. Records request bodies and headers."""

    def __init__(self, script: list[tuple[int, str, float]]) -> None:
        self.script, self.requests = script, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                status, content, delay = outer.script[min(len(outer.requests) - 1, len(outer.script) - 1)]
                time.sleep(delay)
                payload = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": content}}]}
                ).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _gen(url: str, **kw) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(url, "fake-model", timeout_s=kw.pop("timeout_s", 2.0), backoff_s=0.01, **kw)


def test_missing_values():
    assert missing_values("Forecast for oslo over 3 days", [ARGS]) == []
    assert missing_values("Forecast for Oslo", [ARGS]) == ["3"]
    assert (
        missing_values("Temperature 20 in Rome", [{"t": 20.0, "nested": {"c": "Rome"}, "flag": True}]) == []
    )


def test_openai_generator_accepts_a_request_that_states_the_values(monkeypatch):
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    with FakeServer([(200, "What's the forecast for Oslo for the next 3 days?", 0)]) as url:
        gen = _gen(url, api_key_env="FAKE_LLM_KEY")
        text = gen.write_request([OP], [ARGS], pattern="simple", rng=random.Random(0))
    assert text == "What's the forecast for Oslo for the next 3 days?"
    assert gen.counts == Counter({"llm_ok": 1})


def test_openai_generator_request_shape_and_key(monkeypatch):
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    fake = FakeServer([(200, "Sure: Oslo, 3 days.", 0)])
    with fake as url:
        _gen(url, api_key_env="FAKE_LLM_KEY").write_request(
            [OP], [ARGS], pattern="simple", rng=random.Random(0)
        )
    (req,) = fake.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "fake-model" and req["body"]["messages"][-1]["role"] == "user"
    assert '"city": "Oslo"' in req["body"]["messages"][-1]["content"]


def test_openai_generator_retries_server_errors_then_succeeds():
    fake = FakeServer([(503, "", 0), (500, "", 0), (200, "Oslo forecast, 3 days please.", 0)])
    with fake as url:
        gen = _gen(url, max_retries=2)
        text = gen.write_request([OP], [ARGS], pattern="simple", rng=random.Random(0))
    assert text == "Oslo forecast, 3 days please." and len(fake.requests) == 3
    assert gen.counts["http_retry"] == 2 and gen.counts["llm_ok"] == 1


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ([(500, "", 0)], "fallback:error_HTTPStatusError"),
        ([(200, "Tell me the weather.", 0)], "fallback:missing_values"),
        ([(200, "   ", 0)], "fallback:empty"),
        ([(200, "late", 0.5)], "fallback:error_ReadTimeout"),
    ],
)
def test_openai_generator_falls_back_to_templates_and_counts(script, reason):
    with FakeServer(script) as url:
        gen = _gen(url, max_retries=1, timeout_s=0.2)
        text = gen.write_request([OP], [ARGS], pattern="simple", rng=random.Random(7))
    expected = TemplateGenerator().write_request([OP], [ARGS], pattern="simple", rng=_rng_after_seed(7))
    assert gen.counts[reason] == 1 and gen.counts["llm_ok"] == 0
    assert text == expected


def _rng_after_seed(seed: int) -> random.Random:
    """The template sees the rng after the LLM call drew its sampling seed."""
    rng = random.Random(seed)
    rng.getrandbits(31)
    return rng


def test_unreachable_endpoint_falls_back():
    gen = _gen("http://127.0.0.1:9/v1", max_retries=0, timeout_s=0.5)
    text = gen.write_answer([OP], [ARGS], ['{"temp_c": 4.5}'], pattern="simple", rng=random.Random(0))
    assert text and sum(v for k, v in gen.counts.items() if k.startswith("fallback:error_")) == 1


def test_make_generator():
    assert isinstance(make_generator(None), TemplateGenerator)
    assert isinstance(make_generator({"kind": "template"}), TemplateGenerator)
    gen = make_generator(
        {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 1}
    )
    assert isinstance(gen, OpenAIChatGenerator) and gen.name == "openai:m"
    with pytest.raises(ValueError, match="unknown generator kind"):
        make_generator({"kind": "magic"})


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(["What is the forecast for Oslo for 3 days?"] * 20, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|pad|>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
    )
    out = tmp_path_factory.mktemp("tiny_lm")
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out


def test_transformers_generator_runs_a_local_model(tiny_model_dir):
    gen = make_generator({"kind": "transformers", "model_dir": str(tiny_model_dir), "max_new_tokens": 8})
    assert isinstance(gen, TransformersGenerator) and gen.name == f"transformers:{tiny_model_dir.name}"
    raw = gen.complete([{"role": "user", "content": "Forecast for Oslo?"}], seed=1)
    assert isinstance(raw, str) and raw == gen.complete(
        [{"role": "user", "content": "Forecast for Oslo?"}], seed=1
    )
    # random weights do not restate the arguments: the request falls back to the template, counted
    text = gen.write_request([OP], [ARGS], pattern="simple", rng=random.Random(3))
    assert "Oslo" in text and "3" in text
    assert sum(gen.counts.values()) == 1 and gen.counts["llm_ok"] == 0


def test_transformers_generator_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        TransformersGenerator(tmp_path / "nope")


class EchoLLM(LLMGenerator):
    """A fake LLM: restates the arguments it is given (so the checks pass) and tags its text."""

    name = "fake-llm"

    def complete(self, messages, *, seed=0):
        prompt = messages[-1]["content"]
        if prompt.startswith("Write one message"):
            return "FAKE REQUEST: " + prompt.split("\n", 1)[1]
        return "FAKE ANSWER."


def test_synthesize_uses_the_given_generator():
    gen = EchoLLM()
    stats = StepStats("t")
    rows = list(
        synthesize(
            [OP],
            seed=0,
            per_api=6,
            patterns={"simple": 1.0},
            heldout_providers=set(),
            stats=stats,
            generator=gen,
        )
    )
    assert len(rows) == 6 and all(r["generator"] == "fake-llm" and r["is_valid"] for r in rows)
    for r in rows:
        messages = json.loads(r["messages"])
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert users[0].startswith("FAKE REQUEST: ") and messages[-1]["content"] == "FAKE ANSWER."
    assert gen.counts["llm_ok"] == 12 and not any(k.startswith("fallback") for k in gen.counts)
