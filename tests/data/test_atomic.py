"""The one atomic writer: an interrupted write leaves the old content (or nothing), never a
cut-off file or a stray temp file; the file and its folder are fsync'd; the writers use it."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from data import atomic
from data.atomic import atomic_write


@pytest.fixture
def fsyncs(monkeypatch):
    """Count os.fsync calls (file descriptors of what was synced)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def _left(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_new_content_and_syncs_the_file_and_its_folder(tmp_path, fsyncs):
    target = tmp_path / "sub" / "a.json"
    assert atomic_write(target, b"new") == target
    assert target.read_bytes() == b"new" and _left(target.parent) == ["a.json"]
    assert len(fsyncs) == 2                      # the file, then the folder after the rename


def test_a_failed_rename_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", no_rename)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and _left(tmp_path) == ["a.json"]


def test_an_error_mid_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "frame.csv"
    target.write_text("old\n")

    def half(path):
        path.write_text("time,clo")                  # cut off, then the writer fails
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half)
    assert target.read_text() == "old\n" and _left(tmp_path) == ["frame.csv"]


def test_a_failed_sync_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and _left(tmp_path) == ["a.bin"]


def test_a_path_writer_is_synced_too(tmp_path, fsyncs):
    target = tmp_path / "f.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(target)
    atomic_write(target, pd.DataFrame({"x": [3]}).to_parquet)
    assert pd.read_parquet(target)["x"].tolist() == [3] and len(fsyncs) == 2
    assert _left(tmp_path) == ["f.parquet"]


def test_the_writers_sync_what_they_write(tmp_path, fsyncs):
    """The run store, a standalone HTML page and a model's meta all go through the one writer
    (before it, only the run store synced, and not the folder)."""
    from backtests.compare import write_html
    from backtests.store import Registry

    run = Registry(tmp_path / "runs").create("train")
    fsyncs.clear()
    run.write_text("notes.txt", "x")
    assert len(fsyncs) == 2
    fsyncs.clear()
    write_html(tmp_path / "page.html", "<p>x</p>")
    assert len(fsyncs) == 2 and (tmp_path / "page.html").read_text() == "<p>x</p>"
