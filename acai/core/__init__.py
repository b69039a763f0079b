"""The core: the lines data set and its metrics, the networks of appendix B, the seven autoencoders and the
ACAI regulariser, and the image data sets. Imports nothing from the other layers."""
