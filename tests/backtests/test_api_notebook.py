"""examples/api.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), as a
user runs it, and shows what it promises: the statistics, the trades, the comparison and the
Bokeh charts, with no error output.

As in every test not marked ``draws`` (tests/conftest.py), the reports the notebook writes are
built but their pictures are not rasterised nor their Bokeh charts serialised: a cell that this
test puts before the notebook's own (never into the file) applies conftest's replacements in
the kernel. That was two fifths of the kernel's CPU; the pictures and charts of a backtest
report are checked by the ``draws`` tests of tests/backtests/test_backtest.py, and what this
test reads (the tables, the comparison, ``own.plot()``'s inline Bokeh output) is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "api.ipynb"
TESTS = Path(__file__).resolve().parents[1]
# conftest's replacements of Figure.savefig and bokeh.embed.components, in the kernel. Our
# packages are imported first: tests/data (no __init__.py) would otherwise be taken for the
# `data` package where attnbt is an editable install (its finder comes after sys.path's).
NOT_DRAWN = (f"import sys\nimport backtests, data, models, strategy\n"
             f"sys.path.insert(0, {str(TESTS)!r})\nimport conftest\n"
             f"conftest._draw_only_where_checked()\nconftest._DRAW['now'] = False\n"
             f"sys.path.remove({str(TESTS)!r})\ndel sys.modules['conftest']")


@pytest.mark.slow
def test_the_example_notebook_runs_in_a_jupyter_kernel(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("ATTNBT_RUNS", str(tmp_path / "runs"))     # the kernel inherits it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(NOT_DRAWN))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [(cell.source, o) for cell in nb.cells if cell.cell_type == "code"
               for o in cell.outputs]
    errors = [o for _, o in outputs if o.output_type == "error"
              or (o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text)]
    assert not errors, errors

    def html_of(source_start: str) -> str:
        return "".join(o.get("data", {}).get("text/html", "") for src, o in outputs
                       if src.startswith(source_start))

    assert "Return [%]" in html_of("rule = ") and "Same bars, same costs" in html_of("rule = ")
    stats = "".join(o.get("data", {}).get("text/plain", "") for src, o in outputs
                    if src == "rule.stats")
    assert "Sharpe ratio" in stats and "Trades" in stats
    assert "entry_time" in html_of("momentum = ")                       # the trades table
    assert "momentum 12" in html_of("api.compare") and "Sharpe ratio" in html_of("api.compare")
    shown = [o for src, o in outputs if src == "own.plot()"]
    assert any("application/vnd.bokehjs_exec.v0+json" in o.get("data", {}) for o in shown)
    assert len(list((tmp_path / "runs").glob("*/report.html"))) == 2
