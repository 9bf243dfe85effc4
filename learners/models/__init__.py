"""Beam predictors: the interface and registry (`registry`), and the built-in models."""
