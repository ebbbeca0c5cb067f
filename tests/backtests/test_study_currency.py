"""Walk-forward and sweep book costs and currency as `backtest` does: USD/XXX P&L converted to
the account currency at each bar's close (the same booking, checked fold by fold against a
backtest of that fold), crosses refused, and the costs charged stated in their reports."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic, write_csv
from typer.testing import CliRunner

import data
from backtests import sweep as swm
from backtests import walkforward as wfm
from backtests.analysis.baselines import buy_and_hold_equity
from backtests.cli import app
from backtests.config import Experiment
from backtests.simulation import run_backtest
from backtests.sweep import tasks as sweep_tasks
from backtests.walkforward import tasks as T
from strategy.fast import simulate_fast
from strategy.fractal import Costs, FractalParams

SMALL = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)   # 3 folds on 1,300 bars
POINT = 1e-5
SCALE = 0.8                      # prices about 0.88: USD per CHF (1 / close) about 1.14


def _usdxxx_csv(folder, name: str = "USDCHF_H1.csv", n: int = 1300, seed: int = 5) -> str:
    """A USD/XXX file with a per-bar spread column (points)."""
    c = synthetic(n, seed=seed)
    for k in ("open", "high", "low", "close"):
        c[k] *= SCALE
    c["spread"] = np.random.default_rng(seed).integers(8, 25, n).astype(float)
    return write_csv(c, folder / name)


def _load(csv: str) -> pd.DataFrame:
    return data.load(csv, point=POINT)


def _fake_probs(candles: pd.DataFrame, edge: float = 0.3) -> pd.DataFrame:
    """Probabilities that know the next 4 bars' direction with strength ``edge`` (a function of
    the candles only, so a test can rebuild them)."""
    rng = np.random.default_rng(7)
    future = candles["close"].shift(-4).to_numpy() - candles["close"].to_numpy()
    p = rng.dirichlet([2.0, 1.0, 1.0], len(candles))
    tilt = np.sign(np.nan_to_num(future)) * edge
    p[:, 1] += np.clip(tilt, 0, None)
    p[:, 2] += np.clip(-tilt, 0, None)
    p /= p.sum(axis=1, keepdims=True)
    return pd.DataFrame(p, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def _fake_model(monkeypatch, module) -> None:
    """Replace training and prediction in ``module`` (no network is trained)."""
    def train(task, candles):
        return SimpleNamespace(spec=task.exp.dataset, meta={},     # meta: no calibration map
                               metrics={"best_epoch": 1, "epochs_run": 1, "seconds": 0.0})

    def predict(trained, candles, first, last, dataset=None):
        out = _fake_probs(candles).to_numpy().copy()
        out[:first] = np.nan
        out[last + 1:] = np.nan
        return pd.DataFrame(out, index=candles.index, columns=["p_none", "p_buy", "p_sell"])

    monkeypatch.setattr(module, "train_fold", train)
    monkeypatch.setattr(module, "predict_bars", predict)


def _base(runs, account: str, **settings) -> Experiment:
    return Experiment().override({"runtime.runs_dir": str(runs), "data.point": POINT,
                                  "data.account_currency": account, **settings})


def _walkforward(csv, runs, account: str) -> wfm.Outcome:
    base = _base(runs, account)
    wf = wfm.WalkForward(base=base, sources=[csv], models=[("dense", "matched")], seeds=[0],
                         plan=SMALL, workers=1, device="cpu")
    return wfm.run(wf)


def _task_results(run) -> list[dict]:
    out = [json.loads(p.read_text()) for p in (run.path / "tasks").glob("*.json")]
    return sorted(out, key=lambda r: r["times"][0])


def _ratio_check(converted: float, plain: float, rate: np.ndarray, what: str) -> None:
    """Converted P&L is the plain P&L at the fold's rates: the ratio lies within the rates'
    range (1 / close moves well under 2 % over a 200-bar test part of this walk)."""
    ratio = converted / plain
    lo, hi = float(rate.min()), float(rate.max())
    assert lo * 0.99 <= ratio <= hi * 1.01, (
        f"{what}: converted / unconverted P&L = {ratio:.5f}, rates {lo:.5f} … {hi:.5f}")


@pytest.fixture(scope="module")
def usd_walkforward(tmp_path_factory) -> tuple[str, wfm.Outcome]:
    """The 1,300-bar USD/CHF file and its walk-forward for a USD account with the fake model
    (the same run for the two tests that read it)."""
    folder = tmp_path_factory.mktemp("usd-walkforward")
    csv = _usdxxx_csv(folder)
    with pytest.MonkeyPatch.context() as m:
        _fake_model(m, T)
        return csv, _walkforward(csv, folder / "usd", "USD")


@pytest.mark.slow
def test_walkforward_books_usdxxx_pnl_as_a_backtest_of_the_fold(usd_walkforward, tmp_path,
                                                                monkeypatch):
    csv, usd_run = usd_walkforward
    candles = _load(csv)
    probs = _fake_probs(candles)
    _fake_model(monkeypatch, T)
    usd = _task_results(usd_run.run)
    chf = _task_results(_walkforward(csv, tmp_path / "chf", "CHF").run)
    assert len(usd) == len(chf) == 3
    compared = 0
    for account, results in (("USD", usd), ("CHF", chf)):
        for r in results:
            first = candles.index.get_loc(pd.Timestamp(r["times"][0]))
            last = candles.index.get_loc(pd.Timestamp(r["times"][-1]))
            bars = candles.iloc[first:last + 1]
            rate = 1 / bars["close"].to_numpy() if account == "USD" else None
            params = FractalParams(threshold=r["threshold"])
            bt = run_backtest(bars, probs.iloc[first:last + 1], params, Costs(), 100_000.0,
                              rates=rate)
            assert len(bt.trades) > 0
            np.testing.assert_allclose(r["equity"], bt.equity.to_numpy(), rtol=1e-12,
                                       err_msg=f"{account} fold {r['task']['fold']}")
            # the threshold was chosen on validation bars booked the same way
            v_first = first - SMALL.val_bars
            vbars = candles.iloc[v_first:first]
            vrate = 1 / vbars["close"].to_numpy() if account == "USD" else None
            for row in r["threshold_table"]:
                _, eq = simulate_fast(vbars, probs.iloc[v_first:first],
                                      FractalParams(threshold=row["threshold"]), Costs(),
                                      100_000.0, rates=vrate)
                assert row["validation return %"] == pytest.approx(
                    100 * (eq.iloc[-1] / 100_000.0 - 1), rel=1e-9, abs=1e-12)
    for a, b in zip(usd, chf, strict=True):
        if a["threshold"] != b["threshold"]:
            continue
        compared += 1
        bars = candles.loc[a["times"][0]:a["times"][-1]]
        _ratio_check(a["equity"][-1] - 1e5, b["equity"][-1] - 1e5,
                     1 / bars["close"].to_numpy(), f"fold {a['task']['fold']}")
    assert compared >= 1


@pytest.mark.slow
def test_sweep_books_usdxxx_pnl_as_a_backtest_of_the_fold(tmp_path, monkeypatch):
    csv = _usdxxx_csv(tmp_path, n=1400, seed=6)
    candles = _load(csv)
    probs = _fake_probs(candles)
    _fake_model(monkeypatch, sweep_tasks)
    grid = ["threshold=0.4,0.5", "stop=bar,atr:1.5"]
    runs = {}
    for account in ("USD", "CHF"):
        base = _base(tmp_path / account, account, **{"data.source": csv})
        sw = swm.Sweep(base=base, source=csv, models=[("attention", "article")], seeds=[0],
                       grid=swm.parse_grid(grid, base), plan=SMALL, top=2)
        runs[account] = swm.run(sw)
    rules = swm.rule_sets(_base(tmp_path, "USD"), swm.parse_grid(
        grid, Experiment()).rule_combos())
    by_account = {a: _task_results(o.run) for a, o in runs.items()}
    for account, results in by_account.items():
        payload = json.loads((runs[account].run.path / "sweep.json").read_text())
        assert all(t["agree"] for t in payload["backtrader"]), payload["backtrader"]
        for r in results:
            bars = candles.iloc[r["first"]:r["last"] + 1]
            rate = 1 / bars["close"].to_numpy() if account == "USD" else None
            for rule, got in zip(rules, r["combos"], strict=True):
                bt = run_backtest(bars, probs.iloc[r["first"]:r["last"] + 1], rule.params,
                                  rule.costs, rule.cash, rates=rate)
                assert got["final"] == pytest.approx(bt.equity.iloc[-1], rel=1e-12), account
                assert got["n_trades"] == len(bt.trades)
                assert got["wins"] == int((bt.trades["pnl_net"] > 0).sum())
        # the buy-and-hold benchmark of the SPA test is booked the same way (first fold)
        first = results[0]
        bars = candles.iloc[first["first"]:first["last"] + 1]
        bh, _ = buy_and_hold_equity(bars, Costs(), 100_000.0,
                                    rates=1 / bars["close"].to_numpy() if account == "USD"
                                    else None)
        equity = pd.read_csv(runs[account].run.path / "equity.csv")
        np.testing.assert_allclose(equity["buy_and_hold"].to_numpy()[:len(bars)], bh.to_numpy(),
                                   rtol=1e-9, err_msg=account)
    compared = 0
    for a, b in zip(by_account["USD"], by_account["CHF"], strict=True):
        bars = candles.iloc[a["first"]:a["last"] + 1]
        for ca, cb in zip(a["combos"], b["combos"], strict=True):
            if cb["n_trades"] and abs(cb["final"] - 1e5) > 50:
                compared += 1
                _ratio_check(ca["final"] - 1e5, cb["final"] - 1e5,
                             1 / bars["close"].to_numpy(), "sweep combination")
    assert compared >= 1


@pytest.mark.slow
def test_walkforward_report_and_json_state_the_costs_charged(usd_walkforward):
    csv, out = usd_walkforward
    candles = _load(csv)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    (c,) = payload["costs_charged"].values()
    test_bars = pd.concat([candles.loc[r["times"][0]:r["times"][-1]]
                           for r in _task_results(out.run)])
    assert c["spread_mean"] == pytest.approx(test_bars["spread"].mean(), rel=1e-12)
    assert c["spread_min"] == pytest.approx(test_bars["spread"].min(), rel=1e-12)
    assert c["spread_max"] == pytest.approx(test_bars["spread"].max(), rel=1e-12)
    assert c["spread_source"] == "the data's per-bar spread column"
    assert c["commission_per_unit_per_side"] == 0 and c["slippage"] == 0
    assert c["account_currency"] == "USD"
    assert "converted to USD at each bar's close" in c["pnl_conversion"]
    # the money each model's trades paid, summed over its folds (one seed): a backtest of
    # each fold with its threshold, booked in USD
    probs = _fake_probs(candles)
    expected = {"total_spread_cost": 0.0, "total_costs": 0.0}
    for r in _task_results(out.run):
        bars = candles.loc[r["times"][0]:r["times"][-1]]
        trades = run_backtest(bars, probs.loc[bars.index], FractalParams(threshold=r["threshold"]),
                              Costs(), 100_000.0, rates=1 / bars["close"].to_numpy()).trades
        expected["total_spread_cost"] += trades["spread_cost"].sum()
        expected["total_costs"] += trades["costs"].sum()
    charged = c["charged_per_seed"]["dense/matched"]
    assert expected["total_costs"] > 0
    for key, value in expected.items():
        assert charged[key] == pytest.approx(value, rel=1e-9), key
    html = " ".join((out.run.path / "report.html").read_text().split())
    for text in ("Costs charged", "per bar from the data&#x27;s per-bar spread column: mean",
                 "commission", "slippage", "account currency",
                 "USDCHF: P&amp;L in CHF converted to USD at each bar&#x27;s close"):
        assert text in html, text


@pytest.mark.slow
def test_sweep_report_and_json_state_the_costs_charged(tmp_path, monkeypatch):
    csv = _usdxxx_csv(tmp_path, n=1400, seed=6)
    candles = _load(csv)
    _fake_model(monkeypatch, sweep_tasks)
    base = _base(tmp_path / "runs", "USD", **{"data.source": csv, "costs.commission": 2e-5})
    sw = swm.Sweep(base=base, source=csv, models=[("attention", "article")], seeds=[0],
                   grid=swm.parse_grid(["threshold=0.4,0.5"], base), plan=SMALL, top=1)
    out = swm.run(sw)
    payload = json.loads((out.run.path / "sweep.json").read_text())
    c = payload["costs_charged"]
    results = _task_results(out.run)
    test_bars = pd.concat([candles.iloc[r["first"]:r["last"] + 1] for r in results])
    assert c["spread_mean"] == pytest.approx(test_bars["spread"].mean(), rel=1e-12)
    assert c["spread_source"] == "the data's per-bar spread column"
    assert c["commission_per_unit_per_side"] == 2e-5
    assert c["account_currency"] == "USD" and "converted to USD" in c["pnl_conversion"]
    # the best combination's costs, summed over its folds (backtrader re-run), per seed
    best = payload["best"]
    k = [swm.combo_label(rc) for rc in sw.grid.rule_combos()].index(best["rules"])
    rule = swm.rule_sets(base, sw.grid.rule_combos())[k]
    expected = 0.0
    for r in results:
        bars = candles.iloc[r["first"]:r["last"] + 1]
        probs = pd.DataFrame(np.asarray(r["probs"]), index=bars.index,
                             columns=["p_none", "p_buy", "p_sell"])
        expected += run_backtest(bars, probs, rule.params, rule.costs, rule.cash,
                                 rates=1 / bars["close"].to_numpy()).trades["costs"].sum()
    assert c["total_costs"] == pytest.approx(expected, rel=1e-9) and expected > 0
    html = " ".join((out.run.path / "report.html").read_text().split())
    for text in ("Costs charged", "per bar from the data&#x27;s per-bar spread column: mean",
                 "commission", "slippage", "account currency",
                 "USDCHF: P&amp;L in CHF converted to USD at each bar&#x27;s close"):
        assert text in html, text


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("command", ["walkforward", "sweep"])
def test_cli_takes_the_account_currency_and_refuses_a_cross(command, tmp_path):
    csv = _usdxxx_csv(tmp_path)
    args = [command, "--data", csv, "--train-bars", "500", "--val-bars", "200",
            "--test-bars", "200", "--runs-dir", str(tmp_path / "runs"), "--dry-run",
            "point=0.00001"]
    if command == "sweep":
        args += ["--grid", "threshold=0.4,0.5"]
    else:
        args += ["--models", "dense", "--seeds", "1"]
    ok = CliRunner().invoke(app, [*args, "--account-currency", "CHF"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, [*args, "--account-currency", "EUR"])
    assert bad.exit_code != 0
    assert "USDCHF makes P&L in CHF, and the account is in EUR" in str(bad.exception)
    named = CliRunner().invoke(app, [*args, "--instrument", "EURGBP"])
    assert named.exit_code != 0 and "EURGBP makes P&L in GBP" in str(named.exception)


def test_instrument_with_several_sources_is_refused(tmp_path):
    from backtests.config import ConfigError

    a = _usdxxx_csv(tmp_path, "USDCHF_H1.csv")
    b = _usdxxx_csv(tmp_path, "USDJPY_H1.csv")
    wf = wfm.WalkForward(base=_base(tmp_path, "USD", **{"data.instrument": "USDCHF"}),
                         sources=[a, b], models=[("dense", "matched")], seeds=[0], plan=SMALL)
    with pytest.raises(ConfigError, match="data.instrument USDCHF names the pair of one source"):
        wfm.plan(wf)
