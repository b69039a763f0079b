"""OUT/report.html of a real tiny sweep, opened in headless Chromium: it loads without console errors,
every image loads, and its tables hold the numbers of the run folders; flagged and unfinished runs say so."""
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from acai.cli import main
from acai.reproduce.report import write_report
from acai.reproduce.sweep import reproduce

from chromium import Chromium, missing
from conftest import tiny_sweep

RUNS = Path("runs") / "lines-dz64"
ROWS = """return [...document.querySelectorAll('table.results tr[data-model]')].map(
    tr => [tr.dataset.model, [...tr.cells].map(td => td.textContent)])"""
RUN_ROWS = """return Object.fromEntries([...document.querySelectorAll('table.runs tr[data-run]')].map(
    tr => [tr.dataset.run, [...tr.cells].map(td => td.textContent)]))"""
IMAGES = "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module", autouse=True)
def timing(request):
    """One line in the test log (CI's too): how long this module took, and how much of it in the browser."""
    start, browsers = time.perf_counter(), []
    yield browsers
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and browsers:
        with capture.global_and_fixture_disabled():  # as capsys.disabled(): past the output capture
            reporter.write_line(f"\ntests/test_report.py: {time.perf_counter() - start:.1f} s, of which "
                                f"{sum(b.seconds for b in browsers):.1f} s in headless Chromium (start, pages, "
                                f"checks); the rest trains and reports the tiny sweep")


