"""How sure are we? The one home of the significance statistics (walk-forward, compare).

Everything that turns returns into a probability or a p-value lives here, with its settings:

- **Sharpe ratio**: per bar, not annualised (mean / sd with ddof=1), zero risk-free rate. Its key
  is ``sharpe_per_bar`` wherever it is stored (``moments``, the registry's trials, walkforward.json);
  ``sharpe`` is always the annualised figure of ``analysis.performance.compute_stats``.
- **Return moments** (``moments``, the one home: backtest and walk-forward trials, PSR, DSR):
  "not defined" (fewer than 3 returns, or returns that never vary) is NaN, so the formulas below
  propagate it; writers turn NaN into JSON ``null`` / SQL ``NULL``.
- **PSR** (Bailey & López de Prado 2012, "The Sharpe ratio efficient frontier"): the probability
  that the true Sharpe ratio exceeds a benchmark ``sr_star`` given the observed one, its sample
  length and the returns' skewness and (plain, non-excess) kurtosis::

      PSR(SR*) = Φ[ (SR - SR*) √(T - 1) / √(1 - γ₃ SR + (γ₄ - 1)/4 SR²) ]

- **DSR** (Bailey & López de Prado 2014, "The deflated Sharpe ratio"): PSR against the Sharpe
  ratio the best of ``N`` unskilled trials would show, given the variance ``V`` of the trials'
  Sharpe ratios::

      SR₀ = √V [ (1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)) ],   γ = 0.5772… (Euler–Mascheroni)

  The trials come from the registry's append-only trials table (every configuration evaluated on
  the same data, not only the winners). With fewer than 2 trials, SR₀ = 0 (DSR = PSR).
- **Sharpe difference test**: a paired **stationary block bootstrap** (Politis & Romano 1994) of
  the two return series together; mean block length ``max(1, round(n ** (1/3)))`` unless given;
  ``N_BOOT`` repetitions, seed 0. Two-sided p-value from the bootstrap distribution centred on the
  observed difference; 95 % percentile interval.
- **SPA** (Hansen 2005) through ``arch.bootstrap.SPA`` on per-bar losses (= minus returns):
  stationary bootstrap, same block rule, ``SPA_REPS`` repetitions, seed 0, studentised; the
  "consistent" p-value is reported.
- **Paired test across folds and seeds**: per-fold differences (averaged over seeds: the seeds of a
  fold share its test bars, so they are not independent), Student-t interval and two-sided p.
- **The verdict rule** (``decide``, the same both ways): A trades *better* than B when the Sharpe
  difference test gives p < ALPHA with A ahead *and* SPA with B as the benchmark gives p < ALPHA;
  A trades *worse* when the test gives p < ALPHA with A behind *and* SPA with A as the benchmark
  gives p < ALPHA; a significant difference that SPA does not confirm is "mixed"; anything else is
  no significant difference. ``VERDICT_RULE`` is its text, printed with every verdict.
- **A backtest's verdict** (``backtest_verdict``, report.json's ``verdict``): one run against
  random entries of the same shape, by the one-sided p-value of ``baselines.random_entries``.

Significance level ``ALPHA`` = 0.05 throughout. Calibration (share called significant with no edge,
and power with a planted edge) is measured in ``tests/backtests/test_significance.py`` and
reported in ``docs/walkforward.md``; the verdict rule on network-like return series (sparse,
frequent, volatility-sized one-bar trades on ``data.synth``'s null and order worlds) in
``tests/backtests/test_verdict_calibration.py``, and on the networks' own null return series in
docs/research.md (network null calibration). There the Sharpe difference test *alone* is liberal
on sparse series (about 10 % at p < ALPHA for a model of a few dozen trades), while the rule,
which also asks SPA, stays at ALPHA: claims of a difference go through ``difference_verdict``.
"""

from __future__ import annotations

import math

import numpy as np


class _Stats:
    """``scipy.stats``, imported on first use: it costs about 1.5 s of start-up, which every
    `attnbt` command and every worker process importing this module paid even when it computed
    no p-value."""

    def __getattr__(self, name: str):
        from scipy import stats

        return getattr(stats, name)


sps = _Stats()

ALPHA = 0.05
N_BOOT = 2000
SPA_REPS = 1000
EULER_GAMMA = 0.5772156649015329
BOOTSTRAP = "stationary"


