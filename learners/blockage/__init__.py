"""Blockage prediction: from 8 observed beam sweeps, will the link be blocked N frames ahead.

One sample schema for real and twin data (`windows`): DeepSense scenario 17's `future-N` series CSVs
and any twin store's `rsrp_dbm` sweeps with its per-frame `blocked` flag. `model` is the recurrent
predictor, `checkpoint` its safetensors + config.json folder, `fit` the seeded training loop.
"""
