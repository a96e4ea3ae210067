"""The seed classifier: cross-fitted scores, threshold rules, the stage end to end, the fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from contracts import tables as schemas
from forge.core.io import write_parquet
from forge.text.retrieval import (
    RETRIEVAL_SCORES,
    RETRIEVAL_STAGE,
    RetrievalConfig,
    RetrievalFeatures,
    ThresholdRule,
    choose_threshold,
    fold_of,
    labelled_split,
    precision_recall_at,
    precision_recall_curve,
    retrieval_metrics,
    retrieve,
    score_texts,
    train_model,
)

SMALL = RetrievalFeatures(n_features_log2=14)  # fast tests: a small hash space
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/retrieval/labelled.jsonl"

API = (
    "Endpoint: `GET /v1/users/{{id}}`\nParameters:\n- `id` (string, required): the user id {i}\n"
    "- `fields` (array, optional): fields to return\nResponses:\n- 200: the user\n- 404: not found\n"
)
PROSE = "The history of the valley {i} is long; farmers grew wheat and barley near the old river bank.\n"
CODE = "def helper_{i}(x):\n    y = x * 2\n    for k in range(y):\n        y += k\n    return y\n"


def _write(tmp: Path) -> tuple[list[Path], list[tuple[str, Path]]]:
    agent = [
        {"doc_id": f"api:{i}", "subcategory": "api_doc", "is_seed": True, "text": API.format(i=i) * 3}
        for i in range(60)
    ] + [{"doc_id": "api:x", "subcategory": "api_doc", "is_seed": False, "text": PROSE}]
    general_text = [
        {"doc_id": f"t{i}", "text": (API if i % 5 == 0 else PROSE).format(i=i) * 2, "source": "s"}
        for i in range(100)
    ]
    general_code = [{"doc_id": f"c{i}", "text": CODE.format(i=i) * 3, "source": "s"} for i in range(80)]

    def fill(rows: list[dict], schema) -> list[dict]:
        return [{n: r.get(n) for n in schema.names} for r in rows]

    write_parquet(tmp / "agent/part-0.parquet", fill(agent, schemas.AGENT_DOCUMENTS), schemas.AGENT_DOCUMENTS)
    write_parquet(
        tmp / "text/part-0.parquet", fill(general_text, schemas.GENERAL_DOCUMENTS), schemas.GENERAL_DOCUMENTS
    )
    write_parquet(
        tmp / "code/part-0.parquet", fill(general_code, schemas.GENERAL_DOCUMENTS), schemas.GENERAL_DOCUMENTS
    )
    return [tmp / "agent"], [("text_documents", tmp / "text"), ("code_documents", tmp / "code")]


def test_stage_retrieves_api_like_general_documents(tmp_path: Path) -> None:
    seed_dirs, general = _write(tmp_path)
    cfg = RetrievalConfig(
        enabled=True,
        features=SMALL,
        workers=1,
        batch_size=50,
        threshold=ThresholdRule(rule="fixed", value=0.5),
    )
    meta = retrieve(cfg, seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "out")
    rows = pq.read_table(tmp_path / "out/part-0.parquet").to_pylist()
    assert len(rows) == meta["n_scored"] == 180
    retrieved = {r["doc_id"] for r in rows if r["is_retrieved"]}
    api_like = {f"t{i}" for i in range(0, 100, 5)}
    assert retrieved == api_like, sorted(retrieved ^ api_like)[:10]
    assert meta["retrieved_by_source_table"] == {"text_documents": 20}
    # every row's fold is the hash fold, and the non-seed agent document never trained anything
    assert all(r["fold"] == fold_of(r["doc_id"], 2) for r in rows)
    assert meta["n_heldout_seed"] > 0 and (tmp_path / "out/pr_curve.json").is_file()


def test_scores_are_out_of_fold(tmp_path: Path) -> None:
    """A general document is scored by the model that did not learn from it: its stored score
    equals the other fold's model's, not its own fold's training model."""
    seed_dirs, general = _write(tmp_path)
    cfg = RetrievalConfig(
        enabled=True, features=SMALL, workers=1, threshold=ThresholdRule(rule="fixed", value=0.5)
    )
    retrieve(cfg, seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "out")
    weights = np.load(tmp_path / "out/models.npz")["weights"]
    row = next(r for r in pq.read_table(tmp_path / "out/part-0.parquet").to_pylist() if r["doc_id"] == "t1")
    text = PROSE.format(i=1) * 2
    own = score_texts([text], weights[row["fold"]], cfg.features)[0]
    assert row["score"] == pytest.approx(float(own), abs=1e-6)


