"""Pure numbers from results: trading performance, significance, the statistics catalogue, baselines.

Imports no store, report, executor or study (a test checks it)."""
