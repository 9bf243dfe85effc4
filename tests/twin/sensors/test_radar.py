"""FMCW radar: peaks at the true range, velocity and angle, noise floor, determinism, static clutter."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import replace
from twin.scenario.config import ScenarioConfig
from twin.sensors.base import FrameState
from twin.sensors.radar import FmcwRadar, noise_power_dbm, radar_figures, range_doppler_angle
from twin.trace.scene import TwinScene, load_vehicle_models
from twin.trace.traffic import TrafficRun, Vehicle

FAR = 1e4  # parked far beyond the radar's maximum range


@pytest.fixture(scope="module")
def open_street(tiny: ScenarioConfig) -> ScenarioConfig:
    """No buildings and no clutter: only the vehicles and the receiver noise (default 64 x 64 cube)."""
    return replace(
        tiny,
        **{
            "buildings.enabled": False,
            "sensors.radar.clutter": False,
            "sensors.radar.samples_per_chirp": 64,
            "sensors.radar.chirps_per_frame": 64,
        },
    )


@pytest.fixture(scope="module")
def twin(open_street: ScenarioConfig) -> TwinScene:
    return TwinScene(open_street, pool={"car": 2, "van": 1, "bus": 1})


@pytest.fixture(scope="module")
def radar(open_street: ScenarioConfig, twin: TwinScene) -> FmcwRadar:
    return FmcwRadar(open_street, twin)


def _run(
    config: ScenarioConfig, vehicles: list[tuple[str, float, float, float]], frames: int = 2
) -> TrafficRun:
    """Vehicles (kind, x, lane y, speed along x) driving straight; sizes from the scenario's meshes."""
    models = load_vehicle_models(config)
    times = np.arange(frames) / config.dataset.frame_rate_hz
    positions = np.zeros((frames, len(vehicles), 3))
    for i, (_, x, y, speed) in enumerate(vehicles):
        positions[:, i, 0] = x + speed * times
        positions[:, i, 1] = y
    members = tuple(
        Vehicle(i, kind, 0, 1 if speed >= 0 else -1, models[kind].size_m, False)
        for i, (kind, _, _, speed) in enumerate(vehicles)
    )
    velocities = np.array([[speed, 0.0, 0.0] for *_, speed in vehicles])
    yaws = np.array([0.0 if speed >= 0 else np.pi for *_, speed in vehicles])
    return TrafficRun(0, members, positions, velocities, yaws)


def _frame(twin: TwinScene, run: TrafficRun, frame: int = 0) -> FrameState:
    twin.pose(run, frame)
    return FrameState(twin, run, frame)


def _facing_side(
    config: ScenarioConfig, run: TrafficRun, i: int, frame: int = 0
) -> tuple[float, float, float]:
    """Range, range rate and array angle (deg) of the TR 38.901 side point facing the radar (at -y)."""
    radar = config.sensors.radar
    _, width, height = run.sizes[i]
    point = run.positions[frame, i] + np.array([0.0, -width / 2, height / 2])
    offset = point - np.asarray(radar.position_m)
    distance = float(np.linalg.norm(offset))
    k = offset / distance
    yaw = np.deg2rad(radar.yaw_deg)
    axis = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    return distance, float(run.velocities[i] @ k), float(np.degrees(np.arcsin(k @ axis)))


def _peak(power: np.ndarray, range_bin: int, velocity_bin: int, span: int = 1) -> tuple[int, int, int]:
    """The strongest (range, Doppler, angle) cell within `span` bins of a range-Doppler cell."""
    lo_r, lo_v = max(range_bin - span, 0), max(velocity_bin - span, 0)
    window = power[lo_r : range_bin + span + 1, lo_v : velocity_bin + span + 1]
    r, v, a = np.unravel_index(np.argmax(window), window.shape)
    return int(lo_r + r), int(lo_v + v), int(a)


def _assert_target(
    config: ScenarioConfig, power: np.ndarray, axes: tuple, truth: tuple, noise_mw: float
) -> None:
    range_m, velocity_mps, angle_deg = axes
    distance, range_rate, angle = truth
    r, v, a = _peak(
        power, int(np.argmin(np.abs(range_m - distance))), int(np.argmin(np.abs(velocity_mps - range_rate)))
    )
    figures = radar_figures(config.sensors.radar)
    assert abs(range_m[r] - distance) <= figures["range_resolution_m"]
    assert abs(velocity_mps[v] - range_rate) <= figures["velocity_resolution_mps"]
    angle_bin = np.abs(np.diff(angle_deg))[max(a - 1, 0) : a + 1].max()
    assert abs(angle_deg[a] - angle) <= angle_bin
    assert 10 * np.log10(power[r, v, a] / noise_mw) > 25  # a clear peak, not a noise spike