def test_no_seed_is_a_reported_skip_not_a_crash(tmp_path: Path) -> None:
    _, general = _write(tmp_path)
    write_parquet(tmp_path / "empty/part-0.parquet", [], schemas.AGENT_DOCUMENTS)
    meta = retrieve(
        RetrievalConfig(enabled=True, features=SMALL, workers=1),
        seed_dirs=[tmp_path / "empty"],
        general=general,
        out_dir=tmp_path / "o",
    )
    assert meta["skipped"] == "no_seed_documents" and meta["n_retrieved"] == 0
    assert pq.read_table(tmp_path / "o/part-0.parquet").num_rows == 180


def test_max_docs_caps_and_counts(tmp_path: Path) -> None:
    seed_dirs, general = _write(tmp_path)
    cfg = RetrievalConfig(
        enabled=True, features=SMALL, workers=1, max_docs=50, threshold=ThresholdRule(rule="fixed", value=0.5)
    )
    meta = retrieve(cfg, seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "out")
    assert meta["n_scored"] == 50 and meta["counts"]["over_max_docs"] == 130


def test_threshold_rules() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    curve = precision_recall_curve(scores, labels)
    assert choose_threshold(curve, ThresholdRule(rule="min_precision", min_precision=1.0)) == pytest.approx(
        0.8
    )
    assert choose_threshold(curve, ThresholdRule(rule="min_precision", min_precision=0.7)) == pytest.approx(
        0.6
    )
    assert choose_threshold(curve, ThresholdRule(rule="fixed", value=0.33)) == 0.33
    t = choose_threshold(curve, ThresholdRule(rule="max_f1"))
    assert t in (0.6, 0.2)
    at = precision_recall_at(scores, labels, 0.6)
    assert at["precision"] == 0.75 and at["recall"] == 0.75 and at["n_predicted"] == 4


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="folds"):
        RetrievalConfig(folds=1)
    with pytest.raises(ValidationError, match="needs threshold.value"):
        ThresholdRule(rule="fixed")
    with pytest.raises(ValidationError, match="extra"):
        RETRIEVAL_STAGE.parse({"treshold": {}})
    # speed settings never change the fingerprint
    assert (
        RetrievalConfig(workers=1, batch_size=7).fingerprint_fields()
        == RetrievalConfig(workers=2).fingerprint_fields()
    )


def test_training_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        train_model(["a b c"], [], RetrievalConfig())


def test_labelled_fixture_is_usable() -> None:
    rows = [json.loads(line) for line in FIXTURE.open()]
    assert len(rows) >= 300
    assert len({r["doc_id"] for r in rows}) == len(rows)
    n_pos = sum(r["is_agent_like"] for r in rows)
    assert 50 <= n_pos <= len(rows) - 50
    assert {r["source_table"] for r in rows} == {"code_documents", "text_documents"}
    assert all(isinstance(r["is_agent_like"], bool) and r["text"] for r in rows)


def _labelled(tmp: Path, extra_lines: tuple[str, ...] = ()) -> Path:
    """A labelled sample in the fixture's format: API-like documents (agent-like) and prose (not),
    two of them also in the scored corpus (t0 is API-like, t1 prose)."""
    rows = [
        {
            "doc_id": f"L{i}",
            "text": (API if i % 2 else PROSE).format(i=100 + i) * 2,
            "is_agent_like": bool(i % 2),
        }
        for i in range(80)
    ]
    rows += [
        {"doc_id": "t0", "text": API.format(i=0) * 2, "is_agent_like": True},
        {"doc_id": "t1", "text": PROSE.format(i=1) * 2, "is_agent_like": False},
    ]
    path = tmp / "labelled.jsonl"
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in extra_lines)
    )
    return path


