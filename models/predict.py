"""Per-bar class probabilities ``[p_none, p_buy, p_sell]`` from a saved model.

``predict_frame`` scores every bar of a frame in one batched pass; ``predict_at`` scores one bar
from the candles up to it alone (the frame truncated after that bar). Both give the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data.dataset import CandleDataset
from models.checkpoint import LoadedModel, ModelError, load_model

PROB_COLUMNS = ("p_none", "p_buy", "p_sell")


class Predictor:
    """A loaded model with its normalisation, ready to score candles.

    A model saved with a calibration (``train.calibration``) gives calibrated probabilities
    everywhere (batched, one window, incremental); ``calibrated=False`` gives the network's own.
    """

    def __init__(self, loaded: LoadedModel, device: str = "cpu", *,
                 calibrated: bool = True) -> None:
        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.spec = loaded.spec
        self.calibrator = loaded.meta_info.calibration if calibrated else None

    @classmethod
    def from_run(cls, folder: str | Path, device: str = "cpu", *,
                 trust_unhashed: bool = False) -> Predictor:
        return cls(load_model(folder, device=device, trust_unhashed=trust_unhashed), device)

    def dataset(self, candles: pd.DataFrame) -> CandleDataset:
        return CandleDataset(candles, self.spec)

    @torch.inference_mode()
    def _scores(self, windows: np.ndarray, attention: bool = False):
        """Probabilities of complete (finite) windows; a model that turns them into NaN or inf
        is refused rather than read as "no signal"."""
        x = torch.as_tensor(windows, device=self.device)
        maps = None
        if attention:
            logits, maps = self.model(x, return_attention=True)
        else:
            logits = self.model(x)
        probs = logits.float().softmax(-1).cpu().numpy()
        if not np.isfinite(probs).all():
            raise ModelError(f"the model {self.loaded.name} gives NaN or inf probabilities for "
                             f"{int((~np.isfinite(probs)).any(axis=1).sum())} of {len(probs)} "
                             "complete windows; its weights or normalisation are damaged")
        if self.calibrator is not None:
            probs = self.calibrator.apply(probs)
        if attention:
            return probs, [m.mean(1).cpu().numpy() for m in maps]
        return probs

    def predict_frame(self, candles: pd.DataFrame, chunk: int = 1024, *, first: int = 0,
                      last: int | None = None,
                      dataset: CandleDataset | None = None) -> pd.DataFrame:
        """Probabilities for every bar whose window is complete; NaN rows in the warm-up.
        ``first`` … ``last``: score only the bars at these positions (the others are NaN); the
        features are still those of the whole frame. ``dataset``: the caller's
        ``CandleDataset`` of these candles and this model's spec (its features, not computed
        again).

        Windows are gathered and scored a chunk at a time: small chunks stay in the CPU's cache
        (1,024 was the fastest of 256–8,192 on the benchmark machine, docs/benchmarks.md)."""
        ds = self.dataset(candles) if dataset is None else dataset
        if ds.candles is not candles or ds.spec != self.spec:
            raise ModelError("`dataset` is not of these candles and this model's spec")
        matrix = ds.matrix(self.loaded.normaliser)
        ends = np.flatnonzero(ds.window_ok)
        if first or last is not None:
            ends = ends[(ends >= first) & (ends <= (len(candles) - 1 if last is None else last))]
        out = np.full((len(candles), 3), np.nan)
        for i in range(0, len(ends), chunk):
            part = ends[i:i + chunk]
            out[part] = self._scores(ds.windows(matrix, part))
        return pd.DataFrame(out, index=candles.index, columns=list(PROB_COLUMNS))

    def _window_at(self, candles: pd.DataFrame, position: int) -> np.ndarray | None:
        """The normalised window ending at ``position``, built from ``candles[:position + 1]``
        only; None when the window is not complete."""
        ds = self.dataset(candles.iloc[: position + 1])
        if not ds.window_ok[position]:
            return None
        return ds.windows(ds.matrix(self.loaded.normaliser), np.array([position]))

    def predict_at(self, candles: pd.DataFrame, position: int) -> np.ndarray:
        """Probabilities for bar ``position`` computed from ``candles[:position + 1]`` only."""
        window = self._window_at(candles, position)
        return np.full(3, np.nan) if window is None else self._scores(window)[0]

    def attention_at(self, candles: pd.DataFrame, position: int):
        """(probabilities, per-layer W×W attention maps averaged over heads) for one bar."""
        if self.loaded.kind != "attention":
            raise ModelError(f"a {self.loaded.kind} model has no attention maps; "
                             "pass an attention run")
        window = self._window_at(candles, position)
        if window is None:
            raise ModelError(f"bar {candles.index[position]} has no complete {self.spec.window}-"
                             "bar window (too close to the start of the data)")
        probs, maps = self._scores(window, attention=True)
        return probs[0], [m[0] for m in maps]


# --- incremental prediction (paper trading) ----------------------------------------------------
class IncrementalPredictor:
    """Scores new bars as they come, carrying the features' state instead of recomputing them.

    ``state`` (a ``data.incremental.FeatureState`` keeping the model's window of feature rows)
    is all it needs from the past: ``advance(new_candles)`` costs time proportional to the new
    bars only. Its probabilities equal ``predict_frame`` over the full history to float32
    rounding (≤ 1e-6); the features equal the batch computation to ≤ 1e-9.
    """

    def __init__(self, predictor: Predictor, state=None) -> None:
        from data.incremental import FeatureState

        spec = predictor.spec
        self.predictor = predictor
        self.state = state if state is not None else FeatureState(spec.features, spec.window)
        if self.state.feature_set != spec.features or self.state.keep < spec.window:
            raise ModelError(f"the saved feature state ({self.state.feature_set}, "
                             f"{self.state.keep} rows) does not fit this model ({spec.features}, "
                             f"{spec.window}-bar windows)")

    @classmethod
    def from_history(cls, predictor: Predictor, candles: pd.DataFrame) -> IncrementalPredictor:
        """Ready to score the bar after ``candles`` (computed once, in batch)."""
        from data.incremental import FeatureState

        spec = predictor.spec
        return cls(predictor, FeatureState.from_history(candles, spec.features, spec.window))

    def advance(self, candles: pd.DataFrame, chunk: int = 1024) -> pd.DataFrame:
        """Take the bars of ``candles`` (all after the last one taken) and return their
        probabilities (NaN where the window is not complete yet)."""
        w = self.predictor.spec.window
        before = self.state.window()
        rows = self.state.extend(candles)
        raw = np.vstack([before, rows]) if len(before) else rows
        offset = len(raw) - len(rows)
        ok = np.isfinite(raw).all(axis=1)
        run = np.convolve(ok.astype(int), np.ones(w, int))[: len(ok)]
        ends = np.flatnonzero(run[offset:] == w) + offset
        out = np.full((len(candles), 3), np.nan)
        if len(ends):
            matrix = np.nan_to_num(self.predictor.loaded.normaliser.transform(raw), nan=0.0)
            offsets = np.arange(-w + 1, 1)
            threads = torch.get_num_threads()
            if len(ends) < 64:   # a few windows: threads cost more than they save
                torch.set_num_threads(1)
            try:
                for i in range(0, len(ends), chunk):
                    part = ends[i:i + chunk]
                    out[part - offset] = self.predictor._scores(matrix[part[:, None] + offsets])
            finally:
                torch.set_num_threads(threads)
        return pd.DataFrame(out, index=candles.index, columns=list(PROB_COLUMNS))
