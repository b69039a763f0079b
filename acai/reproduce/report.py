"""`acai report OUT`: one self-contained HTML page (OUT/report.html) of everything a reproduction wrote.

Built from the folder alone, for every table found in OUT: the sweep of OUT/sweep.json and any other
OUT/TABLE.json an earlier sweep wrote into the same folder (table2 and table3 share their runs).
* Each table, recomputed from the run folders: ours as mean ± std over seeds with the number of
  seeds, the paper's number and our difference to it. A cell names its unfinished, failed, collapsed
  or diverged runs; **bold** is the best model whose every seed finished and is defined and unflagged.
  Table 2 adds the pixel baseline's row of each data set (tables.pixel_row, as in the markdown table).
* For every (data set, d_z): the interpolation grids and samples (the PNGs the sweep wrote, else drawn
  from seed 0's checkpoints into OUT/report-files/), and the learning curve of every metric of
  log.jsonl against samples for every run, as inline SVG (acai/reproduce/charts.py; hover a point or a
  legend entry: CSS and SVG titles only, no script).
* Every run: its state (acai/reproduce/status.py), seed, samples, wall time, samples/s, acai version and git
  commit, torch version, device, and configuration.
Images are embedded as data: URIs: the page opens anywhere, without network or other files.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acai import __version__
from acai.core.data import Capability, DataError, describe_data
from acai.core.models import MODELS
from acai.reproduce import charts, tables
from acai.reproduce.plan import SWEEP, RunSpec, SweepSpec, describe, finished, pixel_accuracies, read_sweep
from acai.reproduce.status import run_state
from acai.reproduce.tables import TABLES, Cell, Measure, Table, paper_text
from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError, TrainConfig
from acai.training.machine import source_commit
from acai.training.run_folder import (CHECKPOINT, FAILED, LOG, LOG_KEYS, METRICS, METRICS_KEYS, REPORT, REPORT_FILES,
                                      is_run, read_log, samples_trained, state as folder_state)

# The page is written into the folder it reports: when that fails, the way on is not another --out.
REMEDY = "make the folder writable, or copy it somewhere writable and run acai report on the copy"


def esc(value) -> str:
    """Any text from a path, a config or a file, for HTML text and attribute values alike (quotes too)."""
    return html.escape(str(value), quote=True)


FLAGGED = ("constant", "mean image", "collapsed")  # what an evaluation may find: a done run so flagged is marked
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.best{font-weight:700}.better{color:#17702c}.worse{color:#b02a1e}
.flag{background:#fff1d6}.failed{background:#fde0dc}.unfinished{background:#e8eefc}.note{color:#555}
.banner{padding:8px 12px;border-left:4px solid #d08a00;background:#fff7e6}
figure{display:inline-block;margin:0 16px 16px 0;vertical-align:top}figcaption{font-size:12px;color:#444}
img{image-rendering:pixelated;max-width:100%}pre{font-size:11px;margin:0;text-align:left}
.runs td.n{white-space:nowrap}h4{margin:6px 0 0}"""


@dataclass(kw_only=True)
class RunView:
    """One run folder as the report shows it."""

    run: RunSpec
    folder: Path
    state: str  # done / running / resumable / failed / not started (acai/reproduce/status.py)
    samples: int
    detail: str
    metrics: dict | None  # done runs: metrics.json, re-summarised with the sweep's window
    log: list[dict]
    diverged: bool  # failed.json: its loss stopped being finite
    measured: dict = field(default_factory=dict)  # measure key -> value (see `measured`)
    label: str = ""  # its row's name: the run id of a sweep, the folder below OUT of `acai train` runs

    @property
    def flag(self) -> str:
        """'ok', an evaluation's flag (constant, collapsed), 'diverged', or the state of an unfinished run."""
        if self.state == "done":
            return self.metrics.get("state", "ok")
        return "diverged" if self.state == "failed" and self.diverged else self.state


