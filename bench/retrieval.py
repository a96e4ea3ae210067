"""Retrieval classifier: precision/recall on the labelled fixture and scoring throughput on 2 cores,
the profile's configuration beside the previous one and a named baseline, in one run.

    python bench/retrieval.py --data .hephaestus/default/data --out bench/results/2026-12-02_retrieval_cpu-2core.txt

1. Runs the retrieval stage (``forge.text.retrieval``) on the profile's raw Parquet (seed agent
   documents vs code + text documents) twice: with the ``default`` profile's ``retrieval`` section
   (what the pipeline runs) and with the features and model of 2026-12-01 (word unigram counts,
   seed positives, one fit; its rule min_precision 0.5). Both read the labelled fixture
   (``tests/fixtures/retrieval/labelled.jsonl``): it is never a negative, each document is scored
   by the model of its fold, the threshold is chosen on its calibration split only (for the
   profile's configuration), and precision and recall are reported on its **test split**, which
   chose nothing.
2. Throughput of scoring the general corpus (repeated to ``--n-docs`` documents), the machine's
   load average printed before and after:
   - ours: the stage's scorer (``forge.text.retrieval._score_batch``: hashed features + a dot
     product), batches over ``--workers`` processes, with the profile's features;
   - ours, one process (what one core does);
   - baseline: scikit-learn's usual pipeline, ``TfidfVectorizer`` (a fitted vocabulary, unhashed)
     + ``LogisticRegression.predict_proba``, same documents and heads, one process
     (scikit-learn's text transform is single-threaded).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.profile import load_settings  # noqa: E402  (profile YAML only: no Dagster)
from forge.core.parallel import ordered_map  # noqa: E402
from forge.text.retrieval import (  # noqa: E402
    RetrievalConfig,
    RetrievalFeatures,
    ThresholdRule,
    _iter_docs,
    _score_batch,
    retrieve,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests/fixtures/retrieval/labelled.jsonl"
#: the configuration measured on 2026-12-01 (bench/results/2026-12-01_retrieval_cpu-2core.txt)
PREVIOUS = RetrievalConfig(
    enabled=True,
    features=RetrievalFeatures(max_chars=2000, ngram_max=1, n_features_log2=20),
    threshold=ThresholdRule(rule="min_precision", min_precision=0.5),
)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def stage_rows(name: str, cfg: RetrievalConfig, raw: Path, general, out: Path) -> tuple[list[str], dict]:
    t0 = time.perf_counter()
    meta = retrieve(
        cfg, seed_dirs=[raw / "agent_documents"], general=general, out_dir=out, labelled_path=FIXTURE
    )
    secs = time.perf_counter() - t0
    lines = [
        f"### {name}",
        f"config: {cfg.model_dump_json(exclude={'labelled', 'batch_size', 'workers'})}",
        f"seconds {secs:.1f}; scored {meta['n_scored']}; retrieved {meta['n_retrieved']} "
        f"{meta['retrieved_by_source_table']}; threshold {meta['threshold']:.4f} chosen on "
        f"{meta['threshold_source']}",
        "| labelled split | documents | agent-like | predicted | precision | recall | avg precision | ROC AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, m in meta["labelled"].items():
        lines.append(
            f"| {split} | {m['n']} | {m['n_positive']} | {m['n_predicted']} | {_fmt(m['precision'])} | "
            f"{_fmt(m['recall'])} | {_fmt(m['average_precision'])} | {_fmt(m['roc_auc'])} |"
        )
    print("\n".join(lines), flush=True)
    return [*lines, ""], meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(".hephaestus/default/data"))
    ap.add_argument("--profile", default="default")
    ap.add_argument("--n-docs", type=int, default=40_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    raw = args.data / "raw"
    general = [("code_documents", raw / "code_documents"), ("text_documents", raw / "text_documents")]
    ours = load_settings(args.profile).retrieval.model_copy(update={"enabled": True, "workers": args.workers})
    lines = [
        f"# retrieval classifier — {date.today().isoformat()} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}",
        f"data: {args.data} (positives = raw/agent_documents: positives 'seed' = is_seed rows, 'agent' = all; "
        "general = raw/code_documents + raw/text_documents)",
        f"labelled: {FIXTURE.relative_to(REPO)} (threshold chosen on the calibration split, "
        f"{ours.labelled_calibration_pct}% by doc_id hash; the test split chose nothing)",
        f"at start: {load()}",
        "",
        "## precision and recall on the labelled fixture (held-out test split)",
        "",
    ]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "retrieval"
        rows, meta = stage_rows(f"profile '{args.profile}' (what the pipeline runs)", ours, raw, general, out)
        lines += rows
        prev_rows, _ = stage_rows(
            "2026-12-01 features and model (unigram counts, seed positives, one fit; threshold by its rule, min_precision 0.5, on the same calibration split)",
            PREVIOUS.model_copy(update={"workers": args.workers}),
            raw,
            general,
            Path(tmp) / "previous",
        )
        lines += prev_rows

        # throughput: the same heads, repeated to n_docs, scored with the profile's models
        texts = [r["text"] or "" for _t, d in general for r in _iter_docs([d], ["text"])]
        docs = (texts * (args.n_docs // max(1, len(texts)) + 1))[: args.n_docs]
        feats = ours.features.model_dump()
        batch = ours.batch_size
        items = [
            (str(out / "models.npz"), feats, [i % ours.folds for i in range(len(chunk))], chunk)
            for chunk in (docs[s : s + batch] for s in range(0, len(docs), batch))
        ]
        lines += [
            f"## scoring throughput ({len(docs)} documents, first {ours.features.max_chars} characters each)"
        ]
        lines += [f"before: {load()}", ""]
        list(ordered_map(_score_batch, items[:2], args.workers))  # start the pool's workers once
        t0 = time.perf_counter()
        n = sum(len(s) for s in ordered_map(_score_batch, items, args.workers))
        ours_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        n1 = sum(len(_score_batch(it)) for it in items)
        one_s, one_cpu = time.perf_counter() - t0, time.process_time() - c0

        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        mc = ours.features.max_chars
        heads = [t[:mc] for t in texts]
        tf = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b|[^\w\s]").fit(heads)
        labels = np.array([i % 2 for i in range(len(heads))])  # throughput only: any fitted model will do
        clf = LogisticRegression(max_iter=200).fit(tf.transform(heads), labels)
        t0, c0 = time.perf_counter(), time.process_time()
        base = clf.predict_proba(tf.transform([t[:mc] for t in docs]))[:, 1]
        base_s, base_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert len(base) == n == n1 == len(docs)
        rate = n / ours_s
        lines += [
            "| scorer | processes | seconds | documents/s | CPU seconds | documents per CPU second |",
            "|---|---|---|---|---|---|",
            f"| ours: HashingVectorizer + dot product, batches of {batch} (pool started in the timing) "
            f"| {args.workers} | {ours_s:.2f} | {rate:,.0f} | - | - |",
            f"| ours, one process | 1 | {one_s:.2f} | {n / one_s:,.0f} | {one_cpu:.2f} | {n / one_cpu:,.0f} |",
            f"| baseline: TfidfVectorizer (fitted vocabulary, unigrams) + LogisticRegression.predict_proba | 1 "
            f"| {base_s:.2f} | {n / base_s:,.0f} | {base_cpu:.2f} | {n / base_cpu:,.0f} |",
            f"ratio ours / baseline (wall clock): {base_s / ours_s:.2f}x with {args.workers} processes, "
            f"{base_s / one_s:.2f}x with one; per CPU second {base_cpu / one_cpu:.2f}x",
            f"ours / 5,000 documents/s target (wall clock, {args.workers} processes): {rate / 5000:.2f}x "
            f"({'met' if rate >= 5000 else 'NOT met'}); 2 idle cores at ours' documents per CPU second "
            f"would give {2 * n / one_cpu:,.0f}/s (an upper bound, not a measurement)",
            f"after: {load()}",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
