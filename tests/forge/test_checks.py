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