def table_specs(out: Path) -> list[SweepSpec]:
    """The sweep of sweep.json, then one spec per other TABLE.json in OUT: as sweep.json recorded it, or
    (a folder written before sweep.json kept every table's spec) the sweep's settings with its rows' runs."""
    spec = read_sweep(out)
    stored = ckpt.read_json(out / SWEEP, {}).get("tables")
    stored = stored if isinstance(stored, dict) else {}
    specs = [spec]
    for name, table in TABLES.items():
        path = out / f"{name}.json"
        if name != spec.table.name and table.measures and path.exists():
            rows = ckpt.read_json(path)
            values = stored.get(name) or {
                **spec.to_dict(), "what": name, "seeds": max(r["seeds"] for r in rows),
                "models": list(dict.fromkeys(r["model"] for r in rows)),
                "datasets": list(dict.fromkeys(r["data"] for r in rows)),
                "latents": list(dict.fromkeys(r["dz"] for r in rows if not describe_data(r["data"]).fixed_latent))}
            specs.append(SweepSpec.from_dict(values))
    for each in specs:
        each.out = out  # the folder as given now (a sweep started elsewhere, or with a relative path)
    return sorted(specs, key=lambda s: list(TABLES).index(s.what))


def view(run: RunSpec, out: Path) -> RunView:
    state, samples, detail = run_state(run, out)
    folder = run.folder(out)
    log = read_log(folder / LOG, LOG_KEYS) if (folder / LOG).exists() else []
    return RunView(run=run, folder=folder, state=state, samples=samples, detail=detail,
                   metrics=finished(run, out) if state == "done" else None, log=log,
                   diverged=(folder / FAILED).exists(), label=run.id)


def measured(view: RunView, measure: Measure, spec: SweepSpec | None) -> float | None:
    """A done run's value of `measure` (None for a run not done, or a measurement made afterwards that is
    not cached for its checkpoint and the sweep's settings: the report measures nothing itself)."""
    if view.state != "done":
        return None
    if measure.key not in view.measured:
        if measure.after is None:
            value = float(view.metrics.get(measure.key, math.nan))
        else:
            value = measure.after.measure(view.folder, measure.after.options(spec), cached_only=True)
        view.measured[measure.key] = value
    return view.measured[measure.key]


def cell_of(members: list[RunView], measure: Measure, spec: SweepSpec | None) -> tuple[Cell, dict[str, int]]:
    """One measure of one model as the markdown table's Cell (a run not yet measured counts as missing,
    so the cell is never eligible for "best"), and why each missing seed has no value."""
    values, states, missing = [], [], {}
    for member in members:
        value = measured(member, measure, spec)
        if member.flag == "diverged" or value is not None:
            values.append(math.nan if value is None else value)
            states.append(member.flag)
        else:
            why = "not measured" if member.state == "done" else member.state
            missing[why] = missing.get(why, 0) + 1
    return Cell(values, states, missing=sum(missing.values())), missing


def cell_html(cell: Cell, missing: dict[str, int], n: int, paper, measure: Measure, best: bool) -> str:
    """The <td>s of one measure of one model: ours (every seed not counted is named), seeds, paper, difference."""
    text = cell.text(measure.scale, measure.digits) if cell.values else "—"
    text += "".join(f" ({count} of {n} {why})" for why, count in missing.items())
    mean = cell.mean_std()[0] * measure.scale
    defined = sum(math.isfinite(v) for v in cell.values)
    css = ("unfinished" if missing else "failed" if "diverged" in cell.states else
           "flag" if len(cell.usable) < len(cell.values) else "")
    diff = ""
    if paper is not None and math.isfinite(mean):
        delta = mean - (paper[0] if isinstance(paper, tuple) else paper)
        better = (delta < 0) == measure.lower_is_better
        diff = f'<td class="{"better" if better else "worse"}">{delta:+.{measure.digits}f}</td>'
    return (f'<td class="{css}{" best" if best else ""}">{html.escape(text)}</td>'
            f'<td>{defined if defined == n else f"{defined} of {n}"}</td>'
            f'<td>{paper_text(paper, measure.digits)}</td>{diff or "<td>—</td>"}')


