from pathlib import Path

from forge.core.io import read_parquet_rows
from forge.sources.webdocs import crawl_documentation

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "docsite"


def _crawl(tmp_path, crawls):
    return crawl_documentation(
        crawls, state_dir=tmp_path / "state", documents_dir=tmp_path / "documents", apis_dir=tmp_path / "apis"
    )


def test_served_site_is_crawled_and_its_signatures_extracted(tmp_path):
    meta = _crawl(
        tmp_path,
        [
            {
                "name": "toolkit",
                "serve_dir": str(SITE),
                "seeds": ["index.html"],
                "max_depth": 2,
                "max_pages": 20,
                "api_version": "1.0",
                "license": "MIT",
            }
        ],
    )
    assert meta["crawls"]["toolkit"]["pages_stored"] == 3 == meta["n_pages"]
    assert meta["n_api_signatures"] == 3
    docs = read_parquet_rows(tmp_path / "documents")
    assert sorted(d["uri"].rsplit("/", 1)[-1] for d in docs) == ["config.html", "index.html", "report.html"]
    apis = {r["function_name"]: r for r in read_parquet_rows(tmp_path / "apis")}
    assert set(apis) == {"toolkit.config.load", "toolkit.config.merge", "toolkit.report.render_table"}
    assert all(r["source"] == "web_docs" for r in apis.values())
    assert '"encoding"' in apis["toolkit.config.load"]["parameters"]


def test_rebuild_keeps_urls_stable_and_refetches_conditionally(tmp_path):
    spec = {"name": "toolkit", "serve_dir": str(SITE), "seeds": ["index.html"], "max_pages": 20}
    _crawl(tmp_path, [spec])
    first = sorted(d["uri"] for d in read_parquet_rows(tmp_path / "documents"))
    meta = _crawl(tmp_path, [spec])
    assert sorted(d["uri"] for d in read_parquet_rows(tmp_path / "documents")) == first
    assert meta["crawls"]["toolkit"]["pages_downloaded"] < 3  # unchanged pages answered 304


def test_missing_site_is_a_counted_skip_and_tables_stay_readable(tmp_path):
    meta = _crawl(tmp_path, [{"name": "gone", "serve_dir": str(tmp_path / "nope"), "seeds": ["index.html"]}])
    assert meta["skipped"] == {"serve_dir_missing": 1}
    assert "| (crawl) | serve_dir_missing | 1 |" in meta["skipped_md"]
    assert read_parquet_rows(tmp_path / "documents") == []
    assert read_parquet_rows(tmp_path / "apis") == []
