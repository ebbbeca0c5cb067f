"""Every model kind and its presets, in one place (no torch: the config and the CLI read it at start-up).

The networks' configs build each preset (``models.networks``); the rule baselines' presets are
``models.rules.PRESETS``. The first preset of a kind is its default.
"""

from __future__ import annotations

from models.rules import KIND as RULE_KIND
from models.rules import PRESETS as RULE_PRESETS

NETWORK_PRESETS: dict[str, tuple[str, ...]] = {
    "attention": ("article", "modern"),
    "dense": ("article", "matched"),
    "conv": ("article",),
    "lstm": ("article",),
}
PRESETS: dict[str, tuple[str, ...]] = {**NETWORK_PRESETS, RULE_KIND: RULE_PRESETS}

__all__ = ["NETWORK_PRESETS", "PRESETS"]