def results_html(table: Table, blocks: dict, spec: SweepSpec | None, pixels: dict | None = None) -> list[str]:
    """The rows of a results table: blocks {(data, dz): {row label: [RunView of each seed]}}, then the pixel
    baseline's row of each data set in `pixels` ({data: accuracy or None}, as tables.render takes it).
    "Best" is tables.best_models's, the one that bolds the markdown table."""
    head = "".join(f"<th>{html.escape(m.heading)}: ours</th><th>seeds</th><th>paper</th><th>ours − paper</th>"
                   for m in table.measures)
    lines = [f'<table class="results"><tr><th class="l">Data</th><th>d_z</th><th class="l">Model</th>{head}'
             f"<th>samples/s</th></tr>"]
    for (data, dz), by_label in blocks.items():
        cells = {label: {m.key: cell_of(members, m, spec) for m in table.measures}
                 for label, members in by_label.items()}
        best = tables.best_models(table, {label: {k: c for k, (c, _) in by.items()} for label, by in cells.items()})
        for label, members in by_label.items():
            model = members[0].run.model
            row = "".join(cell_html(*cells[label][m.key], len(members), m.paper.get((data, dz), {}).get(model), m,
                                    best[m.key] == label) for m in table.measures)
            rates = [v.metrics["samples_per_second"] for v in members if v.metrics]
            lines.append(f'<tr data-block="{esc(data)}-dz{esc(dz)}" data-model="{esc(label)}"><td class="l">'
                         f'{esc(data)}</td><td>{esc(dz)}</td><td class="l">{esc(label)}</td>{row}'
                         f"<td>{f'{np.mean(rates):.0f}' if rates else '—'}</td></tr>")
    for data, accuracy in (pixels or {}).items():
        dz, model, measures = tables.pixel_row(table, data, accuracy)
        row = "".join(f"<td>{esc(ours)}</td><td>—</td><td>{esc(paper)}</td><td>—</td>" for ours, paper in measures)
        lines.append(f'<tr data-pixels="{esc(data)}"><td class="l">{esc(data)}</td><td>{esc(dz)}</td>'
                     f'<td class="l">{esc(model)}</td>{row}<td>—</td></tr>')
    lines.append("</table>")
    return lines


def table_html(spec: SweepSpec, runs: dict[str, RunView]) -> str:
    table = spec.table
    lines = [f'<h2 id="{esc(table.name)}">{html.escape(table.title)}</h2><p class="note">{html.escape(describe(spec))} '
             f"{spec.seeds} seed{'s' if spec.seeds > 1 else ''} per model; mean ± std over the seeds whose value "
             f"is defined.</p>"]
    blocks = {(data, dz): {model: [runs[spec.run(data, dz, model, seed).id] for seed in range(spec.seeds)]
                           for model in spec.models}
              for data in spec.datasets for dz in spec.latent_sizes(data)}
    lines += results_html(table, blocks, spec, pixel_accuracies(spec))
    lines += [f'<p class="note">{html.escape(note)}</p>' for note in table.notes]
    return "\n".join(lines)


