"""Twin versus reality: statistics of beam sweeps, their distances, calibration and figures."""
