"""The base-station sensors a scenario enables, in the order the generator calls them."""

from __future__ import annotations

from twin.scenario.config import ScenarioConfig
from twin.sensors.base import Sensor
from twin.trace.scene import TwinScene


def build_sensors(config: ScenarioConfig, twin: TwinScene) -> list[Sensor]:
    sensors: list[Sensor] = []
    if config.sensors.camera.enabled:
        from twin.sensors.camera import Camera

        sensors.append(Camera(config, twin))
    if config.sensors.lidar.enabled:
        from twin.sensors.lidar import Lidar

        sensors.append(Lidar(config, twin))
    if config.sensors.radar.enabled:
        from twin.sensors.radar import FmcwRadar

        sensors.append(FmcwRadar(config, twin))
    return sensors