def image_tag(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def block_figures(spec: SweepSpec, data: str, dz: int, runs: list[RunView], pngs: list[Path]) -> str:
    """The PNGs of OUT that belong to this block (taken out of `pngs`), else grids drawn from seed 0."""
    from acai.reproduce import figures

    key = f"{data}-dz{dz}"
    lines = describe_data(data).offers(Capability.LINES)  # Figures 3 and 4, named without d_z
    mine = [p for p in pngs if key in p.name or lines and p.name.startswith(("figure3", f"figure4-{data}"))]
    for p in mine:
        pngs.remove(p)
    if mine:
        return "".join(image_tag(p, p.relative_to(spec.out).as_posix()) for p in mine)
    seed0 = {v.run.model: v.folder for v in runs if v.run.seed == 0 and v.state == "done"}
    drawn = [(f"{key}-interpolations.png", "interpolations (seed 0; rows: models)",
              lambda path: figures.figure3(seed0, path) if lines else
              figures.interpolation_figure(seed0, spec.pairs, path))]
    if "vae" in seed0:
        drawn.append((f"{key}-vae-samples.png", "samples of the VAE (seed 0)",
                      lambda path: figures.vae_samples(seed0["vae"], path)))
    parts = []
    for name, caption, draw in drawn if seed0 else ():
        path = spec.out / REPORT_FILES / name
        newest = max((folder / CHECKPOINT).stat().st_mtime for folder in seed0.values())
        try:
            if not path.exists() or path.stat().st_mtime < newest:
                draw(path)
            parts.append(image_tag(path, caption))
        except (ConfigError, DataError) as error:
            parts.append(f'<p class="note">{html.escape(caption)}: not drawn ({html.escape(str(error))})</p>')
    return "".join(parts) or '<p class="note">No grid: no seed 0 has finished.</p>'


def chart(metric: str, runs: list[RunView], paper: dict, scale: float, by_run: bool = False) -> str:
    """One metric against samples: a line per run (colour: its model), a point per evaluation (hollow: a
    flagged state), the paper's value per model as a tick on the right edge.
    `by_run`: a colour per run, named by its label (runs of one model side by side)."""
    models = list(MODELS)

    def colour(model: str) -> str:  # a composed model (BASE+acai) has no colour of its own
        return charts.colour(models.index(model)) if model in models else "#000"

    logged = [(v, [e for e in v.log if isinstance(e.get(metric), (int, float))]) for v in runs]
    logged = [(v, entries) for v, entries in logged if entries]
    series = [charts.Series(
        name=(v.label if by_run else f"{v.run.model} seed {v.run.seed}") + ("" if v.flag == "ok" else f" ({v.flag})"),
        points=[(e["samples"], scale * e[metric]) for e in entries],
        colour=charts.colour(index) if by_run else colour(v.run.model), group=v.run.model,
        flagged={i: e["state"] for i, e in enumerate(entries) if e.get("state", "ok") != "ok"})
        for index, (v, entries) in enumerate(logged)]
    if by_run:
        legend = [charts.Key(v.label, s.colour) for (v, _), s in zip(logged, series)]
    else:
        legend = [charts.Key(m, colour(m), m) for m in dict.fromkeys(v.run.model for v, _ in logged) if m in models]
    marks = [charts.Mark(f"paper, {model}", value, colour(model)) for model, value in paper.items()]
    return charts.line_chart(series, "training samples", "samples", marks, legend)


def curves(data: str, dz: int, runs: list[RunView], by_run: bool = False) -> str:
    measures = {m.key: m for table in TABLES.values() for m in table.measures}
    metrics = dict.fromkeys(k for v in runs for e in v.log for k, x in e.items()  # pairs: how many were scored
                            if k not in ("samples", "evaluation", "pairs") and isinstance(x, (int, float)))
    parts = []
    for metric in metrics:
        m = measures.get(metric)
        paper = {model: (value[0] if isinstance(value, tuple) else value) * 1.0 for model, value in
                 (m.paper.get((data, dz), {}) if m else {}).items() if model in {v.run.model for v in runs}}
        heading = m.heading if m else metric
        svg = chart(metric, runs, paper, m.scale if m else 1.0, by_run)
        if svg:
            parts.append(f"<div><h4>{html.escape(heading)}</h4>{svg}</div>")
    if not parts:
        return '<p class="note">No evaluation logged yet.</p>'
    return (f'<div class="charts">{"".join(parts)}</div><p class="note">A line per run (colour: '
            f"{'run' if by_run else 'model'}), a point per evaluation, hollow where it found the model constant or collapsed; a tick on the right edge: the paper's "
            f"value after 2²⁴ samples. Hover a point, a line or a model for its values.</p>")


def runs_html(runs: list[RunView]) -> str:
    rows = ['<table class="runs"><tr><th class="l">Run</th><th class="l">State</th><th>Seed</th><th>Samples</th>'
            '<th>Wall time</th><th>Samples/s</th><th class="l">acai, commit</th><th class="l">torch</th>'
            '<th class="l">Device</th><th class="l">Configuration</th></tr>']
    for v in runs:
        m = v.metrics or {}
        state = v.state + (f": {v.detail}" if v.detail else "")
        css = ("flag" if v.flag in FLAGGED else "") if v.state == "done" else (
            "failed" if v.state == "failed" else "unfinished")
        commit = m.get("git_commit")
        source = (f"{m['acai_version']}, {commit[:10] if commit else 'not a git checkout'}"
                  f"{' + uncommitted changes' if m.get('git_dirty') else ''}") if "acai_version" in m else "not recorded"
        config = json.dumps(m.get("config") or v.run.config.to_dict(), indent=1, sort_keys=True)
        wall = f"{m['seconds']:.0f} s" if "seconds" in m else "—"
        rate = f"{m['samples_per_second']:.0f}" if "samples_per_second" in m else "—"
        budget = v.run.config.steps * v.run.config.batch
        rows.append(f'<tr data-run="{html.escape(v.label)}" class="{css}"><td class="l n">{html.escape(v.label)}</td>'
                    f'<td class="l">{html.escape(state)}</td><td>{esc(v.run.seed)}</td>'
                    f'<td class="n">{v.samples:,} of {budget:,}</td><td class="n">{wall}</td><td>{rate}</td>'
                    f'<td class="l">{html.escape(source)}</td><td class="l">{esc(m.get("torch_version", "—"))}</td>'
                    f'<td class="l">{html.escape(m.get("device_name", m.get("device", "—")))}</td>'
                    f'<td class="l"><details><summary>show</summary><pre>{html.escape(config)}</pre></details></td></tr>')
    return "\n".join(rows + ["</table>"])


def write_report(out) -> Path:
    """Build OUT/report.html from the folder alone -> its path. OUT is a reproduction (`acai reproduce`:
    OUT/sweep.json), one run (`acai train`: OUT/checkpoint.pt) or a folder that holds runs."""
    out = Path(out)
    if out.is_dir() and not os.access(out, os.W_OK):  # before anything is read or drawn
        raise ConfigError(f"{out} is not writable, and acai report writes {REPORT} into the folder it reports; "
                          f"{REMEDY}")
    if (out / SWEEP).exists():
        return sweep_report(out)
    folders = run_folders(out)
    if not folders:
        raise ConfigError(f"{out} holds no sweep ({SWEEP}), no run ({CHECKPOINT}) and no folder of runs; give the "
                          f"--out of acai reproduce or of acai train")
    return runs_report(out, folders)


def page(out: Path, title: str, summary: str, counts: dict, sections: list[str]) -> Path:
    """OUT/report.html around `sections`, with what wrote it and a banner if a run is unfinished or flagged."""
    banner = "" if set(counts) <= {"ok"} else (
        f'<p class="banner">Not every run is finished and unflagged ({esc(summary)}): the cells and the list of '
        f"runs name them.</p>")
    commit, dirty = source_commit()
    text = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>acai report: {html.escape(str(out))}'
            f"</title><style>{CSS}{charts.CSS}{charts.hover_css(MODELS)}</style></head><body><h1>acai report</h1>"
            f'<p class="note">{html.escape(str(out.resolve()))}: {html.escape(title)} ({esc(summary)}). Written '
            f"{time.strftime('%Y-%m-%d %H:%M')} by acai {__version__}"
            f"{f', commit {commit[:10]}' if commit else ''}{' + uncommitted changes' if dirty else ''}.</p>{banner}"
            + "\n".join(sections) + "</body></html>\n")
    ckpt.save_bytes(text.encode(), out / REPORT, remedy=REMEDY)
    return out / REPORT


