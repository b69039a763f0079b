"""The core: the lines data set and its metrics, the networks of appendix B, the seven autoencoders and the
ACAI regulariser, the image data sets, and the evaluations a run makes while it trains. Imports nothing from
the other layers."""
