"""Beam predictors trained on twin or replayed data and plugged into the environment as policies.

- `learners.data`, `learners.preprocess`: windows of frames from a store as torch tensors with
  per-modality masks; camera, radar, LiDAR, GPS and RSRP preprocessing;
- `learners.models`: the BeamPredictor interface and registry (`learners.models.registry`),
  `learners.models.baselines` (beam-history GRU, Transformer and autoregressive model, GPS Kalman
  filter, position MLP), `learners.models.beamtransfuser` and `learners.models.cvae` (a generator
  of a missing radar or LiDAR input);
- `learners.pruning`, `learners.compress`: splitting-and-pruning of BeamTransFuser's fusion blocks
  (`python -m learners.compress`); `learners.generation_study`: missing versus generated inputs;
- `learners.train`: training (`python -m learners.train`, or `train()` / `train_or_load()`);
  `learners.checkpoint`: safetensors + JSON checkpoints;
- `learners.policy`: a checkpoint as a `twin.loop.policies.Policy` (`load_policy`, registered names);
  `learners.closed_loop`: scoring a policy on chosen drives; `learners.benchmarks`: the figures;
- `learners.twin_run`: the `learned` step of the twin's main job;
- `learners.blockage`: blockage prediction from 8 sweeps on real (DeepSense scenario 17) and twin
  windows (`python -m learners.train model=blockage`), `learners.predict` (decisions for a series
  CSV), `learners.blockage_shipped` and `learners.blockage_study` (twin-to-real transfer).

The twin never imports this package: it finds it through the entry points in pyproject.toml.
"""
