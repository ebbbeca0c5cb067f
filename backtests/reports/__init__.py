"""Rendering only: results (dicts, frames) → pages, figures and text; imports no store, executor or study."""
