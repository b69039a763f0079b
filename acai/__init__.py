"""acai: interpolation in autoencoders, after Berthelot, Raffel, Roy & Goodfellow (ICLR 2019).

    from acai import lines, regularize
    images = lines.render(angles)                  # (N, 32, 32) lines in [-1, 1]
    mean_distance, smoothness = lines.evaluate(x)  # x: (pairs, steps, 32, 32)
    model = regularize(encoder, decoder, image_shape=(1, 32, 32))   # the ACAI regulariser on your own model
    model = acai.pretrained.load("lines-acai")     # a shipped trained model: encode(x), decode(z)

The layers (docs/ARCHITECTURE.md), each importing only those before it: acai.core (lines, nets, models,
data, evaluations), acai.training (TrainConfig, `train`), acai.measures (the probe and K-Means on a trained
run), acai.reproduce (presets, tables, sweeps, reports) and acai.cli.
"""
__version__ = "0.1.0"
__all__ = ["lines", "pretrained", "regularize", "__version__"]


def __getattr__(name: str):
    """`lines`, `pretrained` and `regularize`, imported on first use: importing the package itself loads no
    torch, so the `acai` command (acai.cli) can turn a Ctrl-C while torch loads into one line."""
    if name == "lines":
        from acai.core import lines

        return lines
    if name == "pretrained":  # by import_module: `from acai import pretrained` here would ask this function again
        import importlib

        return importlib.import_module("acai.pretrained")
    if name == "regularize":
        from acai.core.models.regularizer import regularize

        return regularize
    raise AttributeError(f"module 'acai' has no attribute {name!r}")