@pytest.fixture(scope="module")
def browser(timing):
    why = missing()
    if why:
        if os.environ.get("ACAI_REQUIRE_BROWSER"):  # set by .ci/run: in CI the browser test must run
            pytest.fail(f"ACAI_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    with Chromium() as chromium:
        timing.append(chromium)
        yield chromium


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Table 1 of 2 models x 2 seeds, each 2 steps and 2 evaluations; vae seed 1 then fails (its failed.json)."""
    out = tmp_path_factory.mktemp("report")
    reproduce(tiny_sweep("table1", out, models=("baseline", "vae"), seeds=2,
                         overrides=dict(samples=32, eval_every=16)), progress=False)
    assert (out / "report.html").exists()  # reproduce writes the report
    (out / RUNS / "vae" / "seed1" / "failed.json").write_text(json.dumps(
        {"error": "the ae loss is not finite at step 2 (sample 32); the checkpoint of step 1 is kept",
         "step": 2, "state": "diverged"}))
    return out


def expected(out: Path, model: str, key: str, scale: float, digits: int) -> tuple[str, int]:
    """(mean ± std, number of seeds) over the seeds whose folder has a finished, not failed run whose value is
    defined: from metrics.json alone."""
    values = []
    for seed in (0, 1):
        folder = out / RUNS / model / f"seed{seed}"
        if (folder / "metrics.json").exists() and not (folder / "failed.json").exists():
            values.append(json.loads((folder / "metrics.json").read_text())[key])
    values = np.array([v for v in values if math.isfinite(v)])
    if not len(values):
        return "undefined", 0
    text = f"{scale * values.mean():.{digits}f}"
    return text + (f" ± {scale * values.std():.{digits}f}" if len(values) > 1 else ""), len(values)


def load(browser, page: Path) -> None:
    browser.open(page.resolve().as_uri())
    errors = [entry for entry in browser.console() if entry["level"] == "SEVERE"]
    assert not errors, errors
    loaded = browser.run(IMAGES)
    assert loaded and all(loaded), loaded  # figure3.png and curves.png, embedded


def test_report_in_headless_chromium(sweep, browser):
    load(browser, write_report(sweep))
    rows = dict(browser.run(ROWS))
    assert list(rows) == ["baseline", "vae"]
    measures = (("mean_distance", 1e3, 2, (6.88, 1.21)), ("smoothness", 1.0, 3, (0.44, 0.49)))
    for i, (key, scale, digits, paper) in enumerate(measures):
        for model, paper_mean in zip(rows, paper):
            ours, seeds, paper_text, difference = rows[model][3 + 4 * i: 7 + 4 * i]
            text, count = expected(sweep, model, key, scale, digits)
            assert ours.split(" (")[0] == text and seeds == (str(count) if count == 2 else f"{count} of 2")
            assert paper_text.startswith(f"{paper_mean:.{digits}f} ± ")
            if ours != "undefined":
                mean = float(ours.split(" ")[0])
                assert float(difference) == pytest.approx(mean - paper_mean, abs=1.5 * 10 ** -digits)
        assert "1 of 2 diverged" in rows["vae"][3 + 4 * i]  # the failed run is named in the cell
    for model in rows:  # every run collapsed at 32 samples: flagged, never shown as a plain number
        states = [json.loads((sweep / RUNS / model / f"seed{s}" / "metrics.json").read_text())["state"] for s in (0, 1)]
        if "collapsed" in states:
            assert "collapsed" in rows[model][3]
    runs = browser.run(RUN_ROWS)
    assert len(runs) == 4
    for run_id, cells in runs.items():
        folder = sweep / "runs" / run_id
        metrics = json.loads((folder / "metrics.json").read_text())
        assert cells[2] == run_id[-1] and cells[3] == "32 of 32"
        if (folder / "failed.json").exists():  # its metrics.json is not shown as if it had finished
            assert cells[1].startswith("failed: the ae loss is not finite") and cells[4] == cells[5] == "—"
            continue
        assert cells[1] == "done" + ("" if metrics["state"] == "ok" else f": {metrics['state']}")
        assert cells[4] == f"{metrics['seconds']:.0f} s" and cells[5] == f"{metrics['samples_per_second']:.0f}"
        assert cells[6].startswith(metrics["acai_version"]) and cells[7] == metrics["torch_version"]
        assert (metrics["git_commit"] or "not a git checkout")[:10] in cells[6]
        assert cells[8].startswith(metrics["device_name"])
    assert browser.run("return document.querySelectorAll('svg polyline').length") > 0  # the learning curves


def test_unfinished_run_is_shown_as_such(sweep, browser, tmp_path):
    (sweep / RUNS / "baseline" / "seed1" / "metrics.json").rename(tmp_path / "metrics.json")
    try:
        load(browser, write_report(sweep))
        rows = dict(browser.run(ROWS))
        assert "(1 of 2 resumable)" in rows["baseline"][3] and rows["baseline"][4] == "1 of 2"
        assert browser.run(RUN_ROWS)["lines-dz64/baseline/seed1"][1].startswith("resumable")
        assert "Not every run is finished" in browser.run("return document.querySelector('.banner').textContent")
    finally:
        (tmp_path / "metrics.json").rename(sweep / RUNS / "baseline" / "seed1" / "metrics.json")


def test_the_checks_catch_console_errors_and_broken_images(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<img src="missing.png"><script>console.error("boom")</script>')
    browser.open(page.as_uri())
    messages = " ".join(entry["message"] for entry in browser.console() if entry["level"] == "SEVERE")
    assert "boom" in messages and "missing.png" in messages
    assert browser.run(IMAGES) == [False]


def test_report_command(sweep, tmp_path, capsys):
    assert main(["report", str(sweep)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {sweep / 'report.html'}"
    moved = tmp_path / "moved"  # copied elsewhere after the sweep: sweep.json still names the old folder
    shutil.copytree(sweep, moved)
    assert main(["report", str(moved)]) == 0 and str(moved.resolve()) in (moved / "report.html").read_text()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("acai: error:") and "sweep.json" in err and "\n" not in err


def bold_in_markdown(markdown: str) -> dict[str, str | None]:
    """{measure heading: the model whose cell is bold} of Table 1's markdown."""
    lines = [line for line in markdown.splitlines() if line.startswith("| lines |")]
    header = next(line for line in markdown.splitlines() if line.startswith("| Data |")).split(" | ")
    bold = {}
    for column, heading in enumerate(header):
        if heading in ("Mean Distance (×10⁻³)", "Smoothness"):
            models = [line.split(" | ")[2] for line in lines if line.split(" | ")[column].startswith("**")]
            bold[heading] = models[0] if models else None
    return bold


def test_markdown_table_and_report_bold_the_same_model(sweep, browser, tmp_path):
    """The page's "best" comes from the markdown table's code (tables.best_models), not a copy of it."""
    from acai.reproduce.plan import read_sweep
    from acai.reproduce.sweep import write_results

    out = tmp_path / "picked"
    shutil.copytree(sweep, out)
    (out / RUNS / "vae" / "seed1" / "failed.json").unlink()
    values = {("baseline", 0): (4e-3, 0.12), ("baseline", 1): (5e-3, 0.13), ("vae", 0): (3e-3, 0.30),
              ("vae", 1): (2e-3, 0.40)}  # vae best on Mean Distance, the baseline on Smoothness
    for (model, seed), (md, sm) in values.items():
        log = out / RUNS / model / f"seed{seed}" / "log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        entries[-1].update(mean_distance=md, smoothness=sm, state="ok")
        log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    spec = read_sweep(out)
    spec.out = out
    markdown = write_results(spec)
    assert bold_in_markdown(markdown) == {"Mean Distance (×10⁻³)": "vae", "Smoothness": "baseline"}
    load(browser, write_report(out))
    best = browser.run("""return [...document.querySelectorAll('table.results tr[data-model]')].map(tr =>
        [tr.dataset.model, [...tr.cells].map((td, i) => td.classList.contains('best') ? i : -1).filter(i => i >= 0)])""")
    assert {model: cells for model, cells in best if cells} == {"vae": [3], "baseline": [7]}


def test_report_of_one_run_and_of_a_folder_of_runs(browser, tmp_path, capsys):
    from conftest import tiny_args

    run = tmp_path / "one"
    assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline", samples=64,
                                                                              eval_every=32)]) == 0
    assert main(["report", str(run)]) == 0
    load(browser, run / "report.html")
    rows = dict(browser.run(ROWS))
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(rows) == ["one"] and rows["one"][2] == "one"
    assert rows["one"][3].split(" (")[0] == f"{1e3 * metrics['mean_distance']:.2f}"
    assert browser.run("return document.querySelectorAll('svg polyline').length") > 0  # its curves
    assert browser.run("return document.images.length") == 1  # its interpolation grid
    # 2 evaluations under acai train's paper window of 20: the page says what its median is of
    assert "the median of its last 2 evaluations (eval_window 20" in (run / "report.html").read_text()
    seeds = tmp_path / "seeds"
    assert main(["train", "--model", "acai", "--seeds", "2", "--out", str(seeds),
                 *tiny_args("acai", samples=64, eval_every=32)]) == 0
    assert main(["report", str(seeds)]) == 0
    load(browser, seeds / "report.html")
    assert list(dict(browser.run(ROWS))) == ["seed1", "seed2"]  # tiny_args trains seed 1 first
    assert set(browser.run(RUN_ROWS)) == {"seed1", "seed2"}
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "holds no sweep" in capsys.readouterr().err


