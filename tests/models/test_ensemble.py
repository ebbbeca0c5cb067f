"""A vmapped ensemble member equals the model trained alone by ``fit`` (same seed, batches).

"Equal" is what a user can see: the same epochs run, the same early stop, the same predictions
and validation losses within float32 noise. Weights are compared as one relative distance, not
element by element: the stacked step sums in another order (batched products), and Adam divides
by sqrt(v) where v is tiny, so single weights move far more than the model does.

Spread measured for these exact settings (member vs alone, worst member of three):
  vmapped ensemble (before 2026-12-03): AMD EPYC (no AVX-512), torch 2.13.0+cpu, 1 and 2 threads;
  Intel Xeon, torch 2.11.0, 1, 4 and 16 threads; NVIDIA H200 (CUDA):
    relative weight distance |a-b|/|b|   <= 1.02e-4  (largest single weight: 6.63e-4)
    largest probability difference       <= 5.4e-5
    relative validation-loss difference  <= 3.0e-6
  The stacked ensemble (models.stacked), 2026-12-03: AMD EPYC, torch 2.13.0+cpu, 1 thread:
  attention, dense, lstm <= 2.7e-6 / 6.6e-7 / 1.4e-7 (weights / probabilities / val loss); NVIDIA
  H200, torch 2.11.0+cu130: attention 1.0e-4 / 5.0e-5 / 4.2e-6, dense 1.2e-6 / 8.3e-7 / 1.5e-7,
  conv 3.0e-4 / 3.3e-4 / 2.1e-5; lstm (2026-12-03, same H200) 1.1e-4 / 7.7e-6 / 7.3e-7.
  A member against a model of another seed on the same fold (what a real bug looks like):
    relative weight distance >= 1.16, largest probability difference >= 0.17 (lstm: 0.037, its
    3-epoch models are still near the class prior).
Over many epochs rounding grows (docs/benchmarks.md, GPU ensembles: at 20 epochs ``fit`` differs
from itself on another thread count by 1e-2): the tests compare where equality is meaningful.
The tolerances sit about 100x above the noise and 100x (weights) / 35x (probabilities) below a
wrong model, and each test also checks that another seed would fail them.
"""

import numpy as np
import pytest
import torch

from data.dataset import CandleDataset, DatasetSpec
from data.folds import walk_forward
from models.ensemble import train_ensemble, vmappable
from models.networks import make_config
from models.train import TrainConfig, fit

WEIGHTS_RTOL = 1e-2      # relative L2 distance of all weights
PROBS_ATOL = 5e-3        # largest |p_member - p_alone| over every window of the slice
VAL_LOSS_RTOL = 1e-3     # largest relative difference of the per-epoch validation losses


def _weights(result) -> torch.Tensor:
    return torch.cat([v.detach().flatten().double().cpu()
                      for v in result.model.state_dict().values()])


def _probs(result, candles, spec) -> np.ndarray:
    """The model's probabilities for every complete window of ``candles``."""
    ds = CandleDataset(candles, spec)
    matrix = ds.matrix(result.normaliser)
    ends = np.flatnonzero(ds.window_ok)
    model = result.model.eval().cpu()
    with torch.inference_mode():
        return model(torch.as_tensor(ds.windows(matrix, ends))).softmax(-1).double().numpy()


def _distances(a, b, candles, spec) -> dict[str, float]:
    wa, wb = _weights(a), _weights(b)
    va, vb = a.history.val_loss.to_numpy(), b.history.val_loss.to_numpy()
    n = min(len(va), len(vb))
    return {"weights": float((wa - wb).norm() / wb.norm()),
            "probs": float(np.abs(_probs(a, candles, spec) - _probs(b, candles, spec)).max()),
            "val_loss": float(np.max(np.abs(va[:n] - vb[:n]) / np.abs(vb[:n])))}


CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU on this machine")])


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("kind,preset", [("dense", "matched"), ("attention", "article"),
                                         ("lstm", "article")])
def test_members_equal_models_trained_alone(eurusd, kind, preset, device):
    candles = eurusd.iloc[:1400]
    # expanding folds: training parts of different lengths (ragged batches, members idle)
    folds = walk_forward(candles.index, train_bars=500, val_bars=150, test_bars=150,
                         expanding=True)[:3]
    cfgs = [TrainConfig(epochs=3, seed=s, patience=2, batch_size=128, device=device)
            for s in (0, 1, 2)]
    spec = DatasetSpec()
    members = train_ensemble(candles, spec, folds, kind=kind, preset=preset, cfgs=cfgs)
    assert len(members) == 3
    for i, (member, fold, cfg) in enumerate(zip(members, folds, cfgs, strict=True)):
        alone = fit(candles, spec, fold, kind=kind, preset=preset, cfg=cfg)
        assert member.metrics["epochs_run"] == alone.metrics["epochs_run"], i
        assert member.metrics["best_epoch"] == alone.metrics["best_epoch"], i
        assert member.normaliser.mean.tolist() == alone.normaliser.mean.tolist(), i
        d = _distances(member, alone, candles, spec)
        assert d["weights"] <= WEIGHTS_RTOL, f"member {i}: weights differ by {d['weights']:.3g}"
        assert d["probs"] <= PROBS_ATOL, f"member {i}: probabilities differ by {d['probs']:.3g}"
        assert d["val_loss"] <= VAL_LOSS_RTOL, f"member {i}: val loss differs by {d['val_loss']:.3g}"
    # the check can fail: the same fold trained from another seed is far outside every tolerance
    other = fit(candles, spec, folds[2], kind=kind, preset=preset,
                cfg=TrainConfig(epochs=3, seed=7, patience=2, batch_size=128, device=device))
    wrong = _distances(members[2], other, candles, spec)
    # (lstm after 3 epochs is still near the class prior: another seed's probabilities differ by
    # 0.037, so that margin is 7x rather than 35x)
    assert wrong["weights"] > 10 * WEIGHTS_RTOL and wrong["probs"] > 5 * PROBS_ATOL, wrong


def test_dropout_models_fall_back_to_fit(eurusd):
    assert not vmappable("attention", make_config("attention", "modern", 12, 20))
    assert vmappable("lstm", make_config("lstm", "article", 12, 20))
    assert vmappable("conv", make_config("conv", "article", 12, 20))
    candles = eurusd.iloc[:1000]
    folds = walk_forward(candles.index, train_bars=500, val_bars=150, test_bars=150)[:2]
    cfgs = [TrainConfig(epochs=1, seed=s) for s in (0, 1)]
    out = train_ensemble(candles, DatasetSpec(), folds, kind="attention", preset="modern",
                         cfgs=cfgs)
    alone = fit(candles, DatasetSpec(), folds[1], kind="attention", preset="modern", cfg=cfgs[1])
    for a, b in zip(out[1].model.state_dict().values(), alone.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="only in their seed"):
        train_ensemble(candles, DatasetSpec(), folds, kind="dense", preset="matched",
                       cfgs=[TrainConfig(seed=0), TrainConfig(seed=1, lr=0.01)])
