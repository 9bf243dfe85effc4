"""Hand-posed scenes for sensor geometry tests."""

from __future__ import annotations

import numpy as np

from twin.trace.traffic import TrafficRun, Vehicle

CAR = (4.5, 1.8, 1.45)


def lone_car(xs: list[float], y: float = 3.25, speed: float = 0.0) -> TrafficRun:
    """One car (vehicle 0, served) at the given x per frame, in the lane at `y`."""
    frames = len(xs)
    positions = np.zeros((frames, 1, 3))
    positions[:, 0, 0] = xs
    positions[:, 0, 1] = y
    vehicles = (Vehicle(0, "car", 1, -1 if speed < 0 else 1, CAR, True),)
    velocities = np.array([[speed, 0.0, 0.0]])
    return TrafficRun(0, vehicles, positions, velocities, np.array([np.pi if speed < 0 else 0.0]))
