"""Reproduction: presets, the paper's tables as data, sweeps of runs and who runs them (this process,
worker processes, SLURM), and what they write: tables, figures, reports, status."""
