"""The statistics of backtests.analysis.significance: the papers' worked values, and calibration.

Calibration: on simulated returns with no edge, each test called significant at α = 0.05 in
between 2 % and 9 % of at least 500 draws (fixed seeds); with a planted edge its power is
stated here and checked. The shares printed in docs/walkforward.md come from these draws.
"""

import math

import numpy as np
import pytest

from backtests.analysis import significance as S

N_NULL = 500
# power draws of the two bootstrap tests (the costly ones): at their power (about 0.9) fewer
# than 75 of 100 happens with probability < 1e-8; a test with power 0.6 passes with p ≈ 0.001
N_POWER = 100
T = 500


def _pair(rng, n=T, rho=0.5, edge=0.0):
    """Two correlated return series on the same bars; ``a`` has ``edge`` more per-bar Sharpe."""
    z = rng.standard_normal((2, n))
    a = z[0]
    b = rho * z[0] + math.sqrt(1 - rho ** 2) * z[1]
    return 0.01 * (a + edge), 0.01 * b


def _trials(rng, n_trials=20, n=T, rho=0.0, edge=0.0):
    """``n_trials`` strategies on the same bars (pairwise correlation ``rho``); trial 0 has
    ``edge`` per-bar Sharpe; returns (returns of the best trial by Sharpe, all trials' Sharpe)."""
    common = rng.standard_normal(n)
    own = rng.standard_normal((n_trials, n))
    r = 0.01 * (math.sqrt(rho) * common + math.sqrt(1 - rho) * own)
    r[0] += 0.01 * edge
    srs = [S.sharpe(x) for x in r]
    return r[int(np.argmax(srs))], srs


# --- the papers' formulas and worked values -------------------------------------------------------
def test_dsr_paper_example():
    """Bailey & López de Prado (2014), the worked example: annualised SR 2.5 on T = 1,250 daily
    returns, skew -3, kurtosis 10, N = 100 trials with V[SR] = 0.5 (annualised) → DSR 0.9004."""
    per_year = 250
    sr0_annual = S.expected_max_sharpe(100, 0.5)
    assert sr0_annual == pytest.approx(1.7894, abs=1e-4)           # E[max SR] of 100 trials
    value = S.psr(2.5 / math.sqrt(per_year), 1250, -3, 10,
                  sr_star=sr0_annual / math.sqrt(per_year))
    assert value == pytest.approx(0.9004, abs=1e-4)
    # the same through dsr(), with V[SR] in per-bar units (annualised variance / 250)
    assert S.dsr(2.5 / math.sqrt(per_year), 1250, -3, 10, 100, 0.5 / per_year) == \
        pytest.approx(0.9004, abs=1e-4)


def test_psr_formula_cases():
    # at SR* = SR the probability is one half; normal returns: Φ(SR √(T-1) / √(1 + SR²/2))
    assert S.psr(0.1, 100, 0.5, 6, sr_star=0.1) == pytest.approx(0.5)
    from scipy.stats import norm
    assert S.psr(0.1, 101) == pytest.approx(norm.cdf(0.1 * 10 / math.sqrt(1 + 0.01 / 2)))
    # negative skew and fat tails widen the interval: lower PSR for a positive SR
    assert S.psr(0.1, 101, -1, 8) < S.psr(0.1, 101)
    assert math.isnan(S.psr(0.1, 1)) and S.expected_max_sharpe(1, 0.3) == 0.0
    # one trial: DSR = PSR
    r = np.random.default_rng(0).standard_normal(300) * 0.01 + 0.001
    out = S.dsr_from_trials(r, [S.sharpe(r)])
    assert out["dsr"] == pytest.approx(out["psr"]) and out["dsr_trials"] == 1


# The two moment functions before they became one (issue 17), frozen here as references.
def _old_backtest_return_moments(returns):
    r = np.asarray(returns, dtype=float)
    n = len(r)
    sd = r.std(ddof=1) if n > 1 else 0.0
    if n < 3 or sd == 0:
        return {"n_obs": n, "sharpe": None, "skew": None, "kurtosis": None}
    z = (r - r.mean()) / r.std(ddof=0)
    return {"n_obs": n, "sharpe": float(r.mean() / sd), "skew": float(np.mean(z ** 3)),
            "kurtosis": float(np.mean(z ** 4))}