def test_lone_vehicle_peaks_at_its_range_velocity_and_angle(
    open_street: ScenarioConfig, twin: TwinScene, radar: FmcwRadar
) -> None:
    run = _run(open_street, [("car", -2.0, -3.25, 10.0)])
    cube = radar(_frame(twin, run))["radar"]
    cfg = open_street.sensors.radar
    assert cube.shape == (cfg.num_rx, cfg.samples_per_chirp, cfg.chirps_per_frame)
    assert cube.dtype == np.complex64
    power, *axes = range_doppler_angle(cube, open_street)
    truth = _facing_side(open_street, run, 0)
    assert truth[1] < -3 and truth[2] > 15  # approaching, off boresight: a non-trivial check
    _assert_target(open_street, power, axes, truth, radar.noise_power_mw)
    # The facing side is the strongest return of the whole map.
    r, v, _ = np.unravel_index(np.argmax(power), power.shape)
    assert abs(axes[0][r] - truth[0]) <= radar_figures(cfg)["range_resolution_m"]
    assert abs(axes[1][v] - truth[1]) <= radar_figures(cfg)["velocity_resolution_mps"]


def test_second_vehicle_gives_a_second_peak(
    open_street: ScenarioConfig, twin: TwinScene, radar: FmcwRadar
) -> None:
    both = _run(open_street, [("car", -2.0, -3.25, 10.0), ("van", 4.0, 3.25, -8.0)])
    alone = _run(open_street, [("car", -2.0, -3.25, 10.0), ("van", FAR, 3.25, -8.0)])
    power, *axes = range_doppler_angle(radar(_frame(twin, both))["radar"], open_street)
    power_alone, *_ = range_doppler_angle(radar(_frame(twin, alone))["radar"], open_street)
    car, van = _facing_side(open_street, both, 0), _facing_side(open_street, both, 1)
    assert van[0] - car[0] > 5 * radar_figures(open_street.sensors.radar)["range_resolution_m"]
    _assert_target(open_street, power, axes, car, radar.noise_power_mw)
    _assert_target(open_street, power, axes, van, radar.noise_power_mw)
    r, v, a = _peak(power, int(np.argmin(np.abs(axes[0] - van[0]))), int(np.argmin(np.abs(axes[1] - van[1]))))
    assert 10 * np.log10(power_alone[r, v, a] / radar.noise_power_mw) < 15  # that peak is the van's


def test_a_bus_hides_the_car_behind_it(open_street: ScenarioConfig, radar: FmcwRadar) -> None:
    behind = _run(open_street, [("car", 0.0, 3.25, -10.0), ("bus", 0.0, -3.25, 10.0)])
    clear = _run(open_street, [("car", 0.0, 3.25, -10.0), ("bus", FAR, -3.25, 10.0)])
    assert len(radar.echoes(clear, 0)) > 0
    bus_only = _run(open_street, [("car", FAR, 3.25, -10.0), ("bus", 0.0, -3.25, 10.0)])
    np.testing.assert_array_equal(radar.echoes(behind, 0).delay_s, radar.echoes(bus_only, 0).delay_s)


def test_noise_floor_is_k_t_b_nf(open_street: ScenarioConfig, twin: TwinScene, radar: FmcwRadar) -> None:
    run = _run(open_street, [("car", FAR, -3.25, 10.0)])
    assert len(radar.echoes(run, 0)) == 0
    cube = radar(_frame(twin, run))["radar"]
    expected_dbm = -174 + 10 * np.log10(open_street.sensors.radar.sample_rate_hz) + 15.0
    assert noise_power_dbm(open_street.sensors.radar) == pytest.approx(expected_dbm)
    assert 10 * np.log10(np.mean(np.abs(cube) ** 2)) == pytest.approx(expected_dbm, abs=1.0)
    power, *_ = range_doppler_angle(cube, open_street)  # normalised: noise keeps its per-sample power
    assert 10 * np.log10(power.mean()) == pytest.approx(expected_dbm, abs=1.0)


def test_same_seed_same_cube_and_new_noise_every_frame(open_street: ScenarioConfig, twin: TwinScene) -> None:
    run = _run(open_street, [("car", -2.0, -3.25, 10.0)], frames=2)
    first = FmcwRadar(open_street, twin)(_frame(twin, run, 0))["radar"]
    again = FmcwRadar(open_street, twin)(_frame(twin, run, 0))["radar"]
    np.testing.assert_array_equal(first, again)
    parked = _run(open_street, [("car", FAR, -3.25, 0.0)], frames=2)
    radar = FmcwRadar(open_street, twin)
    frame0, frame1 = (radar(_frame(twin, parked, f))["radar"] for f in (0, 1))
    assert not np.allclose(frame0, frame1)
    reseeded = FmcwRadar(replace(open_street, seed=open_street.seed + 1), twin)
    assert not np.allclose(frame0, reseeded(_frame(twin, parked, 0))["radar"])


