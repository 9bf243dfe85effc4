"""The WMFM variant of four_lane_28ghz: 16 elements and 8 subcarriers, one served vehicle of any kind
per scene, and otherwise the same road; a file of its own, so four_lane_28ghz's digest is untouched."""

from __future__ import annotations

import dataclasses

from twin.cli import SCENARIO_DIR
from twin.scenario.config import config_digest, load_scenario


def test_the_variant_differs_from_four_lane_only_in_array_csi_and_served_vehicles() -> None:
    base = load_scenario(SCENARIO_DIR / "four_lane_28ghz.yaml")
    variant = load_scenario(SCENARIO_DIR / "four_lane_28ghz_16x8.yaml")
    assert variant.base_station.array.num_elements == 16 and variant.radio.num_subcarriers == 8
    assert variant.traffic.served_per_run == 1 and set(variant.traffic.served_mix) == {"car", "van", "bus"}
    assert variant.dataset.view.enabled
    assert variant.street == base.street and variant.buildings == base.buildings
    assert dataclasses.replace(variant.radio, num_subcarriers=0) == base.radio
    assert config_digest(variant) != config_digest(base)