def block_length(n: int) -> int:
    """The block-length rule: ``max(1, round(n ** (1/3)))``."""
    return max(1, round(n ** (1 / 3)))


def sharpe(returns: np.ndarray) -> float:
    """Per-bar Sharpe ratio (mean / sd, ddof=1); 0 for a series that never moves (a strategy
    that did not trade: no risk, no return); NaN when otherwise undefined."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    if sd > 0:
        return float(r.mean() / sd)
    return 0.0 if not r.any() else float("nan")


def moments(returns: np.ndarray) -> dict:
    """``n_obs``, ``sharpe_per_bar`` (not annualised), ``skew`` and plain ``kurtosis`` (3 for
    normal returns); the three statistics are NaN (not defined) for fewer than 3 returns or
    returns that never vary. The keys are those of the registry's trials table."""
    r = np.asarray(returns, dtype=float)
    n = len(r)
    sd0 = r.std() if n else 0.0
    if n < 3 or sd0 == 0:
        return {"n_obs": n, "sharpe_per_bar": float("nan"), "skew": float("nan"),
                "kurtosis": float("nan")}
    z = (r - r.mean()) / sd0
    return {"n_obs": n, "sharpe_per_bar": sharpe(r), "skew": float(np.mean(z ** 3)),
            "kurtosis": float(np.mean(z ** 4))}


def psr(sr: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0,
        sr_star: float = 0.0) -> float:
    """Probabilistic Sharpe ratio: P(true SR > ``sr_star``); all Sharpe ratios per bar."""
    if n_obs < 2 or not all(map(math.isfinite, (sr, skew, kurtosis, sr_star))):
        return float("nan")
    var = 1 - skew * sr + (kurtosis - 1) / 4 * sr ** 2
    if var <= 0:
        return float("nan")
    return float(sps.norm.cdf((sr - sr_star) * math.sqrt(n_obs - 1) / math.sqrt(var)))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """SR₀: the expected maximum Sharpe ratio of ``n_trials`` unskilled trials (DSR paper)."""
    if n_trials < 2 or not (sr_variance > 0):
        return 0.0
    n = float(n_trials)
    return math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * sps.norm.ppf(1 - 1 / n)
                                     + EULER_GAMMA * sps.norm.ppf(1 - 1 / (n * math.e)))


def dsr(sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
        sr_variance: float) -> float:
    """Deflated Sharpe ratio: PSR against the expected best of ``n_trials`` unskilled trials."""
    return psr(sr, n_obs, skew, kurtosis, sr_star=expected_max_sharpe(n_trials, sr_variance))


def trials_hurdle(trial_sharpes: list[float]) -> dict:
    """The DSR's charge for these trials' Sharpe ratios (per bar; undefined ones left out):
    ``dsr_trials`` N, ``dsr_sr_var`` V and ``dsr_sr0`` SR₀, the hurdle."""
    srs = np.asarray([s for s in trial_sharpes if s is not None and math.isfinite(s)], float)
    n_trials = max(len(srs), 1)
    var = float(srs.var(ddof=1)) if len(srs) > 1 else 0.0
    return {"dsr_trials": n_trials, "dsr_sr_var": var,
            "dsr_sr0": expected_max_sharpe(n_trials, var)}


def hurdle_text(n_trials: int | None, hurdle: float | None) -> str:
    """The hurdle (annualised like the Sharpe ratios beside it) in words; '' where there is
    none (fewer than two trials, or not defined)."""
    if not n_trials or n_trials < 2 or hurdle is None or not math.isfinite(hurdle):
        return ""
    return (f"the hurdle, what the best of {n_trials} unskilled trials as spread as these would "
            f"reach, is a Sharpe of {hurdle:.2f}")


def dsr_from_trials(returns: np.ndarray, trial_sharpes: list[float]) -> dict:
    """PSR, DSR and what went into them, for ``returns`` among trials with these Sharpe ratios
    (per bar; the list should include this series' own trial)."""
    m = moments(returns)
    h = trials_hurdle(trial_sharpes)
    sr = m["sharpe_per_bar"]
    return {**m, "psr": psr(sr, m["n_obs"], m["skew"], m["kurtosis"]),
            "dsr": dsr(sr, m["n_obs"], m["skew"], m["kurtosis"], h["dsr_trials"],
                       h["dsr_sr_var"]), **h}


