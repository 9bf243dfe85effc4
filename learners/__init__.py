"""Beam predictors trained on twin or replayed data and plugged into the environment as policies."""
