"""Training: the typed configuration, a run and its folder, the one loop (`train`), stacked seeds,
checkpoints, stop signals and what a run needs to know of its machine."""
