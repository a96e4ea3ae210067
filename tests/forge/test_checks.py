import pandas as pd

from forge.checks import validate_dataframe


def _docs(**overrides):
    df = pd.DataFrame(
        {
            "doc_id": ["a", "b", "c"],
            "text": ["x" * 80, "y" * 90, "z" * 100],
            "category": ["agent", "code", "text"],
            "split": ["train", "train", "validation"],
            "source_uri": ["u1", "u2", "u3"],
            "n_tokens_est": [20, 23, 25],
        }
    )
    for col, values in overrides.items():
        df[col] = values
    return df


def test_clean_corpus_passes_every_expectation():
    result = validate_dataframe("fct_corpus_documents", _docs())
    assert result.success, result.summary()
    assert len(result.outcomes) >= 8


def test_failures_name_the_expectation_and_count_rows():
    result = validate_dataframe(
        "fct_corpus_documents", _docs(text=["short", "y" * 90, "tiny"], doc_id=["a", "a", "c"])
    )
    assert not result.success
    failed = {(o.expectation, o.column): o.unexpected_count for o in result.failed}
    assert failed[("expect_column_value_lengths_to_be_between", "text")] == 2
    assert failed[("expect_column_values_to_be_unique", "doc_id")] == 2
    assert "failed on 2 rows" in result.summary()


def test_missing_category_is_caught():
    result = validate_dataframe("fct_corpus_documents", _docs(category=["agent", "agent", "text"]))
    assert [o.expectation for o in result.failed] == ["expect_column_distinct_values_to_contain_set"]


def test_sft_messages_must_be_json():
    df = pd.DataFrame(
        {
            "example_id": ["1", "2"],
            "messages": ["[]", "{broken"],
            "tools": ["[]", "[]"],
            "pattern": ["simple", "simple"],
        }
    )
    result = validate_dataframe("fct_sft_examples", df)
    assert [(o.column, o.unexpected_count) for o in result.failed] == [("messages", 1)]


# --- drift against the previous materialization -------------------------------------------------
def _corpus(n: int = 400, agent_share: float = 1 / 3, chars: int = 200, seed: int = 0) -> pd.DataFrame:
    """A plausible fct_corpus_documents: categories by share, lengths around ``chars``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_agent = int(n * agent_share)
    cats = ["agent"] * n_agent + ["code", "text"] * ((n - n_agent) // 2)
    cats += ["text"] * (n - len(cats))
    lengths = rng.integers(chars // 2, chars * 2, size=n)
    return pd.DataFrame(
        {
            "doc_id": [f"d{seed}_{i}" for i in range(n)],
            "text": ["x" * int(k) for k in lengths],
            "category": cats,
            "subcategory": [{"agent": "api_doc", "code": "stdlib", "text": "readme"}[c] for c in cats],
            "split": ["train"] * n,
            "source_uri": ["u"] * n,
            "n_tokens_est": (lengths // 4).tolist(),
            "n_chars": lengths.tolist(),
        }
    )


def test_first_check_stores_the_baseline_and_a_normal_rebuild_passes(tmp_path):
    from forge.checks import check_mart

    baseline = tmp_path / "drift" / "fct_corpus_documents.json"
    first = check_mart("fct_corpus_documents", _corpus(seed=0), baseline)
    assert first.success, first.summary()
    assert baseline.exists()
    # a rebuild: other documents, same mixture, slightly different size
    again = check_mart("fct_corpus_documents", _corpus(n=430, seed=1), baseline)
    assert again.success, again.summary()
    assert sum(1 for o in again.outcomes if o.detail) >= 8  # drift expectations did run


def test_planted_drift_fails_names_the_share_and_keeps_the_old_baseline(tmp_path):
    from forge.checks import check_mart

    baseline = tmp_path / "fct_corpus_documents.json"
    assert check_mart("fct_corpus_documents", _corpus(seed=0), baseline).success
    stored = baseline.read_text()
    drifted = check_mart("fct_corpus_documents", _corpus(agent_share=0.7, seed=2), baseline)
    assert not drifted.success
    details = " ".join(o.detail or "" for o in drifted.failed)
    assert "share of category = 'agent' was 0.333" in details
    assert "share of subcategory = 'api_doc'" in details
    assert baseline.read_text() == stored  # a failing check does not move the baseline
    # still failing on the next run: the drift must be fixed or accepted
    assert not check_mart("fct_corpus_documents", _corpus(agent_share=0.7, seed=3), baseline).success


def test_length_and_row_count_drift_and_new_sources(tmp_path):
    from forge.checks import check_mart

    baseline = tmp_path / "b.json"
    assert check_mart("fct_corpus_documents", _corpus(seed=0), baseline).success
    longer = check_mart("fct_corpus_documents", _corpus(chars=800, seed=1), baseline)
    assert [o.expectation for o in longer.failed] == ["expect_column_quantile_values_to_be_between"]
    fewer = check_mart("fct_corpus_documents", _corpus(n=120, seed=1), baseline)
    assert [o.expectation for o in fewer.failed] == ["expect_table_row_count_to_be_between"]
    new_source = _corpus(seed=1)
    new_source.loc[:150, "subcategory"] = "debian_manual"
    failed = check_mart("fct_corpus_documents", new_source, baseline).failed
    assert any("never seen before" in (o.detail or "") for o in failed)


def test_small_tables_and_disabled_drift_are_not_checked(tmp_path):
    from forge.checks import check_mart
    from forge.checks_drift import DriftConfig

    baseline = tmp_path / "b.json"
    assert check_mart("fct_corpus_documents", _corpus(n=60, seed=0), baseline).success
    tiny = check_mart("fct_corpus_documents", _corpus(n=60, agent_share=0.8, seed=1), baseline)
    assert tiny.success and not any(o.detail for o in tiny.outcomes)
    big = tmp_path / "c.json"
    assert check_mart("fct_corpus_documents", _corpus(seed=0), big).success
    off = DriftConfig(enabled=False)
    assert check_mart("fct_corpus_documents", _corpus(agent_share=0.7, seed=1), big, drift=off).success


def test_every_mart_has_a_suite_and_a_drift_profile():
    from forge.checks import SUITE_TABLES, _expectations
    from forge.checks_drift import DRIFT_COLUMNS

    for table in SUITE_TABLES:
        assert _expectations(table, 50), table
        assert table in DRIFT_COLUMNS, table


def test_near_duplicate_clusters_suite():
    df = pd.DataFrame(
        {
            "cluster_id": ["a", "a", "c"],
            "doc_id": ["a", "b", "c"],
            "similarity_to_kept": [1.0, 0.9, 1.7],
            "n_cluster_documents": [2, 2, 1],
            "category": ["agent", "agent", "code"],
        }
    )
    result = validate_dataframe("fct_near_duplicate_clusters", df)
    assert {o.column for o in result.failed} == {"similarity_to_kept", "n_cluster_documents"}


def test_validation_draws_no_progress_bars(capfd):
    """GX's "Calculating Metrics" bars (drawn on stderr, whatever TQDM_DISABLE says) stay out of a run's output."""
    validate_dataframe("fct_corpus_documents", _docs())
    assert "Calculating Metrics" not in capfd.readouterr().err
