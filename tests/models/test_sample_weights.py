"""``train.weighting = uniqueness``: sample weights from the training part alone, combined with
the class weights in ``fit`` and, identically, in the vmapped ensemble."""

import numpy as np
import pytest
import torch

from data import DatasetSpec, plain_split
from data.dataset import CandleDataset
from data.folds import walk_forward
from data.uniqueness import average_uniqueness
from models.ensemble import train_ensemble
from models.step import train_step
from models.train import TrainConfig, bar_weights, fit

TRIPLE = DatasetSpec(labels="triple:1:1:24")
WEIGHTS_RTOL = 2e-3     # relative L2 distance of all weights (see the ensemble test)


def test_training_weights_read_the_training_part_only(eurusd):
    """Truncation test: cutting every bar after the training part's last bar leaves each training
    window's weight as it was (bit for bit). A count over the part's labelled bars before purging
    (labels whose spans reach into validation) would change, so the check has teeth."""
    candles = eurusd.iloc[:1500]
    fold = plain_split(candles.index, 0.6, 0.2)
    full = CandleDataset(candles, TRIPLE)
    first, last = fold.bounds(candles.index, "train")
    cut = CandleDataset(candles.iloc[:last + 1], TRIPLE)
    ends = full.ends("train", fold)
    assert ends.tolist() == cut.ends("train", fold).tolist() and len(ends) > 500
    w_full, w_cut = bar_weights(full, ends, "uniqueness"), bar_weights(cut, ends, "uniqueness")
    assert w_full[ends].tolist() == w_cut[ends].tolist()
    assert w_full[ends].mean() == pytest.approx(1.0, abs=1e-6)
    assert w_full[ends].std() > 0.01                     # overlapping labels: unequal weights
    assert (np.delete(w_full, ends) == 0).all() and bar_weights(full, ends, "none") is None
    # the leak this guards against: counting the part's labels before the purge
    naive = [np.flatnonzero((d.labels >= 0) & d.window_ok)
             for d in (full, cut)]
    naive = [n[(n >= first) & (n <= last)] for n in naive]
    u = [average_uniqueness(n, 25)[np.isin(n, ends)] for n in naive]
    assert not np.array_equal(u[0], u[1])


def test_the_step_combines_class_and_sample_weights_multiplicatively():
    """Sample i counts class weight × sample weight; the loss is the weighted mean. Unit sample
    weights give the class-weighted loss (and step) of ``train.weighting = none``."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    cw, sw = torch.tensor([0.5, 2.0, 3.0]), torch.rand(64, generator=gen) + 0.1

    def step(**kw):
        torch.manual_seed(1)
        model = torch.nn.Linear(5, 3)
        logits = model(x).detach()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return float(train_step(model, opt, x, y, cw, max_grad_norm=0, **kw)), model, logits

    plain, m_plain, logits = step()
    ones, m_ones, _ = step(sample_weights=torch.ones(64))
    # float32 sums in another order: 1e-6 relative, 1e-7 on weights of size ~0.5
    assert ones == pytest.approx(plain, rel=1e-6)
    assert torch.allclose(m_ones.weight, m_plain.weight, atol=1e-7)
    weighted, _, _ = step(sample_weights=sw)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = float((ce * cw[y] * sw).sum() / (cw[y] * sw).sum())
    assert weighted == pytest.approx(expected, rel=1e-6)
    assert abs(weighted - plain) > 1e-3


def _distance(a, b) -> float:
    wa = torch.cat([v.flatten().double() for v in a.model.state_dict().values()])
    wb = torch.cat([v.flatten().double() for v in b.model.state_dict().values()])
    return float((wa - wb).norm() / wb.norm())


@pytest.mark.slow
def _numbers(tree) -> list[float]:
    """Every number in a nested dict/list (a calibration map's description), in order."""
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _numbers(tree[k])]
    if isinstance(tree, list | tuple):
        return [x for v in tree for x in _numbers(v)]
    return [float(tree)] if isinstance(tree, int | float) and not isinstance(tree, bool) else []


def test_the_ensemble_honours_the_weights_as_fit_does(eurusd):
    """Each vmapped member trained with uniqueness weights equals ``fit`` alone with them, and is
    far from the same member trained without them.

    Measured 2026-12-02 (AMD EPYC, torch CPU, 1 thread): member vs alone 9.9e-7 relative weight
    distance; the same member without the weights 2.2e-2. tests/models/test_ensemble.py measured
    the vmapped step's noise at <= 1.02e-4 across CPUs and an H200, so 2e-3 sits 20x above the
    noise and 11x below the model the weights change."""
    candles = eurusd.iloc[:1400]
    folds = walk_forward(candles.index, train_bars=500, val_bars=150, test_bars=150,
                         expanding=True)[:2]
    cfgs = [TrainConfig(epochs=2, seed=s, patience=2, batch_size=128, device="cpu",
                        weighting="uniqueness", calibration="platt") for s in (0, 1)]
    members = train_ensemble(candles, TRIPLE, folds, kind="dense", preset="matched", cfgs=cfgs)
    for member, fold, cfg in zip(members, folds, cfgs, strict=True):
        alone = fit(candles, TRIPLE, fold, kind="dense", preset="matched", cfg=cfg)
        assert member.metrics["epochs_run"] == alone.metrics["epochs_run"]
        assert _distance(member, alone) <= WEIGHTS_RTOL
        # the calibration map (train.calibration) is fitted on the member's validation windows
        # as fit fits it: Platt's coefficients agree to the members' own distance
        a, b = member.meta["calibration"], alone.meta["calibration"]
        assert a["method"] == b["method"] == "platt"
        diff = np.max(np.abs(np.asarray(_numbers(a)) - np.asarray(_numbers(b))))
        assert diff <= 1e-3, diff
    unweighted = fit(candles, TRIPLE, folds[1], kind="dense", preset="matched",
                     cfg=TrainConfig(epochs=2, seed=1, patience=2, batch_size=128, device="cpu"))
    assert _distance(members[1], unweighted) > 5 * WEIGHTS_RTOL


def test_the_key_enters_the_config_id_only_when_set():
    from backtests.config import ConfigError, Experiment

    base = Experiment()
    # ids recorded before the key existed (tests/backtests/test_config.py pins them)
    assert (base.id, base.train_id) == ("7fe8b7747224", "5dc634ef2756")
    assert base.override({"train.weighting": "none"}).id == base.id
    on = base.override(["weighting=uniqueness"])
    assert on.train.weighting == "uniqueness"
    assert on.id != base.id and on.train_id != base.train_id
    assert on.to_dict()["train"]["weighting"] == "uniqueness"        # run.json shows it
    with pytest.raises(ConfigError, match="train.weighting"):
        base.override({"train.weighting": "average"})
