"""benchmarks/planted_ceiling.py's partial-skill rule (``--skill``): the planted sides kept with
probability S, otherwise a fair coin's, so that it collects about S of the planted drift.

Only the side-drawing is checked here (numpy alone, well under a second); the rows it feeds are
the engine's, checked by tests/strategy/test_fast.py. Tolerances: 20,000 trades give the
agreement rate a standard error of at most 0.0035, so 0.02 is over five standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.planted_ceiling import skilled_sides

N = 20_000


def planted(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).choice([-1, 1], N)


def test_full_skill_is_the_perfect_rule_unchanged():
    direction = planted()
    sides = skilled_sides(direction, 1.0, seed=0)
    assert np.array_equal(sides, direction)
    assert sides is not direction


@pytest.mark.parametrize("skill", [0.0, 0.5, 0.8])
def test_the_rule_keeps_about_its_skill_of_the_drift(skill):
    direction = planted()
    sides = skilled_sides(direction, skill, seed=0)
    assert set(np.unique(sides)) <= {-1, 1}
    agree = float(np.mean(sides == direction))
    assert agree == pytest.approx((1 + skill) / 2, abs=0.02)
    # the drift collected, in units of the planted drift: 2 agree - 1 = skill
    assert float(np.mean(sides * direction)) == pytest.approx(skill, abs=0.04)


def test_the_draws_are_seeded_by_the_world_and_apart_from_the_coin_twins():
    direction = planted()
    a = skilled_sides(direction, 0.5, seed=0)
    assert np.array_equal(a, skilled_sides(direction, 0.5, seed=0))
    assert not np.array_equal(a, skilled_sides(direction, 0.5, seed=1))
    twin = np.random.default_rng(1).choice([-1, 1], N)  # the first coin twin's sides
    assert float(np.mean(a == twin)) == pytest.approx(0.5, abs=0.02)


def test_a_skill_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="skill"):
        skilled_sides(planted(), 1.5, seed=0)


# --panel rule: the trials a row is charged against (``panel_sharpes``). Sharpe ratios are per bar.
def test_the_coin_panel_is_the_rule_and_its_twins():
    from benchmarks.planted_ceiling import panel_sharpes

    assert panel_sharpes(0.09, [0.01, -0.02, 0.0], None, 4) == [0.09, 0.01, -0.02, 0.0]


def test_the_rule_panel_puts_the_fixed_rule_in_place_of_the_last_twin():
    from benchmarks.planted_ceiling import panel_sharpes

    assert panel_sharpes(0.09, [0.01, -0.02, 0.0], -0.06, 4) == [0.09, -0.06, 0.01, -0.02]
    with pytest.raises(ValueError, match="coin twins"):
        panel_sharpes(0.09, [0.01], -0.06, 4)
    with pytest.raises(ValueError, match="fixed series"):
        panel_sharpes(0.09, [], -0.06, 1)


def test_a_losing_rule_in_the_panel_raises_the_hurdle():
    """A rule losing its spread widens the trials' Sharpe ratios, so SR0 rises and the DSR of the
    same series falls (the reason for the panel). Deterministic draws: SR0 goes 0.032 → 0.052 here,
    so the 0.01 margin is half the effect."""
    from backtests.analysis import significance as sig
    from benchmarks.planted_ceiling import panel_sharpes

    returns = np.random.default_rng(0).normal(0.0006, 0.01, 8000)   # per-bar Sharpe about 0.06
    own = sig.sharpe(returns)
    twins = [0.004, -0.006, 0.001]
    coin = sig.dsr_from_trials(returns, panel_sharpes(own, twins, None, 4))
    rule = sig.dsr_from_trials(returns, panel_sharpes(own, twins, -0.06, 4))
    assert coin["dsr_trials"] == rule["dsr_trials"] == 4
    assert rule["dsr_sr0"] > coin["dsr_sr0"] + 0.01
    assert rule["dsr"] < coin["dsr"]
