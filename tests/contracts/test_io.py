"""Atomic directory writes (contracts.io): readers see the whole old or the whole new directory."""

from __future__ import annotations

import os

import pytest

from contracts import io


def test_atomic_directory_replaces_whole_directory(tmp_path):
    out = tmp_path / "d"
    with io.atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "b.txt").write_text("1")
    with io.atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and (out / "a.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_a_failed_write_leaves_the_old_directory(tmp_path):
    out = tmp_path / "d"
    with io.atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), io.atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("killed halfway")
    assert (out / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # the temporary directory is gone


def test_a_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    out, new = tmp_path / "d", tmp_path / "new"
    out.mkdir()
    (out / "a.txt").write_text("old")
    new.mkdir()
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append((os.path.basename(src), os.path.basename(dst)))
        if len(calls) == 2:  # the new directory's rename in
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(OSError, match="disk gone"):
        io.swap_directory(new, out)
    assert (out / "a.txt").read_text() == "old" and len(calls) == 3  # aside, in (failed), back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "new"]