def _old_significance_moments(returns):
    r = np.asarray(returns, dtype=float)
    n = len(r)
    sd0 = r.std() if n else 0.0
    if n < 3 or sd0 == 0:
        return {"n_obs": n, "sharpe": float("nan"), "skew": float("nan"),
                "kurtosis": float("nan")}
    z = (r - r.mean()) / sd0
    return {"n_obs": n, "sharpe": S.sharpe(r), "skew": float(np.mean(z ** 3)),
            "kurtosis": float(np.mean(z ** 4))}


MOMENT_SERIES = {
    "normal": np.random.default_rng(3).standard_normal(250) * 0.01 + 0.0005,
    "fat tails": np.random.default_rng(4).standard_t(3, 400) * 0.002,
    "skewed": np.random.default_rng(5).exponential(0.01, 120) - 0.008,
    "three": np.array([0.01, -0.02, 0.005]),
    "constant": np.full(50, 0.001),
    "flat (no trade)": np.zeros(30),
    "two": np.array([0.01, -0.01]),
    "one": np.array([0.003]),
    "empty": np.array([]),
}


@pytest.mark.parametrize("name", list(MOMENT_SERIES))
def test_one_moments_gives_both_former_call_sites_their_values(name, tmp_path):
    """``moments`` replaces backtest.return_moments (None when not defined) and the old
    significance.moments (NaN): the same numbers bit for bit, NaN for "not defined", and the
    backtest's trial row (add_trial(**moments)) holds what it held before (NULL when undefined)."""
    from backtests.store import Registry

    r = MOMENT_SERIES[name]
    new = S.moments(r)
    assert set(new) == {"n_obs", "sharpe_per_bar", "skew", "kurtosis"}
    renamed = {("sharpe" if k == "sharpe_per_bar" else k): v for k, v in new.items()}
    old_sig, old_bt = _old_significance_moments(r), _old_backtest_return_moments(r)
    for key, value in renamed.items():
        was = old_sig[key]
        assert (math.isnan(value) and math.isnan(was)) or value == was, (key, value, was)
        assert (None if value != value else value) == old_bt[key], (key, value, old_bt[key])
    reg = Registry(tmp_path)
    reg.add_trial(run_id="bt", kind="backtest", config_id=name, fingerprint="fp", **new)
    (row,) = reg.trials()
    assert [row[k] for k in ("n_obs", "sharpe_per_bar", "skew", "kurtosis")] == [
        old_bt[k] for k in ("n_obs", "sharpe", "skew", "kurtosis")]
    assert "sharpe" not in row                  # one meaning per key: per bar is sharpe_per_bar


def test_sharpe_difference_test_contract():
    a, b = _pair(np.random.default_rng(1), n=400, edge=0.3)
    out = S.sharpe_difference_test(a, b, n_boot=300)
    assert set(out) >= {"diff", "p_value", "ci", "block", "n_boot"}
    assert out["block"] == round(400 ** (1 / 3)) == 7 and out["n_boot"] == 300
    assert out["ci"][0] < out["diff"] < out["ci"][1] and out["p_value"] < 0.05
    assert out == S.sharpe_difference_test(a, b, n_boot=300)            # seeded
    assert S.sharpe_difference_test(a, b, n_boot=300, block=3)["block"] == 3
    assert S.block_length(1) == 1 and S.block_length(5000) == 17
    with pytest.raises(ValueError):
        S.sharpe_difference_test(a, b[:-1])


def test_stationary_indices_make_blocks():
    idx = S.stationary_indices(100, 50, 10, np.random.default_rng(0))
    assert idx.shape == (50, 100) and idx.min() >= 0 and idx.max() < 100
    steps = (np.diff(idx, axis=1) == 1) | (np.diff(idx, axis=1) == -99)
    assert 0.85 < steps.mean() < 0.95                      # a new block about 1 bar in 10


# --- calibration: share significant under the null, power with an edge -------------------------------
def _share(flags) -> float:
    return float(np.mean(flags))


