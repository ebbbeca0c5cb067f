"""`attnbt data show|fetch` as a user runs them (no network): through attnbt's entry point in this
process, and a usage error through a real `python -m backtests`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "fixtures" / "EURUSD_H1_mt5_export.csv"


def attnbt(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "ATTNBT_CACHE": str(cache or ROOT / "no-such-cache")}
    return subprocess.run([sys.executable, "-m", "backtests", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


@pytest.fixture
def data_cli(cli):
    """`attnbt ARGS` in this process, from the repository root, with its own Yahoo cache."""

    def run(*args: str, cache: Path | None = None):
        return cli(*args, env={"ATTNBT_CACHE": cache or ROOT / "no-such-cache"}, cwd=ROOT)

    return run


def assert_one_error_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_show_the_sample(data_cli):
    done = data_cli("data", "show", "sample:EURUSD_H1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"rows\s+│\s+5,000\s", out)
    assert "2017-04-19 09:00:00+00:00" in out and "2018-02-07 15:00:00+00:00" in out
    assert "labels (3bar)" in out
    assert "none 2,917" in out and "buy 1,029" in out and "sell 1,052" in out
    assert "1.07219" in out  # the first row is printed


def test_show_the_mt5_fixture_with_5bar_labels(data_cli):
    done = data_cli("data", "show", str(FIXTURE.relative_to(ROOT)), "--labels", "5bar",
                    "--rows", "2")
    assert done.returncode == 0, done.stderr
    assert re.search(r"rows\s+│\s+60\s", done.stdout)
    assert "spread" in done.stdout
    assert "labels (5bar)" in done.stdout
    assert "2017-04-21 10:00:00+00:00" in done.stdout


def test_show_swing_labels_and_a_bad_label_kind(data_cli):
    done = data_cli("data", "show", "sample:EURUSD_H1", "--labels", "swing", "--rows", "1")
    assert done.returncode == 0, done.stderr
    assert "labels (swing)" in done.stdout and "buy 815" in done.stdout
    assert "465 fractals not swings" in done.stdout
    done = data_cli("data", "show", "sample:EURUSD_H1", "--labels", "triple:1:1:24", "--rows", "1")
    assert done.returncode == 0, done.stderr
    assert "labels (triple:1:1:24)" in done.stdout and "38 unknown" in done.stdout  # 13 + 25
    assert "outside bars" not in done.stdout and "fractals not swings" not in done.stdout
    assert_one_error_line(data_cli("data", "show", "sample:EURUSD_H1", "--labels", "swing:2.0"),
                          "--labels: write label kind 'swing:2.0' as 'swing:2'")
    assert_one_error_line(data_cli("data", "show", "sample:EURUSD_H1", "--labels", "7bar"),
                          "unknown label kind '7bar'; choose 3bar, 5bar, swing")


def test_a_bad_file_is_one_error_line(data_cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,open,high,low,close\n"
                    "2024-01-01 00:00,1.10,1.12,1.09,1.11\n"
                    "2024-01-01 01:00,1.11,1.10,1.09,1.105\n")  # high below open
    done = data_cli("data", "show", str(path))
    assert done.returncode == 2
    assert_one_error_line(done, str(path), "line 3", "high below open/close")


def test_show_says_the_spread_point_its_evidence_and_warnings(data_cli, tmp_path):
    rows = [f"2025.06.02\t{h:02d}:00:00\t1.17{h:02d}0\t1.17{h:02d}5\t1.16{h:02d}5\t1.17{h:02d}2"
            f"\t100\t0\t{10 + h}" for h in range(24)] * 5
    rows = [r.replace("2025.06.02", f"2025.06.0{2 + i // 24}") for i, r in enumerate(rows)]
    rows[10] = rows[10].replace("\t1.17102\t", "\t1.171026\t")  # one close with six decimals
    path = tmp_path / "EURUSD_H1.csv"
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
                    + "\n".join(rows) + "\n")
    done = data_cli("data", "show", str(path), "--rows", "1")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.replace("│", " ").split())  # rich may wrap a long cell
    assert "spread point" in out and "point 1e-05: 99.8% of prices have 5 decimals" in out, out
    assert "line 12 has 6 decimals" in out and "warning" in out, out


def test_a_missing_file_is_one_error_line(data_cli, tmp_path):
    done = data_cli("data", "show", str(tmp_path / "nope.csv"))
    assert_one_error_line(done, "nope.csv", "no such file")


def test_unsorted_file_suggests_sort_and_sort_fixes_it(data_cli, tmp_path):
    path = tmp_path / "unsorted.csv"
    path.write_text("time,open,high,low,close\n"
                    "2024-01-01 01:00,1.10,1.12,1.09,1.11\n"
                    "2024-01-01 00:00,1.11,1.12,1.09,1.105\n"
                    "2024-01-01 02:00,1.11,1.12,1.09,1.105\n")
    assert_one_error_line(data_cli("data", "show", str(path)), "unsorted", "--sort")
    done = data_cli("data", "show", str(path), "--sort")
    assert done.returncode == 0, done.stderr
    assert "volume absent" in done.stdout


def test_unknown_timezone_is_one_error_line(data_cli):
    done = data_cli("data", "show", str(FIXTURE), "--tz", "Mars/Olympus")
    assert_one_error_line(done, "unknown timezone", "Mars/Olympus")


def test_yahoo_source_not_fetched_is_one_error_line(data_cli, tmp_path):
    done = data_cli("data", "show", "yahoo:EURUSD=X:1h", cache=tmp_path)
    assert_one_error_line(done, "not in the cache", "attnbt data fetch EURUSD=X")


def test_yahoo_cache_is_read_offline(data_cli, tmp_path):
    from data.yahoo import fetch

    bars = pd.read_csv(FIXTURE, sep="\t")  # any real bars will do; make them look like Yahoo's
    index = pd.date_range("2025-06-02", periods=len(bars), freq="h", tz="UTC")
    frame = pd.DataFrame({"Open": bars["<OPEN>"].to_numpy(), "High": bars["<HIGH>"].to_numpy(),
                          "Low": bars["<LOW>"].to_numpy(), "Close": bars["<CLOSE>"].to_numpy(),
                          "Volume": 0}, index=index)
    frame.columns = pd.MultiIndex.from_product([frame.columns, ["EURUSD=X"]],
                                               names=["Price", "Ticker"])

    def offline(*args, **kwargs):
        return frame

    fetch("EURUSD=X", "1h", "2025-06-02", "2025-06-05", cache_dir=tmp_path, downloader=offline,
          now=pd.Timestamp("2025-06-30", tz="UTC"))
    done = data_cli("data", "show", "yahoo:EURUSD=X:1h", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "yahoo:EURUSD=X:1h" in done.stdout
    assert re.search(r"rows\s+│\s+60\s", done.stdout)


@pytest.mark.parametrize(("args", "expected"), [
    (["--interval", "2h"], "unknown interval"),
    (["--start", "2015-01-01"], "730 days"),
])
def test_fetch_refuses_bad_requests_before_any_download(data_cli, tmp_path, args, expected):
    done = data_cli("data", "fetch", "EURUSD=X", *args, "--cache-dir", str(tmp_path))
    assert_one_error_line(done, expected)
    assert not any(tmp_path.rglob("*.parquet"))


@pytest.mark.slow   # starts `python -m backtests`
def test_usage_error_is_not_a_traceback():
    done = attnbt("data", "show")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "Missing argument" in done.stderr


def test_synth_writes_a_world_attnbt_loads_back_and_never_overwrites_silently(data_cli,
                                                                              tmp_path):
    from data import load
    from data.synth import generate

    out = tmp_path / "order.csv"
    done = data_cli("data", "synth", "order", "--seed", "3", "--bars", "400", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "planted: 1 bar, long after bear, small, bull" in done.stdout
    assert "gross 3.11 bps per trade, spread 1.04, net 2.08" in done.stdout
    assert "measured here:" in done.stdout
    world = generate("order", seed=3, bars=400)
    pd.testing.assert_frame_equal(load(out), world)
    before = out.read_bytes()
    assert_one_error_line(data_cli("data", "synth", "null", "--bars", "300", "--out", str(out)),
                          "exists", "--force")
    assert out.read_bytes() == before
    done = data_cli("data", "synth", "null", "--bars", "300", "--out", str(out), "--force")
    assert done.returncode == 0 and "planted: nothing" in done.stdout
    pd.testing.assert_frame_equal(load(out), generate("null", seed=0, bars=300))
    assert_one_error_line(data_cli("data", "synth", "trend", "--bars", "5", "--out",
                                   str(tmp_path / "t.csv")),
                          "unknown planted world 'trend'", "null, order, regime, session")
    assert not (tmp_path / "t.csv").exists()
