"""Fixtures of the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path: Path):
    """write(text, name="candles.csv", encoding="utf-8") -> path of a file in tmp_path."""

    def _write(text: str, name: str = "candles.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return _write
