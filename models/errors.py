"""The errors the models layer raises for input that is the user's to fix."""

from __future__ import annotations

from data.errors import AttnbtError


class ModelError(AttnbtError):
    """A saved model that is missing, damaged, or does not fit the data it is given."""


__all__ = ["ModelError"]
