"""The suite's rule for pictures (tests/conftest.py): a test not marked ``draws`` gets a 1×1 PNG
for every matplotlib picture and empty Bokeh components; a test marked ``draws`` gets the real
ones. It holds in pytest-xdist's workers as in one process (the controller, which runs no test,
does not import the drawing libraries at all)."""

from __future__ import annotations

import io
import os

import pytest
from matplotlib.figure import Figure
from PIL import Image

pytestmark = pytest.mark.skipif(os.environ.get("ATTNBT_TEST_DRAW") == "all",
                                reason="ATTNBT_TEST_DRAW=all draws in every test")


def _png_size() -> tuple[int, int]:
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue())).size


def _charts() -> tuple[str, dict]:
    from bokeh.embed import components
    from bokeh.plotting import figure

    chart = figure(width=100, height=80)
    chart.line([0, 1], [1, 0])
    return components({"c": chart})


def test_an_undrawn_test_gets_a_one_pixel_png_and_empty_charts():
    assert _png_size() == (1, 1)
    script, divs = _charts()
    assert script == "" and divs == {"c": "<div data-test-chart='c'></div>"}


@pytest.mark.draws
def test_a_draws_test_gets_the_real_picture_and_charts():
    assert _png_size() == (100, 50)
    script, divs = _charts()
    assert "<script" in script and "data-test-chart" not in divs["c"]
