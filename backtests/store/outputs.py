"""Files written where the user asks (an ``out`` path outside the runs folder): their folder
must exist, or be created only when the user said so; a mistyped folder is never made silently."""

from __future__ import annotations

from pathlib import Path

from data.errors import AttnbtError


def out_folder(path: Path, mkdir: bool = False) -> None:
    """Make sure an ``--out`` file can be written where asked: its folder must exist, or be
    created because the user said so (``--mkdir``); a mistyped folder is never made silently."""
    folder = Path(path).parent
    if folder.is_dir():
        return
    if folder.exists():
        raise AttnbtError(f"{path}: {folder} is not a folder; choose another `out`")
    if not mkdir:
        raise AttnbtError(f"{path}: the folder {folder} does not exist; create it, or ask "
                          "`mkdir` to have it created")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttnbtError(f"{path}: cannot create the folder {folder} ({exc.strerror})") from None


__all__ = ["out_folder"]