def tally(views) -> tuple[dict, str]:
    counts = {}
    for v in views:
        counts[v.flag] = counts.get(v.flag, 0) + 1
    return counts, ", ".join(f"{n} {flag}" for flag, n in counts.items())


def sweep_report(out: Path) -> Path:
    specs = table_specs(out)
    runs: dict[str, RunView] = {}
    blocks: dict[tuple, tuple[SweepSpec, list[RunView]]] = {}
    for spec in specs:
        for run in spec.runs():
            if run.id not in runs:
                runs[run.id] = view(run, out)
                blocks.setdefault((run.data, run.dz), (spec, []))[1].append(runs[run.id])
    counts, summary = tally(runs.values())
    pngs = sorted(out.glob("*.png")) + sorted((out / "figures").glob("*.png"))
    sections = [table_html(spec, runs) for spec in specs if spec.table.measures]
    for (data, dz), (spec, members) in blocks.items():
        sections.append(f'<h2 id="{esc(data)}-dz{esc(dz)}">{esc(data)}, d_z = {esc(dz)}</h2><h3>Interpolations and '
                        f'samples</h3>'
                        f"{block_figures(spec, data, dz, members, pngs)}<h3>Learning curves</h3>"
                        f"{curves(data, dz, members)}")
    sections.append(f'<h2 id="runs">Runs</h2>{runs_html(list(runs.values()))}')
    if pngs:
        sections.append("<h2>Other figures</h2>" + "".join(image_tag(p, p.relative_to(out).as_posix()) for p in pngs))
    return page(out, f"{', '.join(s.what for s in specs)}; {len(runs)} runs", summary, counts, sections)


def run_folders(out: Path, depth: int = 3) -> list[Path]:
    """`out` itself if it is a run folder, else the run folders below it (at most `depth` levels down)."""
    if is_run(out):
        return [out]
    found = []
    for level in range(1, depth + 1):
        found += [path for path in sorted(out.glob("/".join(["*"] * level))) if path.is_dir() and is_run(path)]
    return found


