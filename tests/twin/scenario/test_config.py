"""Scenario validation: every class of bad input gets one line naming key, value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from twin.errors import ConfigError
from twin.scenario.config import load_scenario, scenario_from_dict, scenario_to_dict

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_validate_and_round_trip(path: Path) -> None:
    config = load_scenario(path)
    assert config.name == path.stem
    assert scenario_from_dict(scenario_to_dict(config), source=path.stem) == config


def test_there_are_at_least_three_different_scenarios() -> None:
    configs = [load_scenario(p) for p in SCENARIOS]
    assert len(configs) >= 3
    assert len({c.radio.carrier_hz for c in configs}) >= 2
    assert len({len(c.street.lanes) for c in configs}) >= 2


def _base() -> dict:
    return yaml.safe_load((REPO / "scenarios" / "tiny.yaml").read_text())


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, source="scenario")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_is_named_with_allowed_keys() -> None:
    data = _base()
    data["radio"]["carrier_ghz"] = 60
    message = _error(data)
    assert "scenario.radio.carrier_ghz: unknown key" in message
    assert "carrier_hz" in message


def test_wrong_type_names_value_and_expected_type() -> None:
    data = _base()
    data["base_station"]["array"]["num_elements"] = "sixteen"
    assert _error(data) == "scenario.base_station.array.num_elements = 'sixteen': expected an integer"


def test_bool_is_not_accepted_as_a_number() -> None:
    data = _base()
    data["dataset"]["drives"] = True
    assert "scenario.dataset.drives = True: expected an integer" in _error(data)


def test_out_of_range_value_names_the_range() -> None:
    data = _base()
    data["base_station"]["codebook"]["num_beams"] = 0
    assert _error(data) == "scenario.base_station.codebook.num_beams = 0: expected a value in [1, 4096]"


def test_inverted_range_pair_is_rejected() -> None:
    data = _base()
    data["traffic"]["speed_kmh"] = [50, 20]
    assert "scenario.traffic.speed_kmh = [50, 20]" in _error(data)


def test_material_undefined_at_carrier_names_valid_materials() -> None:
    data = _base()
    data["buildings"]["materials"] = ["concrete", "brick"]
    message = _error(data)
    assert message.startswith("scenario.buildings.materials[1] = 'brick': ITU material defined only at")
    assert "not at 60 GHz" in message
    assert "concrete" in message and "glass" in message and "metal" in message


def test_brick_is_fine_at_28_ghz() -> None:
    data = _base()
    data["radio"]["carrier_hz"] = 28e9
    data["buildings"]["materials"] = ["brick"]
    assert scenario_from_dict(data).buildings.materials == ("brick",)


def test_unknown_material_and_unknown_vehicle_kind() -> None:
    data = _base()
    data["street"]["ground_material"] = "asphalt"
    assert "scenario.street.ground_material = 'asphalt': unknown ITU material" in _error(data)
    data = _base()
    data["traffic"]["mix"] = {"car": 1.0, "truck": 0.5}
    assert "scenario.traffic.mix.truck: unknown vehicle kind" in _error(data)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_scenario(bad)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.generate",
            *args,
            f"cache_dir={cwd}",
            f"hydra.run.dir={cwd}",
            "progress=false",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("scenario=no_such_place", "error: scenario=no_such_place: unknown scenario; available:"),
        ("scenario.radio.carrier_hz=abc", "error: scenario.radio.carrier_hz = 'abc': expected a number"),
        ("+scenario.radio.power=3", "error: scenario.radio.power: unknown key"),
        ("scenario.street.ground_material=brick", "error: scenario.street.ground_material = 'brick'"),
    ],
)
def test_cli_prints_one_line_and_exits_2(override: str, expected: str, tmp_path: Path) -> None:
    args = [override] if override.startswith("scenario=") else ["scenario=tiny", override]
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.stderr
