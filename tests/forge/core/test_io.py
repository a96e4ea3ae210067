import pyarrow.parquet as pq
import pytest

from contracts import tables as schemas
from forge.core.io import atomic_write_text, file_digest, read_parquet_rows, write_parquet


def _row(i):
    return {
        "item_id": str(i),
        "category": "c",
        "question": "[]",
        "functions": "[]",
        "ground_truth": None,
        "question_text": f"q {i}",
        "source_uri": "u",
    }


def test_write_parquet_streams_batches_and_counts(tmp_path):
    path = tmp_path / "t" / "part.parquet"
    n = write_parquet(path, (_row(i) for i in range(25)), schemas.BFCL_ITEMS, row_group_size=10)
    assert n == 25
    assert pq.read_metadata(path).num_row_groups == 3
    assert [r["item_id"] for r in read_parquet_rows(path.parent)] == [str(i) for i in range(25)]


def test_empty_input_writes_a_readable_file_with_the_schema(tmp_path):
    path = tmp_path / "empty.parquet"
    assert write_parquet(path, [], schemas.BFCL_ITEMS) == 0
    assert pq.read_schema(path).names == schemas.BFCL_ITEMS.names


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "p.parquet"
    write_parquet(path, [_row(1)], schemas.BFCL_ITEMS)

    def broken():
        yield _row(2)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_parquet(path, broken(), schemas.BFCL_ITEMS, row_group_size=1)
    assert [r["item_id"] for r in read_parquet_rows(path)] == ["1"]
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]  # no temporary left behind


def test_file_digest_changes_with_content(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    d1 = file_digest(tmp_path)
    atomic_write_text(tmp_path / "a.txt", "y")
    assert file_digest(tmp_path) != d1