def test_the_pixel_baseline_row_is_shown_once_under_the_probe_on_final_codes(tmp_path):
    """Table 2's row for a dense layer on raw pixels: once per data set, in the markdown table and in the page's
    results table alike, its accuracy (or "not measured") and the paper's under the probe on final codes."""
    import re

    from acai.reproduce import tables
    from acai.reproduce.plan import pixel_accuracies, pixel_units, write_sweep
    from acai.reproduce.tables import Cell
    from acai.training import checkpoint as ckpt

    spec = tiny_sweep("table2", tmp_path, datasets=("mnist", "svhn"), models=("baseline",), lines=False)
    write_sweep(spec, [])  # nothing trained: the model rows say "not started", the pixel rows are read from OUT
    mnist = pixel_units(spec)[0]
    ckpt.save_json({**mnist.probe, "accuracy": 91.234}, tmp_path / f"{mnist.id}.json")  # as PixelUnit caches it

    cells = {("mnist", 32): {"baseline": {"probe_accuracy": Cell([80.0], ["ok"]), "final_probe": Cell([85.0], ["ok"])}}}
    markdown, _ = tables.render(spec.table, cells, 1, "header", pixel_accuracies(spec))
    rows = [line.strip("| ").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    header = rows[0]
    final, paper = header.index("Probe on final codes (%)"), header.index("Paper: Probe on final codes (%)")
    pixels = {row[0]: row for row in rows if row[1] == "pixels"}
    assert list(pixels) == ["mnist", "svhn"]
    assert (pixels["mnist"][final], pixels["mnist"][paper]) == ("91.23", "92.31")
    assert (pixels["svhn"][final], pixels["svhn"][paper]) == ("not measured", "23.48")
    assert markdown.count("91.23") == markdown.count("92.31") == 1

    page = write_report(tmp_path).read_text()
    table = re.search(r'<table class="results">(.*?)</table>', page, re.S).group(1)
    header = re.findall(r"<th[^>]*>(.*?)</th>", table)
    html_rows = dict(re.findall(r'<tr data-pixels="([^"]*)">(.*?)</tr>', table))
    assert list(html_rows) == ["mnist", "svhn"]
    ours = header.index("Probe on final codes (%): ours")
    mnist_cells, svhn_cells = (re.findall(r"<td[^>]*>(.*?)</td>", html_rows[data]) for data in ("mnist", "svhn"))
    assert len(mnist_cells) == len(header) and mnist_cells[:3] == ["mnist", "pixels", pixels["mnist"][2]]
    assert (mnist_cells[ours], mnist_cells[ours + 2]) == ("91.23", "92.31")
    assert (svhn_cells[ours], svhn_cells[ours + 2]) == ("not measured", "23.48")
    assert page.count("91.23") == page.count("92.31") == 1
