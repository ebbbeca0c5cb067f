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
    """A loaded model with its normalisation, ready to score candles."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu") -> None:
        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.spec = loaded.spec

    @classmethod
    def from_run(cls, folder: str | Path, device: str = "cpu") -> Predictor:
        return cls(load_model(folder, device=device), device)

    def dataset(self, candles: pd.DataFrame) -> CandleDataset:
        return CandleDataset(candles, self.spec)

    @torch.inference_mode()
    def _scores(self, windows: np.ndarray, attention: bool = False):
        x = torch.as_tensor(windows, device=self.device)
        if attention:
            logits, maps = self.model(x, return_attention=True)
            return logits.float().softmax(-1).cpu().numpy(), [m.mean(1).cpu().numpy() for m in maps]
        return self.model(x).float().softmax(-1).cpu().numpy()

    def predict_frame(self, candles: pd.DataFrame, chunk: int = 1024) -> pd.DataFrame:
        """Probabilities for every bar whose window is complete; NaN rows in the warm-up.

        Windows are gathered and scored a chunk at a time: small chunks stay in the CPU's cache
        (1,024 was the fastest of 256–8,192 on the benchmark machine, docs/benchmarks.md)."""
        ds = self.dataset(candles)
        matrix = ds.matrix(self.loaded.normaliser)
        ends = np.flatnonzero(ds.window_ok)
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
