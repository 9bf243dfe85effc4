"""Runnable examples built on the testbed (RL training on the beam-selection environment)."""
