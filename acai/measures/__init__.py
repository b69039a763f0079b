"""Measures of a trained run's codes (section 4): K-Means, and the probe and clustering on a finished run's
folder. Above the training layer, whose run folders it reads; what a run measures while it trains is in
acai/core/evaluations.py."""
