"""``hephaestus trace SHARD OFFSET``: which document a packed token came from, and that document's
source URL or dataset row.

Reads the span index packed beside the shards (``spans.parquet``); the lineage columns come from
the warehouse's ``fct_corpus_documents`` with ``--warehouse``, else from the copy packed beside the
shards (``documents.parquet``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import UserError, emit, existing_path, non_negative_int


def _trace(args: argparse.Namespace) -> int:
    from forge.corpus.lineage import trace_token

    shard = str(args.shard)
    if args.packed is not None:
        packed = Path(args.packed)
    elif Path(shard).is_file():
        packed = Path(shard).parent
    else:
        raise UserError(f"{shard}: not a shard file; give the packed directory with --packed")
    try:
        info = trace_token(packed, Path(shard).name, args.offset, warehouse=args.warehouse)
    except (ValueError, LookupError) as e:
        raise UserError(str(e)) from e
    lines = [
        f"{info['shard_path']} offset {args.offset}: token {info['token_id']}"
        + (f" {info['token_text']!r}" if info.get("token_text") is not None else ""),
        f"  doc_id            {info['doc_id']}",
        f"  category          {info['category']} / {info.get('subcategory') or '-'}",
        f"  token in document {info['token_in_document']} (epoch {info['epoch']}"
        + (", document cut to fill the budget)" if info["is_truncated"] else ")"),
        f"  source            {info.get('source_table') or '-'} row {info.get('source_row_id') or '-'}",
        f"  source_uri        {info.get('source_uri') or '-'}",
        f"  license           {info.get('license') or '-'}",
        f"  lineage from      {info['lineage_from']}",
    ]
    if info.get("context") is not None:
        lines.append(f"  context           {info['context']!r}")
    emit(args, info, "\n".join(lines))
    return 0


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "trace",
        parents=[common],
        help="the document, and its source URL or dataset row, of one token in a packed shard",
        description="Map a token of a packed shard (cpt_stage1_shards, cpt_stage2_shards) back to "
        "its document: doc_id, category, position in the document, and the source table, row and "
        "URL it was rendered from.",
        epilog="e.g. hephaestus trace .hephaestus/default/corpus/cpt_stage1_shards/shard_00000.bin 1234",
    )
    s.add_argument("shard", help="a shard file (DIR/shard_00000.bin), or its name or index with --packed")
    s.add_argument("offset", type=non_negative_int, help="the token's offset inside the shard, in tokens")
    s.add_argument("--packed", type=existing_path, help="the packed directory (default: the shard's own)")
    s.add_argument(
        "--warehouse",
        type=existing_path,
        help="DuckDB warehouse: read the lineage from fct_corpus_documents instead of the packed copy",
    )
    s.set_defaults(fn=_trace)
