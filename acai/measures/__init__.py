"""Measures: the evaluations made while a run trains (the lines metrics, the tandem probe), K-Means, and the
probe and clustering on a finished run's codes (section 4)."""