def folder_view(folder: Path, out: Path) -> RunView:
    """A run folder of `acai train` as the report shows it (its id: the folder's path below OUT)."""
    saved = (ckpt.load_torch(folder / CHECKPOINT) if (folder / CHECKPOINT).exists() else
             ckpt.read_json(folder / METRICS, METRICS_KEYS))
    config = TrainConfig.from_dict(saved["config"])
    label = folder.name if folder == out else folder.relative_to(out).as_posix()
    run = RunSpec(data=config.data, dz=config.arch(colors=1).dz, model=config.model, seed=config.seed, config=config)
    log = read_log(folder / LOG, LOG_KEYS) if (folder / LOG).exists() else []
    now = folder_state(folder)  # a run folder holds a checkpoint or metrics.json: never "not started"
    samples = now.metrics["samples"] if now.metrics else samples_trained(folder, config.batch)
    return RunView(run=run, folder=folder, state=now.name, samples=samples, detail="", metrics=now.metrics, log=log,
                   diverged=(folder / FAILED).exists(), label=label)


def grid_of(view: RunView, out: Path) -> str:
    """The run's interpolations (lines: Figure 3's two lines; images: 3 pairs of test images), drawn into
    OUT/report-files/ again whenever the checkpoint is newer."""
    from acai.reproduce import figures

    path = out / REPORT_FILES / f"{view.label.replace('/', '-')}-interpolations.png"
    if not (view.folder / CHECKPOINT).exists():
        return '<p class="note">No checkpoint in this folder: no interpolations to draw.</p>'
    try:
        if not path.exists() or path.stat().st_mtime < (view.folder / CHECKPOINT).stat().st_mtime:
            if describe_data(view.run.data).offers(Capability.LINES):
                figures.figure3({view.run.model: view.folder}, path)
            else:
                figures.interpolation_figure({view.run.model: view.folder}, 3, path)
    except (ConfigError, DataError) as error:
        return f'<p class="note">Interpolations not drawn: {html.escape(str(error))}</p>'
    return image_tag(path, f"{view.label}: interpolations at its last checkpoint")


# What a run's log holds of the tables' measures (Mean Distance, Smoothness, the tandem probe), once each.
RUNS_TABLE = Table("runs", "Runs", (), tuple({m.key: m for table in TABLES.values() for m in table.measures
                                              if m.after is None}.values()))


def runs_report(out: Path, folders: list[Path]) -> Path:
    """One run's page, or a folder of runs': a row per run (best as in the markdown tables), then each run's
    metrics, curves and interpolations."""
    views = [folder_view(folder, out) for folder in folders]
    keys = {k for v in views for e in v.log for k in e}
    table = Table("runs", "Runs", (), tuple(m for m in RUNS_TABLE.measures if m.key in keys))
    blocks: dict = {}
    for v in views:
        blocks.setdefault((v.run.data, v.run.dz), {})[v.label] = [v]
    window = views[0].run.config.eval_window
    used = sorted({min(window, len(v.log)) for v in views if v.log}) or [window]  # summarise: all, if fewer
    sections = [f'<h2 id="results">Results</h2><p class="note">One row per run: the median of its last '
                f"{' or '.join(map(str, used))} evaluation{'s' if used[-1] > 1 else ''} (eval_window {window}, "
                f"or every evaluation of a run that has fewer); bold: the best run of a block whose value is "
                f"defined and unflagged.</p>"] + results_html(table, blocks, None)
    for (data, dz), by_label in blocks.items():
        members = [v for views_of in by_label.values() for v in views_of]
        sections.append(f'<h2 id="{esc(data)}-dz{esc(dz)}">Learning curves: {esc(data)}, d_z = {esc(dz)}</h2>'
                        f"{curves(data, dz, members, by_run=True)}")
    for v in views:
        sections.append(f'<h2 id="{esc(v.label)}">{esc(v.label)}: {esc(v.run.model)} on {esc(v.run.data)}, '
                        f"d_z = {esc(v.run.dz)}, seed {esc(v.run.seed)}</h2>{grid_of(v, out)}")
    sections.append(f'<h2 id="runs">Runs</h2>{runs_html(views)}')
    counts, summary = tally(views)
    what = views[0].label if len(views) == 1 and folders[0] == out else f"{len(views)} runs"
    return page(out, what, summary, counts, sections)
