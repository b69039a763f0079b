"""The report's SVG charts, drawn from plain series: no run, folder or file is needed to test them."""
import math
import re
from html.parser import HTMLParser

import pytest

from acai.reproduce.charts import Key, Mark, Series, hover_css, line_chart

# The plot area of a 560x280 chart: x from 58 to 538, y from 12 (top) to 246 (the x axis).
LEFT, RIGHT_EDGE, TOP, AXIS = 58.0, 538.0, 12.0, 246.0


class Elements(HTMLParser):
    """Every element of a chart as (tag, attributes, the text of its <title> if it has one)."""

    def __init__(self, text: str):
        super().__init__()
        self.found: list[list] = []
        self.open: list[list] = []
        self.in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), None]
        self.found.append(element)
        if tag == "title":
            self.in_title = True
        else:
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.found.append([tag, dict(attrs), None])

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif self.open and self.open[-1][0] == tag:
            self.open.pop()

    def handle_data(self, data):
        if self.in_title and self.open:
            self.open[-1][2] = (self.open[-1][2] or "") + data

    def all(self, tag: str, **attrs) -> list[list]:
        return [e for e in self.found if e[0] == tag and all(e[1].get(k) == v for k, v in attrs.items())]


def polylines(svg: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, point.split(","))) for point in e[1]["points"].split()]
            for e in Elements(svg).all("polyline")]


def circles(svg: str) -> list[tuple[float, float]]:
    return [(float(e[1]["cx"]), float(e[1]["cy"])) for e in Elements(svg).all("circle")]


def y_ticks(svg: str) -> dict[str, float]:
    """{label: its y} of the gridlines' labels (right-aligned, left of the axis)."""
    labels = re.findall(r'<text x="54" y="([\d.]+)" text-anchor="end">([^<]*)</text>', svg)
    return {label: float(y) for y, label in labels}


def test_points_are_joined_in_the_order_given_on_linear_axes():
    svg = line_chart([Series("a", [(0, 0.0), (100, 10.0), (50, 5.0)], "#123456")], "training samples", "samples")
    # x from 0 to the largest x, y from the smallest value to the largest: both spread over the plot area
    assert polylines(svg) == [[(LEFT, AXIS), (RIGHT_EDGE, TOP), ((LEFT + RIGHT_EDGE) / 2, (TOP + AXIS) / 2)]]
    assert circles(svg) == polylines(svg)[0]
    assert set(y_ticks(svg)) == {"0", "2", "4", "6", "8", "10"}
    assert y_ticks(svg)["0"] - 4 == AXIS and y_ticks(svg)["10"] - 4 == TOP
    assert ">training samples</text>" in svg and ">100</text>" in svg  # the x axis's label and last tick
    titles = [e[2] for e in Elements(svg).all("circle")]
    assert titles == ["a: 0 samples, 0", "a: 100 samples, 10", "a: 50 samples, 5"]


def test_a_value_that_is_not_finite_breaks_the_line_and_draws_no_point():
    svg = line_chart([Series("a", [(0, 1.0), (1, 2.0), (2, math.nan), (3, 3.0), (4, math.inf), (5, 4.0)], "#000")],
                     "x", "steps")
    assert [len(line) for line in polylines(svg)] == [2, 1, 1]
    assert len(circles(svg)) == 4