def test_deepsense_sized_cube(open_street: ScenarioConfig, twin: TwinScene) -> None:
    cfg = replace(
        open_street, **{"sensors.radar.samples_per_chirp": 256, "sensors.radar.chirps_per_frame": 250}
    )
    run = _run(cfg, [("car", -2.0, -3.25, 10.0)])
    cube = FmcwRadar(cfg, twin)(_frame(twin, run))["radar"]
    assert cube.shape == (4, 256, 250) and cube.dtype == np.complex64
    power, *axes = range_doppler_angle(cube, cfg)
    _assert_target(
        cfg, power, axes, _facing_side(cfg, run, 0), 10 ** (noise_power_dbm(cfg.sensors.radar) / 10)
    )


def test_static_clutter_sits_at_zero_doppler(tiny: ScenarioConfig) -> None:
    twin = TwinScene(tiny, pool={"car": 1})
    objects, frequency = sorted(twin.scene.objects), twin.scene.frequency
    radar = FmcwRadar(tiny, twin)  # buildings and clutter on, traced once here
    assert sorted(twin.scene.objects) == objects and twin.scene.frequency == frequency  # comm scene as it was
    run = _run(tiny, [("car", FAR, -3.25, 10.0)])
    power, _, velocity_mps, _ = range_doppler_angle(radar(_frame(twin, run))["radar"], tiny)
    snr_db = 10 * np.log10(power.max(axis=2) / radar.noise_power_mw)  # (range, Doppler)
    zero = int(np.argmin(np.abs(velocity_mps)))
    assert snr_db[:, zero].max() > 30  # the facade across the street and the ground
    moving = np.abs(np.arange(len(velocity_mps)) - zero) > 2  # beyond the window's main lobe
    assert snr_db[:, moving].max() < 15  # nothing moves: only noise away from zero Doppler


def test_vehicle_echoes_match_sionna_rcs_solver(open_street: ScenarioConfig, radar: FmcwRadar) -> None:
    """Per-point delay, power and Doppler agree with Sionna RT's RCSSolver for a turned, moving car."""
    import mitsuba as mi
    from sionna.rt.rcs import RCSSolver, TR38901SensingTarget

    from twin.rt_backend import sionna_rt
    from twin.sensors.radar import ANTENNA_PATTERN

    rt = sionna_rt()
    yaw, speed = 0.4, 10.0
    run = _run(open_street, [("car", -2.0, -3.25, speed)], frames=1)
    velocity = speed * np.array([np.cos(yaw), np.sin(yaw), 0.0])
    run = TrafficRun(0, run.vehicles, run.positions, velocity[None], np.array([yaw]))
    ours = radar.echoes(run, 0)

    length, width, height = run.sizes[0]
    scene = rt.load_scene()
    scene.frequency = radar.carrier_hz
    center = run.positions[0, 0] + np.array([0.0, 0.0, height / 2])
    scene.add(
        TR38901SensingTarget(
            "car", "vehicle-multi-sp", length=float(length), width=float(width), height=float(height),
            position=mi.Point3f(*map(float, center)), orientation=mi.Point3f(yaw, 0.0, 0.0),
            velocity=mi.Vector3f(*map(float, velocity)),
        )
    )  # fmt: skip
    array = rt.PlanarArray(num_rows=1, num_cols=1, pattern=ANTENNA_PATTERN, polarization="V")
    scene.tx_array, scene.rx_array = array, array
    pose = {
        "position": mi.Point3f(*map(float, radar.position)),
        "orientation": mi.Point3f(radar.yaw_rad, 0, 0),
    }
    scene.add(rt.Transmitter("tx", **pose))
    scene.add(rt.Receiver("rx", **pose))
    paths = RCSSolver(deterministic=True)(scene, max_depth=1, samples_per_sp=1000, seed=0)
    a = (paths.a[0].numpy() + 1j * paths.a[1].numpy()).ravel()
    tau, doppler = paths.tau.numpy().ravel(), paths.doppler.numpy().ravel()

    assert len(ours) == len(tau) == 5
    mine, theirs = np.argsort(ours.delay_s), np.argsort(tau)
    np.testing.assert_allclose(ours.delay_s[mine], tau[theirs], rtol=1e-6)
    power_dbm = 10 * np.log10(np.abs(a[theirs]) ** 2) + open_street.sensors.radar.tx_power_dbm
    np.testing.assert_allclose(20 * np.log10(np.abs(ours.amplitude[mine])), power_dbm, atol=0.05)
    # Sionna's Doppler is positive for approaching targets: -2 v / lambda with v the range rate.
    np.testing.assert_allclose(-2 * ours.range_rate_mps[mine] / radar.wavelength_m, doppler[theirs], atol=0.5)
