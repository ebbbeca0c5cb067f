"""The model a paper account trades: the one pinned at init (by its hash), kept loaded.

A process that steps repeatedly (``paper run``) keeps the model loaded and re-hashes it whenever
its files' inode, size or times change.
"""

from __future__ import annotations

from pathlib import Path

from backtests.paper.account import AccountSettings, PaperError

_MODELS: dict[tuple[str, str], tuple[tuple, object]] = {}


def _model_stamp(folder: Path) -> tuple:
    from models.checkpoint import META, WEIGHTS

    out = []
    for name in (META, WEIGHTS):
        try:
            st = (folder / name).stat()
        except OSError:
            return ()
        out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def pinned_model(cfg: AccountSettings) -> object:
    """The account's model, refused when its files no longer hash to the pinned hash.

    The hash pinned at init is the check here, so a model trusted without a model_hash at init
    (``init(trust_unhashed=True)``) keeps loading."""
    from models.checkpoint import load_model
    from models.errors import ModelError

    folder = Path(cfg.train_path)
    stamp = _model_stamp(folder)
    key = (str(folder), cfg.source)     # a pooled model differs by instrument (its normaliser)
    cached = _MODELS.get(key)
    if cached is not None and stamp and cached[0] == stamp:
        loaded = cached[1]
    else:
        try:
            loaded = load_model(folder, trust_unhashed=True,   # checked against the pin below
                                instrument=cfg.source)   # a pooled model: its normaliser
        except ModelError as exc:
            raise PaperError(f"the account's model cannot be used: {exc}") from None
        _MODELS[key] = (stamp, loaded)
    if loaded.model_hash != cfg.model_hash:
        raise PaperError(f"the model at {folder} is not the one this account was "
                         f"created with (hash {loaded.model_hash} != {cfg.model_hash}); "
                         "restore it or init a new account")
    return loaded


__all__ = ["pinned_model"]