def test_psr_null_and_power():
    rng = np.random.default_rng(10)
    null = []
    for _ in range(N_NULL):
        r = 0.01 * rng.standard_t(5, T)                  # fat-tailed, no edge
        m = S.moments(r)
        null.append(S.psr(m["sharpe_per_bar"], T, m["skew"], m["kurtosis"]) > 1 - S.ALPHA)
    assert 0.02 <= _share(null) <= 0.09, _share(null)
    power = []
    for _ in range(200):                                 # edge: per-bar SR 0.12 (≈ 9.5 a year on H1)
        r = 0.01 * (rng.standard_normal(T) + 0.12)
        m = S.moments(r)
        power.append(S.psr(m["sharpe_per_bar"], T, m["skew"], m["kurtosis"]) > 1 - S.ALPHA)
    assert _share(power) >= 0.75, _share(power)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_dsr_null_and_power():
    """Trials like the walk-forward's (seeds and models on the same bars: correlated, ρ = 0.8):
    the best of 20 unskilled trials is called significant in 2–9 % of draws. With independent
    trials the DSR is conservative by construction (its benchmark is the *expected* maximum):
    almost never significant."""
    rng = np.random.default_rng(11)
    null = [S.dsr_from_trials(*_trials(rng, rho=0.8))["dsr"] > 1 - S.ALPHA for _ in range(N_NULL)]
    assert 0.02 <= _share(null) <= 0.09, _share(null)
    independent = [S.dsr_from_trials(*_trials(rng, rho=0.0))["dsr"] > 1 - S.ALPHA
                   for _ in range(N_NULL)]
    assert _share(independent) <= 0.09
    power = [S.dsr_from_trials(*_trials(rng, rho=0.8, edge=0.2))["dsr"] > 1 - S.ALPHA
             for _ in range(200)]
    assert _share(power) >= 0.75, _share(power)


@pytest.mark.slow
def test_sharpe_difference_null_and_power():
    rng = np.random.default_rng(12)
    null = [S.sharpe_difference_test(*_pair(rng), n_boot=400, seed=i)["p_value"] < S.ALPHA
            for i in range(N_NULL)]
    assert 0.02 <= _share(null) <= 0.09, _share(null)
    power = [S.sharpe_difference_test(*_pair(rng, edge=0.15), n_boot=400, seed=i)["p_value"]
             < S.ALPHA for i in range(N_POWER)]
    assert _share(power) >= 0.75, _share(power)


@pytest.mark.slow
def test_spa_null_and_power():
    rng = np.random.default_rng(13)
    null = [S.spa_test(*_pair(rng)[::-1], reps=200, seed=i)["p_value"] < S.ALPHA
            for i in range(N_NULL)]
    assert 0.02 <= _share(null) <= 0.09, _share(null)
    power = [S.spa_test(*_pair(rng, edge=0.15)[::-1], reps=200, seed=i)["p_value"] < S.ALPHA
             for i in range(N_POWER)]
    assert _share(power) >= 0.75, _share(power)


def test_paired_test_null_and_power():
    """Differences per (seed, fold) with a shared fold effect: the test over fold means holds
    its level; treating the 50 pairs as independent would not."""
    rng = np.random.default_rng(14)
    folds = np.repeat(np.arange(10), 5)

    def draw(edge=0.0):
        return edge + rng.standard_normal(10)[folds] + 0.5 * rng.standard_normal(50)

    null = [S.paired_test(draw(), folds)["p_value"] < S.ALPHA for _ in range(N_NULL)]
    assert 0.02 <= _share(null) <= 0.09, _share(null)
    naive = [S.paired_test(draw())["p_value"] < S.ALPHA for _ in range(N_NULL)]
    assert _share(naive) > 0.15                          # why the folds are the clusters
    power = [S.paired_test(draw(1.2), folds)["p_value"] < S.ALPHA for _ in range(200)]
    assert _share(power) >= 0.75, _share(power)


def test_mean_ci():
    out = S.mean_ci([1.0, 2.0, 3.0])
    assert out["mean"] == 2 and out["ci"][0] < 2 < out["ci"][1] and out["n"] == 3
    assert math.isnan(S.mean_ci([1.0])["sd"])


# --- the verdict rule: the same evidence for "better" and "worse" ----------------------------------
def test_decide_is_the_same_rule_both_ways():
    a = 0.01
    assert S.decide(+0.1, a, a, 0.9) == "better" and S.decide(-0.1, a, 0.9, a) == "worse"
    # a significant Sharpe difference that SPA does not confirm is not a verdict either way
    assert S.decide(+0.1, a, 0.5, a) == "mixed" and S.decide(-0.1, a, a, 0.5) == "mixed"
    assert S.decide(+0.1, 0.2, a, a) == "none" and S.decide(-0.1, 0.2, a, a) == "none"
    assert S.decide(float("nan"), a, a, a) == "none" and S.decide(0.1, float("nan"), a, a) == "none"
    assert "the same both ways" in S.VERDICT_RULE and "SPA" in S.VERDICT_RULE