def test_threshold_is_chosen_on_the_labelled_calibration_split(tmp_path: Path) -> None:
    seed_dirs, general = _write(tmp_path)
    labelled = _labelled(tmp_path, ("not json", json.dumps({"doc_id": "x", "text": "t"})))
    cfg = RetrievalConfig(
        enabled=True,
        features=SMALL,
        workers=1,
        threshold=ThresholdRule(rule="min_precision", min_precision=0.9),
    )
    meta = retrieve(
        cfg, seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "out", labelled_path=labelled
    )
    assert meta["threshold_source"] == "labelled_calibration"
    # the labelled documents never train a model: t0 and t1 are in the corpus, yet no negative
    assert meta["counts"]["negatives_skipped_labelled"] == 2
    assert meta["counts"]["labelled_bad_line"] == 2  # a line that is not JSON, one without a label
    cal, test = meta["labelled"]["calibration"], meta["labelled"]["test"]
    assert cal["n"] + test["n"] == 82 and cal["n"] > 20 and test["n"] > 20
    assert cal["precision"] >= 0.9 and test["precision"] >= 0.9 and test["recall"] > 0.9
    assert "| test |" in meta["labelled_md"]
    assert (tmp_path / "out/pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    curves = json.loads((tmp_path / "out/pr_curve.json").read_text())
    assert curves["threshold"] == meta["threshold"] and curves["labelled calibration"]["thresholds"]
    # the scores dbt reads are the only Parquet file in the output (the work files are gone)
    assert [p.name for p in (tmp_path / "out").glob("*.parquet")] == ["part-0.parquet"]
    metrics = retrieval_metrics(meta)
    assert metrics["labelled_test_precision"] == test["precision"] and "threshold" in metrics


def test_labelled_split_is_stable_and_near_the_share() -> None:
    ids = [f"doc{i}" for i in range(2000)]
    cal = [labelled_split(d, 30) == "calibration" for d in ids]
    assert 0.25 < sum(cal) / len(ids) < 0.35
    assert cal == [labelled_split(d, 30) == "calibration" for d in ids]


def test_disabled_is_a_visible_skip_with_an_empty_table(tmp_path: Path) -> None:
    seed_dirs, general = _write(tmp_path)
    meta = retrieve(RetrievalConfig(), seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "off")
    assert meta["skipped"] == "retrieval.enabled is false" and meta["n_retrieved"] == 0
    table = pq.read_table(tmp_path / "off/part-0.parquet")
    assert table.num_rows == 0 and table.schema.equals(RETRIEVAL_SCORES)


def test_negative_pruning_refits_without_the_most_seed_like_negatives() -> None:
    """Agent-like documents among the negatives (unlabelled positives) pull the model away from
    them; the second fit, without the top-scoring 30% of negatives, scores them higher."""
    pos = [API.format(i=i) for i in range(30)]
    neg = [API.format(i=100 + i) if i % 4 == 0 else PROSE.format(i=i) for i in range(80)]
    probe = [API.format(i=999)]
    one = RetrievalConfig(features=SMALL)
    two = RetrievalConfig(features=SMALL, negative_pruning_pct=30)
    s1 = score_texts(probe, train_model(pos, neg, one), SMALL)[0]
    s2 = score_texts(probe, train_model(pos, neg, two), SMALL)[0]
    assert s2 > s1
    with pytest.raises(ValidationError, match="negative_pruning_pct"):
        RetrievalConfig(negative_pruning_pct=100)


def test_positives_agent_reads_every_agent_document(tmp_path: Path) -> None:
    seed_dirs, general = _write(tmp_path)
    base = {
        "enabled": True,
        "features": SMALL,
        "workers": 1,
        "threshold": ThresholdRule(rule="fixed", value=0.5),
    }
    seed_only = retrieve(
        RetrievalConfig(**base), seed_dirs=seed_dirs, general=general, out_dir=tmp_path / "a"
    )
    agent = retrieve(
        RetrievalConfig(**base, positives="agent"),
        seed_dirs=seed_dirs,
        general=general,
        out_dir=tmp_path / "b",
    )
    n_seed = sum(v for k, v in seed_only["counts"].items() if k.endswith("seed_api_doc"))
    n_agent = sum(v for k, v in agent["counts"].items() if k.endswith("seed_api_doc"))
    assert (n_seed, n_agent) == (60, 61)  # the non-seed agent document joins with `agent`


def test_binary_features_count_presence() -> None:
    from forge.text.retrieval import vectorizer

    x = vectorizer(RetrievalFeatures(n_features_log2=10, binary=True, ngram_max=2)).transform(
        ["get get get id"]
    )
    y = vectorizer(RetrievalFeatures(n_features_log2=10, ngram_max=2)).transform(["get get get id"])
    assert len(set(np.round(x.data, 6))) == 1 and len(set(np.round(y.data, 6))) > 1
