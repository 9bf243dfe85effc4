"""Beam-management digital twin: Sionna RT channels, codebook sweeps and a closed-loop testbed."""

__version__ = "0.1.0"