# --- bootstrap -----------------------------------------------------------------------------------
def stationary_indices(n: int, n_boot: int, block: float, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampling positions of the stationary bootstrap (mean block ``block``,
    wrapping around the end)."""
    pos = np.arange(n)
    jump = rng.random((n_boot, n)) < 1.0 / block
    jump[:, 0] = True
    starts = rng.integers(0, n, size=(n_boot, n))
    last = np.maximum.accumulate(np.where(jump, pos, 0), axis=1)
    rows = np.arange(n_boot)[:, None]
    return (starts[rows, last] + (pos - last)) % n


def _sharpe_rows(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=1, ddof=1)
    flat = ~x.any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, x.mean(axis=1) / sd, np.where(flat, 0.0, np.nan))


def sharpe_difference_test(returns_a, returns_b, *, n_boot: int = N_BOOT, block: int | None = None,
                           seed: int = 0) -> dict:
    """Is Sharpe(a) different from Sharpe(b) on the same bars? Paired stationary bootstrap.

    Returns ``diff`` (per-bar Sharpe of a minus b), ``p_value`` (two-sided, from the bootstrap
    distribution centred on ``diff``), ``ci`` (95 % percentile interval), ``block`` and ``n_boot``.
    """
    a, b = np.asarray(returns_a, float), np.asarray(returns_b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("the two return series must be 1-d and of the same length (same bars)")
    n = len(a)
    block = block_length(n) if block is None else int(block)
    diff = sharpe(a) - sharpe(b) if n >= 2 else float("nan")
    out = {"diff": diff, "p_value": float("nan"), "ci": (float("nan"), float("nan")),
           "block": block, "n_boot": int(n_boot), "n_obs": n, "bootstrap": BOOTSTRAP}
    if not math.isfinite(diff):
        return out
    rng = np.random.default_rng(seed)
    draws = []
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    for i in range(0, n_boot, chunk):
        idx = stationary_indices(n, min(chunk, n_boot - i), block, rng)
        draws.append(_sharpe_rows(a[idx]) - _sharpe_rows(b[idx]))
    d = np.concatenate(draws)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return out
    p = float((np.sum(np.abs(d - diff) >= abs(diff)) + 1) / (len(d) + 1))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {**out, "p_value": min(1.0, p), "ci": (float(lo), float(hi))}


def spa_test(benchmark_returns, model_returns, *, reps: int = SPA_REPS,
             block: int | None = None, seed: int = 0) -> dict:
    """Hansen's SPA: does any model beat the benchmark on mean per-bar return?

    ``model_returns``: (n,) or (n, k) on the same bars. Small p: some model is better.
    """
    from arch.bootstrap import SPA

    bench = np.asarray(benchmark_returns, float)
    models = np.asarray(model_returns, float)
    if models.ndim == 1:
        models = models[:, None]
    n = len(bench)
    block = block_length(n) if block is None else int(block)
    if n < 3 or models.shape[0] != n:
        return {"p_value": float("nan"), "p_lower": float("nan"), "p_upper": float("nan"),
                "block": block, "reps": reps}
    # A model equal to the benchmark on every bar (e.g. two runs that never trade) cannot beat
    # it, but its zero-variance differential makes arch's studentised statistic degenerate and
    # its p-value 0 ("significantly better"). Such models are left out; with none left, p is 1.
    models = models[:, ~(models == bench[:, None]).all(axis=0)]
    if not models.shape[1]:
        return {"p_value": 1.0, "p_lower": 1.0, "p_upper": 1.0, "block": block, "reps": reps,
                "bootstrap": BOOTSTRAP}
    spa = SPA(-bench, -models, block_size=block, reps=reps, bootstrap=BOOTSTRAP,
              studentize=True, seed=np.random.default_rng(seed))
    spa.compute()
    pv = spa.pvalues
    return {"p_value": float(pv["consistent"]), "p_lower": float(pv["lower"]),
            "p_upper": float(pv["upper"]), "block": block, "reps": reps,
            "bootstrap": BOOTSTRAP}


def paired_test(diffs: np.ndarray, clusters: np.ndarray | None = None) -> dict:
    """Mean paired difference, 95 % Student-t interval and two-sided p.

    With ``clusters`` (e.g. the fold of each (seed, fold) pair) the differences are first averaged
    within each cluster and the test runs over the cluster means (n = number of clusters).
    """
    d = np.asarray(diffs, float)
    keep = np.isfinite(d)
    d = d[keep]
    if clusters is not None:
        c = np.asarray(clusters)[keep]
        d = np.asarray([d[c == k].mean() for k in dict.fromkeys(c.tolist())])
    n = len(d)
    out = {"mean": float(d.mean()) if n else float("nan"), "n": n, "sd": float("nan"),
           "ci": (float("nan"), float("nan")), "p_value": float("nan")}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    t_crit = float(sps.t.ppf(1 - ALPHA / 2, n - 1))
    p = 1.0 if se == 0 and out["mean"] == 0 else (
        0.0 if se == 0 else float(2 * sps.t.sf(abs(out["mean"]) / se, n - 1)))
    return {**out, "sd": sd, "ci": (out["mean"] - t_crit * se, out["mean"] + t_crit * se),
            "p_value": p}


def mean_ci(values: np.ndarray, support: tuple[float | None, float | None] = (None, None)) -> dict:
    """Mean, sd and 95 % Student-t interval of independent values (e.g. one per seed).

    ``support``: the (low, high) a value can take (``None``: unbounded), e.g. ``(0, None)`` for a
    count or ``(0, 100)`` for a percentage; the interval is clipped to it, since a mean of values
    in [low, high] lies in [low, high] (a trade count's interval never reads [-73, 819])."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "sd": float("nan"), "ci": (float("nan"), float("nan")),
                "n": 0}
    if n == 1:
        return {"mean": float(v[0]), "sd": float("nan"), "ci": (float("nan"), float("nan")),
                "n": 1}
    sd = float(v.std(ddof=1))
    half = float(sps.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    low, high = float(v.mean()) - half, float(v.mean()) + half
    if support[0] is not None:
        low, high = max(low, float(support[0])), max(high, float(support[0]))
    if support[1] is not None:
        low, high = min(low, float(support[1])), min(high, float(support[1]))
    return {"mean": float(v.mean()), "sd": sd, "ci": (low, high), "n": n}


# --- the one verdict rule: better and worse need the same evidence ---------------------------------
VERDICT_RULE = (f"rule, the same both ways: 'better' or 'worse' needs the paired bootstrap of the "
                f"Sharpe difference at p < {ALPHA:g} (two-sided) and Hansen's SPA at p < {ALPHA:g} "
                f"with the other model as the benchmark, in the same direction")


def decide(diff: float, p_bootstrap: float, p_spa_better: float, p_spa_worse: float,
           alpha: float = ALPHA) -> str:
    """"better", "worse", "mixed" or "none" by ``VERDICT_RULE``.

    ``diff``, ``p_bootstrap``: A's Sharpe minus B's and its two-sided bootstrap p;
    ``p_spa_better``: SPA p-value that A beats benchmark B; ``p_spa_worse``: that B beats A.
    """
    def small(p: float) -> bool:
        return p is not None and math.isfinite(p) and p < alpha

    if not (small(p_bootstrap) and math.isfinite(diff) and diff != 0):
        return "none"
    return ("better" if small(p_spa_better) else "mixed") if diff > 0 else (
        "worse" if small(p_spa_worse) else "mixed")


def verdict_claim(decision: str, a: str, diff: float, p_spa_better: float,
                  p_spa_worse: float) -> str:
    """``decide``'s ``decision`` for model ``a`` against another, in words (``diff``: a's Sharpe
    minus the other's; the SPA p-values as ``decide`` takes them)."""
    if decision in ("better", "worse"):
        return f"evidence {a} trades {decision}"
    if decision == "mixed":
        spa_p = p_spa_better if diff > 0 else p_spa_worse
        shown = f"{spa_p:.2f}" if spa_p is not None and math.isfinite(spa_p) else "n/a"
        return (f"mixed: {a} is {'ahead' if diff > 0 else 'behind'} by the Sharpe difference test "
                f"but SPA does not confirm it (p = {shown}); no significant difference")
    return f"no significant difference: no evidence {a} trades better or worse"


def difference_verdict(returns_a, returns_b, *, n_boot: int = N_BOOT, spa_reps: int = SPA_REPS,
                       block: int | None = None, seed: int = 0, both: bool = True,
                       alpha: float = ALPHA) -> dict:
    """A against B on the same bars by ``VERDICT_RULE`` at level ``alpha``: ``decision``,
    ``sharpe_diff`` (the bootstrap test), ``spa_better`` (A beats B?), ``spa_worse`` (B beats
    A?) and ``alpha``.

    ``both=False`` runs only the SPA the rule consults (none when the bootstrap is not
    significant; the other's p-value is NaN): the same decision, for calibration draws.
    """
    a, b = np.asarray(returns_a, float), np.asarray(returns_b, float)
    sd = sharpe_difference_test(a, b, n_boot=n_boot, block=block, seed=seed)
    significant = math.isfinite(sd["p_value"]) and sd["p_value"] < alpha
    skipped = {"p_value": float("nan"), "skipped": True}
    better = spa_test(b, a, reps=spa_reps, block=block, seed=seed) \
        if both or (significant and sd["diff"] > 0) else skipped
    worse = spa_test(a, b, reps=spa_reps, block=block, seed=seed) \
        if both or (significant and sd["diff"] < 0) else skipped
    return {"decision": decide(sd["diff"], sd["p_value"], better["p_value"], worse["p_value"],
                               alpha),
            "sharpe_diff": sd, "spa_better": better, "spa_worse": worse, "rule": VERDICT_RULE,
            "alpha": alpha}


# --- a backtest against random entries (report.json's verdict) -----------------------------------

MIN_TRADES_FOR_VERDICT = 10


def comparison_family(earlier: list[dict]) -> dict:
    """The multiplicity charge of a comparison: it is the k-th of its pair on these bars (k − 1
    ``earlier`` rows of the registry's comparisons table, ``Registry.comparison_family``: a
    walk-forward's or `attnbt compare`'s), so its verdict is judged at
    α / k (Bonferroni over the comparisons made so far, as the DSR counts the trials made so
    far); ``still_holding``: how many of the earlier "better"/"worse" verdicts survive α / k."""
    k = len(earlier) + 1
    alpha = ALPHA / k
    held = [e for e in earlier if e.get("decision") in ("better", "worse")]
    still = [e for e in held if decide(*(nan_if_none(e.get(f)) for f in (
        "diff", "p_bootstrap", "p_spa_better", "p_spa_worse")), alpha) == e["decision"]]
    return {"k": k, "alpha": alpha, "earlier_runs": [e.get("run_id") for e in earlier],
            "earlier_decided": len(held), "still_holding": len(still)}


def comparison_numbers(sharpe_diff: dict, spa_better: dict, spa_worse: dict, alpha: float,
                       decision: str) -> dict:
    """A comparison's numbers as the registry's comparisons table keeps them (and
    ``comparison_family`` reads them back)."""
    return {"n_obs": sharpe_diff["n_obs"], "diff": sharpe_diff["diff"],
            "p_bootstrap": sharpe_diff["p_value"], "p_spa_better": spa_better["p_value"],
            "p_spa_worse": spa_worse["p_value"], "alpha": alpha, "decision": decision}


def family_text(f: dict) -> str:
    """The charge in words ('' for a first comparison)."""
    if f["k"] == 1:
        return ""
    text = (f"; comparison {f['k']} of this pair on these bars, so judged at α = "
            f"{ALPHA:g}/{f['k']} = {f['alpha']:.3g} (Bonferroni)")
    if f["earlier_decided"]:
        text += (f"; of the {f['earlier_decided']} earlier better/worse verdicts "
                 f"{f['still_holding']} still hold at this α")
    return text


def nan_if_none(x) -> float:
    """``x`` as a float, None as NaN (a registry row's NULL)."""
    return float("nan") if x is None else float(x)


def backtest_verdict(stats: dict, baselines: dict | None = None, in_sample: bool = False,
                     versus_rules: dict | None = None) -> dict:
    """A backtest's verdict record: ``level`` (no_trades, too_few, untested, skill, weak, worse,
    none), ``text`` (the one-line judgement in words) and the numbers it rests on: the return
    and the p-value against random entries of the same shape (one-sided: the share of random
    draws that did at least as well). One run against chance, where ``VERDICT_RULE`` judges
    one model against another.

    Rules: no trades → nothing to judge; under 10 trades → too few to judge; no random-entry
    test → not tested; p < 0.05 → "evidence of skill" (and, when the return is still ≤ 0, that it
    does not pay its costs); p < 0.10 → weak evidence; p ≥ 0.95 → worse than random entries;
    otherwise no evidence of skill. In-sample bars prefix a warning that it proves nothing.
    Rule baselines traded on the same bars (``kind`` "rule") add the best one's return, and
    ``versus_rules`` (``models.evaluate.versus_rules``) the hit rate against the best rule's:
    the null for "does it predict fractals" is a trivial rule, not chance.
    """
    ret = stats.get("total_return_pct")
    n = int(stats.get("n_trades") or 0)
    rnd = (baselines or {}).get("random_entries") or {}
    p, median = rnd.get("p_value"), rnd.get("median_return_pct")
    bh = ((baselines or {}).get("buy_and_hold") or {}).get("total_return_pct")

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2f} %".replace("-", "−")

    vs = f"return {pct(ret)} vs random entries' median {pct(median)}"
    if n == 0:
        level, text = "no_trades", "No trades: the model's probabilities never crossed the " \
                                   "threshold on these bars; nothing to judge"
    elif n < MIN_TRADES_FOR_VERDICT:
        level, text = "too_few", f"Too few trades ({n}) to judge: return {pct(ret)}"
    elif p is None or median is None:
        level, text = "untested", f"Not tested against random entries: return {pct(ret)}"
    elif p < 0.05:
        level = "skill"
        text = (f"Evidence of skill after costs: {vs} (p = {p:.3f})" if ret is not None and ret > 0
                else f"Better timing than random entries but still losing after costs: {vs} "
                     f"(p = {p:.3f})")
    elif p < 0.10:
        level, text = "weak", f"Weak evidence of skill, not significant at 5 %: {vs} (p = {p:.2f})"
    elif p >= 0.95:
        level, text = "worse", f"Worse than random entries after costs: {vs} (p = {p:.2f})"
    else:
        level, text = "none", f"No evidence of skill after costs: {vs} (p = {p:.2f})"
    if bh is not None and n:
        text += f"; buy and hold {pct(bh)}"
    rules = {k: b for k, b in (baselines or {}).items()
             if b.get("kind") == "rule" and b.get("total_return_pct") is not None}
    best_rule = max(rules.values(), key=lambda b: b["total_return_pct"]) if rules else None
    if best_rule is not None:
        text += (f"; best rule baseline {best_rule.get('name', '?')} {pct(best_rule['total_return_pct'])}"
                 f" ({best_rule.get('n_trades') or 0} trades)")
    if versus_rules:
        text += ". Signals: " + versus_rules["text"]
    if in_sample:
        text = "IN-SAMPLE (these bars were used in training, so this proves nothing): " + text
    return {"level": level, "text": text + ".", "p_value": p, "return_pct": ret,
            "random_median_pct": median, "buy_and_hold_pct": bh, "n_trades": n,
            "in_sample": bool(in_sample),
            "best_rule": None if best_rule is None else best_rule.get("name"),
            "best_rule_return_pct": None if best_rule is None else best_rule["total_return_pct"],
            "versus_rules": versus_rules}


def describe_p(p: float | None) -> str:
    """A p-value in words (for two-sided tests of a difference)."""
    if p is None or not math.isfinite(p):
        return "not tested"
    if p < 0.01:
        return f"strong evidence of a difference (p = {p:.3f})"
    if p < ALPHA:
        return f"evidence of a difference (p = {p:.3f})"
    if p < 0.10:
        return f"weak evidence of a difference (p = {p:.3f}), not significant at 5 %"
    return f"no evidence of a difference (p = {p:.2f})"


__all__ = ["ALPHA", "BOOTSTRAP", "N_BOOT", "SPA_REPS", "VERDICT_RULE", "block_length", "decide",
           "backtest_verdict", "comparison_family", "comparison_numbers", "describe_p", "difference_verdict", "dsr", "dsr_from_trials", "expected_max_sharpe", "family_text", "hurdle_text", "mean_ci", "moments", "nan_if_none",
           "paired_test", "psr",
           "sharpe", "sharpe_difference_test", "spa_test", "stationary_indices", "trials_hurdle", "verdict_claim"]
