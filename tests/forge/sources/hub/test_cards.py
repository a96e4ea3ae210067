"""Hub connectors on local fixture files in the real formats, and the live path against 127.0.0.1."""

from __future__ import annotations

import functools
import json
import threading
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from forge.core.ids import content_sha256
from forge.core.stats import StepStats
from forge.crawler import CrawlConfig
from forge.sources.hub.cards import fetch_hub_docs, iter_local_hub_docs, parse_hubconf, parse_model_card

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "hub"
WHEN = datetime(2026, 11, 24, tzinfo=UTC)


def test_local_fixtures_rows_and_skips():
    stats = StepStats("hub_docs")
    rows = list(iter_local_hub_docs(FIXTURES, stats, fetched_at=WHEN))
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "openai/whisper-tiny",
        "pytorch/vision:deeplabv3_mobilenet_v3_large",
        "facebookresearch/dino:dino_vits16",
        "facebookresearch/dino:dino_xcit_small_12_p16",
    }
    assert all(r["source"] == "hub_docs" and r["content_sha256"] == content_sha256(r) for r in rows)
    assert stats.n_kept == 5
    assert stats.dropped["bad_front_matter"] == 1 and stats.dropped["no_task"] == 1
    assert stats.examples["no_task"] == [
        "acme/no-task: no pipeline_tag, and no known task among its tags or pipeline() calls"
    ]
    assert stats.dropped["hubconf_syntax_error"] == 1
    assert stats.dropped["imported_entrypoint"] == 6  # vision: 5 names, dino: resnet50

    sst2 = by_path["distilbert/distilbert-base-uncased-finetuned-sst-2-english"]
    assert sst2["license"] == "apache-2.0" and sst2["provider"] == "distilbert"
    assert json.loads(sst2["parameters"])["required"] == ["inputs"]
    tags = json.loads(sst2["tags"])
    assert (
        "task:text-classification" in tags and "library:transformers" in tags and "sentiment-analysis" in tags
    )
    assert sst2["summary"].startswith("Model Description: This model is a fine-tune checkpoint")
    assert "DistilBertForSequenceClassification" in sst2["description"]  # usage code kept
    whisper = json.loads(by_path["openai/whisper-tiny"]["parameters"])
    assert "audio" in whisper["properties"]["inputs"]["description"]

    deeplab = by_path["pytorch/vision:deeplabv3_mobilenet_v3_large"]
    params = json.loads(deeplab["parameters"])
    assert params["required"] == []
    assert params["properties"]["num_classes"]["default"] == 21
    assert params["properties"]["num_classes"]["type"] == "integer"
    assert "number of output classes" in params["properties"]["num_classes"]["description"]
    assert deeplab["summary"] == "Constructs a DeepLabV3 model with a MobileNetV3-Large backbone."
    xcit = json.loads(by_path["facebookresearch/dino:dino_xcit_small_12_p16"]["parameters"])
    assert xcit["properties"]["patch_size"]["description"].startswith("size of the image patches")
    assert (
        json.loads(by_path["facebookresearch/dino:dino_xcit_small_12_p16"]["responses"])["return"][
            "annotation"
        ]
        == "torch.nn.Module"
    )


def test_hubconf_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n\ndef model(pretrained=True):\n    'M.'\n"
    stats = StepStats("h")
    rows = parse_hubconf(src, "me/repo", source_uri="mem", fetched_at=WHEN, stats=stats)
    assert [r["function_name"] for r in rows] == ["repo.model"] and not marker.exists()


def test_task_inferred_from_usage_code():
    card = '# M\n\nA model that sorts feelings into bins, trained on a lot of reviews.\n\n```python\nfrom transformers import pipeline\np = pipeline("sentiment-analysis", model="x/y")\n```\n'
    stats = StepStats("h")
    row = parse_model_card(card, "x/y", source_uri="mem", fetched_at=WHEN, stats=stats)
    assert row is not None and "task:sentiment-analysis" in json.loads(row["tags"])
    assert json.loads(row["parameters"])["required"] == ["inputs"]
    unknown = "---\npipeline_tag: robot-dancing\n---\n# R\n"
    assert parse_model_card(unknown, "x/r", source_uri="mem", fetched_at=WHEN, stats=stats) is None
    assert stats.dropped["unknown_task"] == 1
    assert stats.examples["unknown_task"] == ["x/r: task 'robot-dancing' has no known signature"]


@pytest.fixture
def hub_server(tmp_path):
    """Serves <tmp>/<org>/<model>/raw/main/README.md and <tmp>/<owner>/<repo>/main/hubconf.py."""
    card = FIXTURES / "hf" / "openai__whisper-tiny" / "README.md"
    (tmp_path / "openai/whisper-tiny/raw/main").mkdir(parents=True)
    (tmp_path / "openai/whisper-tiny/raw/main/README.md").write_bytes(card.read_bytes())
    (tmp_path / "facebookresearch/dino/main").mkdir(parents=True)
    (tmp_path / "facebookresearch/dino/main/hubconf.py").write_bytes(
        (FIXTURES / "torchhub" / "facebookresearch__dino" / "hubconf.py").read_bytes()
    )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_live_path_through_safe_fetcher(hub_server):
    cfg = CrawlConfig(seeds=(hub_server,), allow_addresses=("127.0.0.1",), min_delay_s=0.0, max_retries=0)
    stats = StepStats("hub_live")
    rows = fetch_hub_docs(
        ["openai/whisper-tiny", "nobody/missing"], ["facebookresearch/dino"],
        stats=stats, config=cfg, hf_base=hub_server, github_raw_base=hub_server,
    )  # fmt: skip
    assert sorted(r["path"] for r in rows) == [
        "facebookresearch/dino:dino_vits16", "facebookresearch/dino:dino_xcit_small_12_p16", "openai/whisper-tiny",
    ]  # fmt: skip
    assert stats.dropped["fetch_http_404"] == 1
    assert rows[0]["source_uri"].startswith(hub_server)


def test_live_path_refuses_loopback_without_allow_list(hub_server):
    stats = StepStats("hub_live")
    cfg = CrawlConfig(seeds=(hub_server,), min_delay_s=0.0)
    rows = fetch_hub_docs(["openai/whisper-tiny"], stats=stats, config=cfg, hf_base=hub_server)
    assert rows == [] and stats.dropped["fetch_ssrf_blocked"] == 1
