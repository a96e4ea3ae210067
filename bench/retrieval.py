"""Retrieval classifier: scoring throughput on 2 cores vs a named baseline, and precision/recall on
the labelled fixture, in one run.

    python bench/retrieval.py --data .hephaestus/default/data --out bench/results/2026-12-01_retrieval_cpu-2core.txt

1. Runs the retrieval stage (``forge.text.retrieval``) on the profile's raw Parquet (seed agent
   documents vs code + text documents): cross-fitted models, out-of-fold scores, the threshold.
2. Precision and recall at that threshold on ``tests/fixtures/retrieval/labelled.jsonl`` (documents
   of the same corpus, labelled by hand), from their out-of-fold scores.
3. Throughput of scoring the general corpus (repeated to ``--n-docs`` documents):
   - ours: hashed features + a dot product, batches over ``--workers`` processes
     (``forge.text.retrieval._score_batch``, what the stage runs);
   - baseline: scikit-learn's usual pipeline, ``TfidfVectorizer`` (a fitted vocabulary, unhashed)
     + ``LogisticRegression.predict_proba``, on the same documents and heads, in one process
     (scikit-learn's text transform is single-threaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forge.core.parallel import ordered_map  # noqa: E402
from forge.text.retrieval import (  # noqa: E402
    RetrievalConfig,
    _iter_docs,
    _score_batch,
    precision_recall_at,
    retrieve,
)

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/retrieval/labelled.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(".hephaestus/default/data"))
    ap.add_argument("--n-docs", type=int, default=40_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    raw = args.data / "raw"
    general = [("code_documents", raw / "code_documents"), ("text_documents", raw / "text_documents")]
    cfg = RetrievalConfig(workers=args.workers)
    lines = [
        f"# retrieval classifier — {date.today().isoformat()} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}",
        f"data: {args.data} (seed = raw/agent_documents is_seed; general = raw/code_documents + raw/text_documents)",
        f"config: {cfg.model_dump_json()}",
        "",
    ]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "retrieval"
        t0 = time.perf_counter()
        meta = retrieve(cfg, seed_dirs=[raw / "agent_documents"], general=general, out_dir=out)
        stage_s = time.perf_counter() - t0
        import pyarrow.parquet as pq

        scores = {r["doc_id"]: r["score"] for r in pq.read_table(out / "part-0.parquet").to_pylist()}
        weights = np.load(out / "models.npz")["weights"]

        labelled = [json.loads(line) for line in FIXTURE.open()]
        found = [r for r in labelled if r["doc_id"] in scores]
        sc = np.array([scores[r["doc_id"]] for r in found], dtype=np.float32)
        y = np.array([r["is_agent_like"] for r in found], dtype=bool)
        at = precision_recall_at(sc, y, meta["threshold"])
        from sklearn.metrics import average_precision_score, roc_auc_score

        lines += [
            "## stage (train 2 cross-fitted models, score the corpus, choose the threshold)",
            f"seconds: {stage_s:.1f}; scored: {meta['n_scored']}; retrieved: {meta['n_retrieved']} "
            f"{meta['retrieved_by_source_table']}; threshold: {meta['threshold']:.4f} "
            f"(rule {meta['threshold_rule']})",
            f"seed (held out) vs general at the threshold: {meta['seed_vs_general_at_threshold']}",
            "",
            f"## labelled fixture ({len(found)} of {len(labelled)} documents found in this corpus; "
            f"{int(y.sum())} agent-like)",
            f"at the chosen threshold: precision {at['precision']:.3f}, recall {at['recall']:.3f}, "
            f"predicted {at['n_predicted']}",
            f"ranking: ROC AUC {roc_auc_score(y, sc):.3f}, average precision {average_precision_score(y, sc):.3f} "
            f"(base rate {y.mean():.3f})",
            "",
        ]

        # throughput: the same heads, repeated to n_docs
        texts = [r["text"] or "" for t, d in general for r in _iter_docs([d], ["text"])]
        docs = (texts * (args.n_docs // max(1, len(texts)) + 1))[: args.n_docs]
        feats = cfg.features.model_dump()
        batch = cfg.batch_size
        items = [
            (
                str(out / "models.npz"),
                feats,
                [i % cfg.folds for i in range(len(docs[s : s + batch]))],
                docs[s : s + batch],
            )
            for s in range(0, len(docs), batch)
        ]
        list(ordered_map(_score_batch, items[:2], args.workers))  # start the pool's workers once
        t0 = time.perf_counter()
        n = sum(len(s) for s in ordered_map(_score_batch, items, args.workers))
        ours_s = time.perf_counter() - t0

        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        heads = [t[: cfg.features.max_chars] for t in texts]
        tf = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b|[^\w\s]").fit(heads)
        labels = np.array([i % 2 for i in range(len(heads))])  # throughput only: any fitted model will do
        clf = LogisticRegression(max_iter=200).fit(tf.transform(heads), labels)
        t0 = time.perf_counter()
        base = clf.predict_proba(tf.transform([t[: cfg.features.max_chars] for t in docs]))[:, 1]
        base_s = time.perf_counter() - t0
        assert len(base) == n == len(docs)
        lines += [
            f"## scoring throughput ({len(docs)} documents, first {cfg.features.max_chars} characters each)",
            "| scorer | processes | seconds | documents/s |",
            "|---|---|---|---|",
            f"| ours: HashingVectorizer + dot product, batches of {batch} | {args.workers} | {ours_s:.2f} | {n / ours_s:,.0f} |",
            f"| baseline: TfidfVectorizer (fitted vocabulary) + LogisticRegression.predict_proba | 1 | {base_s:.2f} | {n / base_s:,.0f} |",
            f"ratio ours / baseline: {base_s / ours_s:.2f}x; target >= 5,000 documents/s: "
            f"{'met' if n / ours_s >= 5000 else 'NOT met'}",
        ]
        del weights
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
