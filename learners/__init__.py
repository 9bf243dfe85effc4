"""Beam predictors trained on twin or replayed data and plugged into the environment as policies.

- `learners.data`, `learners.preprocess`: windows of frames from a store as torch tensors with
  per-modality masks; camera, radar, LiDAR, GPS and RSRP preprocessing;
- `learners.models`: the BeamPredictor interface and registry; `learners.baselines` (beam-history
  GRU, Transformer and autoregressive model, GPS Kalman filter, position MLP) and
  `learners.beamtransfuser`;
- `learners.train`: training (`python -m learners.train`, or `train()` / `train_or_load()`);
  `learners.checkpoint`: safetensors + JSON checkpoints;
- `learners.policy`: a checkpoint as a `twin.policies.Policy` (`load_policy`, registered names);
  `learners.closed_loop`: scoring a policy on chosen drives; `learners.benchmarks`: the figures.
"""
