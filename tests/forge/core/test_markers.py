import pytest

from forge.core.io import fingerprint
from forge.core.markers import MARKER, is_fresh, read_marker, upstream_fingerprint, write_marker


def test_marker_round_trip_and_freshness(tmp_path):
    fp = fingerprint({"a": 1}, "upstream")
    assert not is_fresh(tmp_path, fp)
    write_marker(tmp_path, fp, {"n_rows": 3})
    assert is_fresh(tmp_path, fp)
    assert not is_fresh(tmp_path, fingerprint({"a": 2}, "upstream"))
    assert read_marker(tmp_path)["metadata"] == {"n_rows": 3}
    assert upstream_fingerprint(tmp_path) == fp


def test_corrupt_marker_means_not_done(tmp_path):
    (tmp_path / MARKER).write_text("{not json")
    assert read_marker(tmp_path) is None
    assert not is_fresh(tmp_path, "x")


def test_missing_upstream_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        upstream_fingerprint(tmp_path)


def test_fingerprint_is_order_insensitive_for_dict_keys_only():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint([1, 2]) != fingerprint([2, 1])
