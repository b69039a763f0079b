"""`acai reproduce`: run a planned sweep (acai/reproduce/plan.py) with an executor, then write what its
table declares: the table (OUT/TABLE.md, .csv, .json), its figures and OUT/report.html.
"""
from __future__ import annotations

import time
from pathlib import Path

from acai.reproduce import tables
from acai.reproduce.plan import SweepSpec, collect, describe, finished, pixel_accuracies, plan, write_sweep
from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError
from acai.training.run_folder import FAILED

def reproduce(spec: SweepSpec, executor=None, progress: bool = True) -> str:
    """Run every unit of the sweep with `executor` (default: this process), then write the table
    (OUT/TABLE.md, .csv, .json), its figures and OUT/report.html; -> the markdown. One sweep at a time per OUT."""
    from acai.reproduce.executors import Inline
    from acai.reproduce.report import write_report
    from acai.training.progress import SweepDisplay

    start = time.perf_counter()
    units = plan(spec)
    with ckpt.folder_lock(spec.out):
        write_sweep(spec, units)
        display = SweepDisplay(sum(unit.samples for unit in units), f"{spec.table.name} ({len(units)} units)",
                               enabled=progress, done=sum(unit.trained_samples() for unit in units))
        try:
            failures = (executor or Inline()).run(units, display)
        finally:
            display.close()
        failed = {unit.id: failures.get(unit.id) for unit in units if failures.get(unit.id)}
        diverged = {unit.id for unit in units if any((m.folder(spec.out) / FAILED).exists() for m in unit.members)}
        others = [f"{unit_id}: {why}" for unit_id, why in failed.items() if unit_id not in diverged]
        if others:
            raise ConfigError(f"{len(others)} of {len(units)} units failed (acai status {spec.out} lists them); "
                              f"the first: {others[0]}")
        markdown = write_results(spec, time.perf_counter() - start)
        markdown += f"wrote {write_report(spec.out)}\n"
    print(markdown)
    return markdown


def write_results(spec: SweepSpec, seconds: float | None = None) -> str:
    """The table and figures of a finished sweep, read from its run folders."""
    written = []
    markdown = ""
    if spec.table.measures:
        cells, rates = collect(spec)
        header = f"{spec.table.title}. {describe(spec)}"
        markdown, rows = tables.render(spec.table, cells, spec.seeds, header, pixel_accuracies(spec), rates)
        if seconds is not None:
            markdown += f"\nWall time of this command: {seconds:.0f} s.\n"
        tables.write(markdown, rows, spec.out, spec.table.name)
        written += [spec.out / f"{spec.table.name}.{ext}" for ext in ("md", "csv", "json")]
    written += draw_figures(spec)
    return markdown + "".join(f"wrote {path}\n" for path in written)


def draw_figures(spec) -> list[Path]:
    """Every figure the sweep's table declares, from the finished runs of seed 0."""
    blocks = {}
    for run in spec.runs():
        if run.seed == 0 and finished(run, spec.out) is not None:
            blocks.setdefault((run.data, run.dz), {})[run.model] = run.folder(spec.out)
    folder = spec.out / spec.table.figures_dir
    return [path for draw in spec.table.figures for path in draw(spec, blocks, folder)]