@pytest.mark.parametrize(("edge", "expected"), [(0.3, "better"), (-0.3, "worse"), (0.0, "none")])
def test_planted_edges_get_their_verdict_by_the_one_rule(edge, expected):
    """A with a planted per-bar Sharpe edge over B (positive, negative, none), and the mirror
    (B against A) gets the mirrored verdict from the same rule."""
    a, b = _pair(np.random.default_rng(5), n=T, edge=edge)
    ab = S.difference_verdict(a, b)
    ba = S.difference_verdict(b, a)
    mirror = {"better": "worse", "worse": "better", "none": "none", "mixed": "mixed"}
    assert ab["decision"] == expected, ab
    assert ba["decision"] == mirror[expected], ba
    assert ab["rule"] == S.VERDICT_RULE


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_no_edge_is_called_significant_either_way_at_about_alpha():
    """200 no-edge pairs of short series: the share called better or worse stays inside the
    99.9 % binomial interval of ALPHA (each draw: a Binomial(200, 0.05) count if calibrated)."""
    from scipy.stats import binom

    n_draws, rng = 200, np.random.default_rng(21)
    calls = [S.difference_verdict(*_pair(rng, n=300), n_boot=400, spa_reps=200, seed=i,
                                  both=False)["decision"] for i in range(n_draws)]
    hits = sum(c in ("better", "worse") for c in calls)
    lo, hi = binom.ppf(0.0005, n_draws, S.ALPHA), binom.isf(0.0005, n_draws, S.ALPHA)
    print(f"no edge: {hits} of {n_draws} called better/worse ({hits / n_draws:.1%}), "
          f"{calls.count('better')} better, {calls.count('worse')} worse, "
          f"{calls.count('mixed')} mixed; 99.9 % binomial interval at alpha {S.ALPHA}: "
          f"{lo:.0f}…{hi:.0f}")
    assert lo <= hits <= hi, (hits, lo, hi)


# --- a backtest's verdict against random entries ------------------------------------------------

@pytest.mark.parametrize("stats,baselines,in_sample,level,words", [
    ({"n_trades": 0, "total_return_pct": 0.0}, {}, False, "no_trades", "No trades"),
    ({"n_trades": 4, "total_return_pct": 1.0}, {}, False, "too_few", "Too few trades (4)"),
    ({"n_trades": 50, "total_return_pct": 1.0}, {}, False, "untested", "Not tested"),
    ({"n_trades": 50, "total_return_pct": 2.0}, {"p_value": 0.01, "median_return_pct": -0.5},
     False, "skill", "Evidence of skill after costs: return +2.00 % vs random entries' median "
                     "−0.50 % (p = 0.010)"),
    ({"n_trades": 50, "total_return_pct": -0.1}, {"p_value": 0.02, "median_return_pct": -2.0},
     False, "skill", "still losing after costs"),
    ({"n_trades": 50, "total_return_pct": 0.4}, {"p_value": 0.07, "median_return_pct": 0.0},
     False, "weak", "Weak evidence of skill, not significant at 5 %"),
    ({"n_trades": 618, "total_return_pct": -0.51}, {"p_value": 0.34, "median_return_pct": -0.66},
     False, "none", "No evidence of skill after costs: return −0.51 % vs random entries' median "
                    "−0.66 % (p = 0.34)"),
    ({"n_trades": 50, "total_return_pct": 3.0}, {"p_value": 0.5, "median_return_pct": 3.1},
     False, "none", "No evidence of skill"),        # a positive return alone is not skill
    ({"n_trades": 50, "total_return_pct": -3.0}, {"p_value": 0.97, "median_return_pct": 0.0},
     False, "worse", "Worse than random entries"),
    ({"n_trades": 50, "total_return_pct": 2.0}, {"p_value": 0.01, "median_return_pct": -0.5},
     True, "skill", "IN-SAMPLE"),
])
def test_verdict_rules(stats, baselines, in_sample, level, words):
    b = {"random_entries": baselines, "buy_and_hold": {"total_return_pct": 1.25}}
    v = S.backtest_verdict(stats, b, in_sample)
    assert v["level"] == level
    assert words in v["text"]
    assert v["text"].endswith(".")
    if stats["n_trades"]:
        assert "buy and hold +1.25 %" in v["text"]
