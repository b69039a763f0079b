"""acai: interpolation in autoencoders, after Berthelot, Raffel, Roy & Goodfellow (ICLR 2019).

    from acai import lines, models, train
    images = lines.render(angles)                  # (N, 32, 32) lines in [-1, 1]
    mean_distance, smoothness = lines.evaluate(x)  # x: (pairs, steps, 32, 32)
    model = acai.regularize(encoder, decoder, image_shape=(1, 32, 32))   # the ACAI regulariser on your own model
"""
from acai.core import lines
from acai.core.models.regularizer import regularize

__version__ = "0.1.0"
__all__ = ["lines", "regularize", "__version__"]
