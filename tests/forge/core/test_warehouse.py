import duckdb
import pytest

from forge.core.warehouse import fetch_all, iter_rows, table_fingerprint


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select * from (values (1, 'a'), (2, 'b'), (3, 'c')) v(id, s)")
    return path


def test_fingerprint_ignores_row_order_but_not_content(warehouse):
    before = table_fingerprint(warehouse, "t")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table t2 as select * from t order by id desc")
        con.execute("drop table t")
        con.execute("alter table t2 rename to t")
    assert table_fingerprint(warehouse, "t") == before
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update t set s = 'z' where id = 2")
    assert table_fingerprint(warehouse, "t") != before


def test_fingerprint_leaves_out_clock_columns(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table t add column fetched_at timestamp default now()")
    before = table_fingerprint(warehouse, "t")
    with duckdb.connect(str(warehouse)) as con:  # re-fetched: same content, another clock
        con.execute("update t set fetched_at = timestamp '2001-01-01'")
    assert table_fingerprint(warehouse, "t") == before
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update t set s = 'q' where id = 3")
    assert table_fingerprint(warehouse, "t") != before


def test_rows_stream_in_batches(warehouse):
    assert [r["id"] for r in iter_rows(warehouse, "select id from t order by id", batch_size=1)] == [1, 2, 3]
    assert fetch_all(warehouse, "select count(*) as n from t") == [{"n": 3}]


def test_missing_warehouse_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize the dbt models"):
        table_fingerprint(tmp_path / "nope.duckdb", "t")
