"""backtests.paper.account: the typed settings read and write the account row exactly as attnbt
always has, so accounts made before the settings were typed keep stepping.

The two fixtures are the ``config`` text of accounts made by the code before the split (a CSV
and a Yahoo account; run ids, paths and the model hash replaced by @NAMES@)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from backtests import paper
from backtests.analysis.performance import infer_bars_per_year
from backtests.paper.account import AccountSettings
from data.sources import sample_path
from strategy.fractal import Costs, FractalParams

FIXTURES = Path(__file__).parent / "fixtures"
OLD_CSV = (FIXTURES / "paper_account_csv.json").read_text()
OLD_YAHOO = (FIXTURES / "paper_account_yahoo.json").read_text()
LINES = sample_path("EURUSD_H1").read_text().splitlines(keepends=True)
PARAMS = FractalParams(stop_buffer=0.0001, max_hold=6, threshold=0.4)     # as the fixtures'
COSTS = Costs(commission=0.00002, slippage=0.00001)


def stored(name: str, runs: Path) -> str:
    with sqlite3.connect(paper.account_dir(name, runs) / paper.JOURNAL) as db:
        return db.execute("SELECT config FROM account").fetchone()[0]


def filled(template: str, settings: AccountSettings) -> str:
    """The fixture with this run's ids, paths and hash (JSON-quoted as the old code wrote them)."""
    for key in ("source", "train_run", "train_path", "model_hash", "registry_run"):
        template = template.replace(json.dumps(f"@{key.upper()}@"),
                                    json.dumps(getattr(settings, key)))
    return template


def added(old_text: str, settings: AccountSettings, **changed) -> str:
    """What init writes now: the old text, ``changed`` values (the instrument of a source
    that names none is the model's, no longer the file's name), and the settings added since
    (where the instrument came from, the bars per year, the price decimals: the sample's 5) at
    the end."""
    values = json.loads(old_text) | changed
    values |= {"instrument_from": settings.instrument_from,
               "bars_per_year": settings.bars_per_year, "price_digits": 5}
    return json.dumps(values)


@pytest.mark.parametrize("text", [OLD_CSV, OLD_YAHOO])
def test_settings_read_and_write_the_stored_text_byte_for_byte(text):
    settings = AccountSettings.from_json(text)
    assert settings.to_json() == text
    assert isinstance(settings.params, FractalParams) and isinstance(settings.costs, Costs)
    assert settings.timeframe == pd.Timedelta(hours=1)
    assert settings.gap_allowance == pd.Timedelta(days=1)
    assert ("format" in json.loads(settings.to_json())) == (settings.kind == "csv")


def test_an_account_made_before_the_currency_was_pinned_reads_with_the_old_defaults():
    old = json.loads(OLD_CSV)
    del old["instrument"], old["account_currency"]
    settings = AccountSettings.from_dict(old)
    assert settings.instrument is None and settings.account_currency == "USD"


@pytest.mark.parametrize("change,says", [
    (lambda d: d.update(leverage_cap=3), "leverage_cap, which this attnbt does not know"),
    (lambda d: d.pop("cash"), "lack cash"),
    (lambda d: d["params"].update(bogus=1), "strategy settings cannot be read")])
def test_settings_it_cannot_read_are_one_clear_error(change, says):
    old = json.loads(OLD_CSV)
    change(old)
    with pytest.raises(paper.PaperError, match=says):
        AccountSettings.from_dict(old)


def test_settings_are_frozen():
    settings = AccountSettings.from_json(OLD_CSV)
    with pytest.raises(AttributeError):
        settings.cash = 1.0


def test_init_writes_what_the_old_code_wrote_and_old_accounts_step(trained_run, tmp_path,
                                                                    monkeypatch, eurusd):
    runs = Path(trained_run.root)
    csv = tmp_path / "grow.csv"
    csv.write_text("".join(LINES[:1 + 900]))
    paper.init("compat-new", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS,
               start="first")
    new = paper.read_account("compat-new", runs).account.settings
    assert stored("compat-new", runs) == added(filled(OLD_CSV, new), new, instrument="EURUSD")
    assert new.instrument_from == "the model's training data (sample:EURUSD_H1)"

    from data import yahoo as y

    monkeypatch.setenv("ATTNBT_CACHE", str(tmp_path / "cache"))
    path = y.cache_path("EURUSD=X", "1h")
    path.parent.mkdir(parents=True)
    eurusd.iloc[:900].to_parquet(path)
    paper.init("compat-yahoo", trained_run.id, "yahoo:EURUSD=X:1h", runs_dir=runs)
    yahoo = paper.read_account("compat-yahoo", runs).account.settings
    assert stored("compat-yahoo", runs) == added(filled(OLD_YAHOO, yahoo), yahoo)
    assert yahoo.instrument_from == "the source's name (yahoo:EURUSD=X:1h)"
    assert new.bars_per_year == yahoo.bars_per_year == pytest.approx(
        infer_bars_per_year(eurusd.index[:900]))

    # accounts whose row holds the old text, as written then (one from before the currency was
    # pinned) step to the same journal as the account made now
    for name, drop in (("compat-old", ()), ("compat-legacy", ("instrument", "account_currency"))):
        paper.init(name, trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS,
                   start="first")
        own = paper.read_account(name, runs).account.settings
        text = json.loads(filled(OLD_CSV, own))
        for key in drop:
            del text[key]
        with sqlite3.connect(paper.account_dir(name, runs) / paper.JOURNAL) as db:
            db.execute("UPDATE account SET config = ?", (json.dumps(text),))
    csv.write_text("".join(LINES[:1 + 950]))
    for name in ("compat-new", "compat-old", "compat-legacy"):
        assert paper.step(name, runs).new_bars == 950
    views = [paper.read_account(n, runs) for n in ("compat-new", "compat-old", "compat-legacy")]
    assert len(views[0].trades) > 5
    for view in views[1:]:
        pd.testing.assert_frame_equal(view.trades, views[0].trades, check_exact=True)
        pd.testing.assert_frame_equal(view.orders, views[0].orders, check_exact=True)
        pd.testing.assert_series_equal(view.equity, views[0].equity, check_exact=True)
    assert paper.status("compat-legacy", runs)["closed_trades"] == len(views[0].trades)