def test_a_wide_positive_range_is_drawn_on_a_log_axis():
    series = [Series("a", [(0, 1e-4), (1, 1e-3), (2, 1e-1)], "#000")]
    svg = line_chart(series, "x", "steps")  # spans 1000x: log, each power of 10 one gridline
    ticks = y_ticks(svg)
    assert list(ticks) == ["0.0001", "0.001", "0.01", "0.1"]
    assert ticks["0.0001"] - 4 == AXIS and ticks["0.1"] - 4 == TOP
    steps = [b - a for a, b in zip(list(ticks.values()), list(ticks.values())[1:])]
    assert steps == pytest.approx([-78.0] * 3)  # evenly spaced decades, upwards
    ys = [y for _, y in circles(svg)]
    assert ys == pytest.approx([ticks["0.0001"] - 4, ticks["0.001"] - 4, ticks["0.1"] - 4], abs=0.05)
    linear = line_chart(series, "x", "steps", log=False)  # told: linear, 1e-3 lies near the bottom
    assert [y for _, y in circles(linear)][1] == pytest.approx(AXIS - (AXIS - TOP) * (1e-3 - 1e-4) / (0.1 - 1e-4),
                                                               abs=0.05)
    assert "0.0001" not in y_ticks(linear)
    narrow = line_chart([Series("a", [(0, 1.0), (1, 15.0)], "#000")], "x", "steps")  # 15x: linear
    assert list(y_ticks(narrow)) == ["5", "10", "15"]  # on a log axis: 1, 10 and 100
    with pytest.raises(ValueError, match="log axis"):
        line_chart([Series("a", [(0, 0.0), (1, 5.0)], "#000")], "x", "steps", log=True)


def test_nothing_to_draw_is_no_chart_and_marks_alone_are_drawn():
    assert line_chart([], "x", "steps") == ""
    assert line_chart([Series("empty", [], "#000")], "x", "steps") == ""
    assert line_chart([Series("undefined", [(0, math.nan), (1, math.nan)], "#000")], "x", "steps") == ""
    assert line_chart([], "x", "steps", marks=[Mark("paper", math.nan, "#000")]) == ""
    svg = line_chart([Series("empty", [], "#000")], "x", "steps", marks=[Mark("paper, acai", 0.24, "#abcdef")])
    elements = Elements(svg)
    assert not elements.all("g") and not polylines(svg)  # the series without points is not drawn
    [tick] = [e for e in elements.all("line") if e[1].get("stroke") == "#abcdef"]
    assert tick[2] == "paper, acai: 0.24" and float(tick[1]["x1"]) == RIGHT_EDGE


def test_flags_groups_legend_and_hover_rules():
    svg = line_chart([Series("vae seed 0", [(0, 1.0), (16, 2.0)], "#d62728", group="vae", flagged={1: "collapsed"}),
                      Series("acai seed 0", [(0, 3.0)], "#2ca02c", group="acai")], "x", "samples",
                     legend=[Key("vae", "#d62728", "vae"), Key("run 2", "#2ca02c")])
    elements = Elements(svg)
    assert [e[1]["class"] for e in elements.all("g")] == ["series g-vae", "series g-acai"]
    first, second = elements.all("circle")[:2]
    assert "class" not in first[1] and second[1]["class"] == "bad"
    assert second[2] == "vae seed 0: 16 samples, 2, collapsed"
    legend = re.search(r'<figcaption class="legend">(.*)</figcaption>', svg).group(1)
    assert legend == ('<span class="g-vae"><b style="color:#d62728">■</b> vae</span>'
                      '<span><b style="color:#2ca02c">■</b> run 2</span>')
    assert hover_css(["vae"]) == "figure.chart:has(.g-vae:hover) .series:not(.g-vae){opacity:.12}"


def test_every_text_given_is_escaped():
    evil = '"><script>alert(1)</script>'
    svg = line_chart([Series(evil, [(0, 1.0), (1, 2.0)], evil, group=evil, flagged={0: evil})], evil, evil,
                     marks=[Mark(evil, 1.5, evil)], legend=[Key(evil, evil, evil)])
    elements = Elements(svg)
    assert not elements.all("script") and "<script>" not in svg
    assert elements.all("g")[0][1] == {"class": f"series g-{evil}", "stroke": evil}  # whole, inside its attribute
    assert elements.all("g")[0][2] == evil and elements.all("circle")[0][2] == f"{evil}: 0 {evil}, 1, {evil}"
