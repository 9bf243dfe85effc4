"""The base station's FMCW radar: IF data cubes (RX x samples x chirps, DeepSense 6G's layout).

Model: one transmitter and a ULA of `num_rx` receivers spaced `rx_spacing_wavelengths` along the
horizontal axis 90 degrees counter-clockwise from boresight (the codebook's convention), complex IF
sampling at `sample_rate_hz`, `chirps_per_frame` chirps every `chirp_period_s`.

- Vehicles are 3GPP TR 38.901 (clause 7.9.2) multi-scattering-point vehicle targets, Sionna RT's
  `TR38901SensingTarget("vehicle-multi-sp")` sized like each vehicle's box: five points (front, back,
  left, right, roof), each with the monostatic RCS of Sionna's `TR38901RCS` for the aspect it is seen
  from. A point is dropped when another vehicle's box or a building cuts its line of sight; a vehicle
  does not shadow its own points (as in Sionna's `RCSSolver`, whose per-point gains these match).
- Static clutter (ground and facades, specular and diffuse) is traced once by a `PathSolver` with a
  co-located transmitter and receiver (line of sight off) in a radar-only scene at the radar carrier,
  and reused every frame; the comm scene is not touched.
- Echo i (complex amplitude a_i, round-trip delay tau_i, range rate v_i > 0 receding, array angle
  theta_i) adds a_i exp(j2pi[f0 tau_i + (S tau_i + nu_i) n / f_s + nu_i c T_c - d (r - (R-1)/2) sin
  theta_i]) with nu_i = 2 v_i / lambda; the IF is TX x conj(RX), so beat frequencies are positive.
  Targets have |a_i|^2 = P_t G^2 lambda^2 sigma_i / ((4 pi)^3 R_i^4), G from the TR 38.901 antenna
  pattern; clutter gains come from Sionna (propagation, materials and the same pattern).
- Complex white receiver noise of power k T B NF with B = f_s, drawn from a generator seeded with
  (scenario seed, run, frame, constant). Samples are in sqrt(mW): |x|^2 is power in mW.
- Echoes beyond the maximum range (beat frequency >= f_s) are removed, as the IF anti-alias filter
  does; Doppler wraps around as it does on the real radar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twin.radio.codebook import BOLTZMANN_DBM_PER_HZ
from twin.rt_backend import sionna_rt
from twin.scenario.config import RadarConfig, ScenarioConfig
from twin.scenario.materials import valid_materials
from twin.sensors.base import FrameState
from twin.store.schema import FIELDS_BY_NAME
from twin.trace.geometry import Mesh, merge, segments_hit_boxes
from twin.trace.scene import TwinScene, building_boxes, ground_box
from twin.trace.traffic import TrafficRun

SPEED_OF_LIGHT = 299_792_458.0
VEHICLE_TARGET = "vehicle-multi-sp"  # TR 38.901 Table 7.9.2.1-5: five points per vehicle
ANTENNA_PATTERN = "tr38901"  # TR 38.901 Table 7.3-1: 8 dBi, 65 degree beams, a patch-like element
# Share of the field that ground and facades scatter diffusely (Sionna's scattering coefficient);
# 0.3 is a typical effective-roughness value for building walls. Without it the co-located radar
# would only see surfaces at normal incidence (the facade opposite and the ground below).
CLUTTER_SCATTERING_COEFFICIENT = 0.3
FALLBACK_MATERIAL = "concrete"  # for a scenario material that the ITU model lacks at the radar carrier
_WALL_THICKNESS_M = 0.2
_GRID_DEG = 1.0  # angular step of the RCS and antenna-pattern tables (interpolation error < 0.01 dB)
_NOISE_STREAM = 0x7AD4  # keeps the radar's noise apart from every other seeded draw of a frame
_CHUNK = 4096  # echoes per block when summing the (possibly many) diffuse clutter paths


@dataclass(frozen=True)
class Echoes:
    """Point echoes seen by the radar (one entry per scattering point or clutter path)."""

    amplitude: np.ndarray  # (P,) complex IF amplitude at the receiver input, sqrt(mW)
    delay_s: np.ndarray  # (P,) round-trip delay
    range_rate_mps: np.ndarray  # (P,) radial velocity, positive moving away from the radar
    sin_angle: np.ndarray  # (P,) sine of the array angle (direction . array axis)

    def __len__(self) -> int:
        return len(self.delay_s)

    def select(self, keep: np.ndarray) -> Echoes:
        return Echoes(
            self.amplitude[keep], self.delay_s[keep], self.range_rate_mps[keep], self.sin_angle[keep]
        )


def carrier_hz(radar: RadarConfig) -> float:
    """Centre frequency of the sampled part of the chirp (sets lambda for Doppler, array and RCS)."""
    return radar.start_hz + radar.slope_hz_per_s * radar.samples_per_chirp / radar.sample_rate_hz / 2


def noise_power_dbm(radar: RadarConfig) -> float:
    """Receiver noise per complex sample: k T B NF with B = the sample rate."""
    return float(BOLTZMANN_DBM_PER_HZ + 10 * np.log10(radar.sample_rate_hz) + radar.noise_figure_db)


def radar_figures(radar: RadarConfig) -> dict[str, float]:
    """The radar's derived figures (resolutions and unambiguous spans), e.g. for store attributes."""
    wavelength = SPEED_OF_LIGHT / carrier_hz(radar)
    bandwidth = radar.slope_hz_per_s * radar.samples_per_chirp / radar.sample_rate_hz
    max_velocity = wavelength / (4 * radar.chirp_period_s)
    return {
        "carrier_hz": carrier_hz(radar),
        "sampled_bandwidth_hz": bandwidth,
        "range_resolution_m": SPEED_OF_LIGHT / (2 * bandwidth),
        "max_range_m": SPEED_OF_LIGHT * radar.sample_rate_hz / (2 * radar.slope_hz_per_s),
        "velocity_resolution_mps": 2 * max_velocity / radar.chirps_per_frame,
        "max_velocity_mps": max_velocity,
        "noise_power_dbm": noise_power_dbm(radar),
    }


def _rotate_z(vectors: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotate (..., 3) vectors counter-clockwise about z by `angle` (broadcast over the leading axes)."""
    c, s = np.cos(angle), np.sin(angle)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x - s * y, s * x + c * y, vectors[..., 2]], axis=-1)


class _SphereTables:
    """K tables of dB values on a regular grid of zenith [0, 180] x azimuth [-180, 180] degrees.

    Sionna's RCS and antenna-pattern callables are Dr.Jit kernels whose tracing costs milliseconds per
    call; they are tabulated once and interpolated bilinearly per frame.
    """

    def __init__(self, evaluate: Callable[[np.ndarray, int], np.ndarray], count: int) -> None:
        step = np.deg2rad(_GRID_DEG)
        self._step = step
        theta = np.arange(round(180 / _GRID_DEG) + 1) * step
        phi = np.arange(round(360 / _GRID_DEG) + 1) * step - np.pi
        t, p = np.meshgrid(theta, phi, indexing="ij")
        directions = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)
        self.values_db = np.stack(
            [evaluate(directions.reshape(-1, 3), k).reshape(t.shape) for k in range(count)]
        )

    def __call__(self, directions: np.ndarray, table: np.ndarray | int = 0) -> np.ndarray:
        """dB values for unit (P, 3) directions, each read from table `table` (scalar or (P,))."""
        theta = np.arccos(np.clip(directions[:, 2], -1.0, 1.0)) / self._step
        phi = (np.arctan2(directions[:, 1], directions[:, 0]) + np.pi) / self._step
        _, rows, cols = self.values_db.shape
        i = np.clip(np.floor(theta).astype(int), 0, rows - 2)
        j = np.clip(np.floor(phi).astype(int), 0, cols - 2)
        u, v = theta - i, phi - j
        values = self.values_db
        return (
            values[table, i, j] * (1 - u) * (1 - v)
            + values[table, i + 1, j] * u * (1 - v)
            + values[table, i, j + 1] * (1 - u) * v
            + values[table, i + 1, j + 1] * u * v
        )


def _to_dr_vectors(directions: np.ndarray) -> object:
    import mitsuba as mi

    return mi.Vector3f(np.ascontiguousarray(directions.T, dtype=np.float32))


class FmcwRadar:
    """The base station's FMCW radar; `radar(state)["radar"]` is a (num_rx, samples, chirps) cube."""

    fields = (FIELDS_BY_NAME["radar"],)

    def __init__(self, config: ScenarioConfig, twin: TwinScene | None = None):
        rt = sionna_rt()
        from sionna.rt.rcs import TR38901SensingTarget

        self.config = config
        self.radar = radar = config.sensors.radar
        self.twin = twin  # poses come from FrameState.run; the comm scene is never modified
        self.carrier_hz = carrier_hz(radar)
        self.wavelength_m = SPEED_OF_LIGHT / self.carrier_hz
        self.position = np.asarray(radar.position_m, np.float64)
        self.yaw_rad = float(np.deg2rad(radar.yaw_deg))
        self.axis = np.array([-np.sin(self.yaw_rad), np.cos(self.yaw_rad), 0.0])
        self.noise_power_mw = 10 ** (noise_power_dbm(radar) / 10)
        self._tx_power_mw = 10 ** (radar.tx_power_dbm / 10)
        self._rx_offsets = (np.arange(radar.num_rx) - (radar.num_rx - 1) / 2) * radar.rx_spacing_wavelengths
        self._fast_s = np.arange(radar.samples_per_chirp) / radar.sample_rate_hz
        self._slow_s = np.arange(radar.chirps_per_frame) * radar.chirp_period_s

        # TR 38.901 vehicle targets: the lobes of the five points do not depend on the vehicle's size,
        # so one reference target's RCS callables serve every vehicle; point positions are per size.
        reference = TR38901SensingTarget("radar-rcs-reference", VEHICLE_TARGET)
        spst = reference.scattering_model.spst
        self._points_by_size: dict[tuple[float, float, float], np.ndarray] = {}
        self._rcs_db = _SphereTables(
            lambda d, k: self._monostatic_rcs_db(spst, d, k), len(spst.rcs_callables)
        )
        pattern = rt.PlanarArray(num_rows=1, num_cols=1, pattern=ANTENNA_PATTERN, polarization="V")
        self._gain_db = _SphereTables(lambda d, _: self._pattern_gain_db(pattern, d), 1)

        boxes = building_boxes(config)
        self._building_centers = np.array([b.vertices.mean(axis=0) for b, _ in boxes]).reshape(-1, 3)
        self._building_half = np.array([np.ptp(b.vertices, axis=0) / 2 for b, _ in boxes]).reshape(-1, 3)

        shape = (radar.num_rx, radar.samples_per_chirp)
        self.clutter = (
            self._static_cube(self._trace_clutter()) if radar.clutter else np.zeros(shape, np.complex64)
        )

    # ---- per frame -------------------------------------------------------------------------------

    def __call__(self, state: FrameState) -> dict[str, np.ndarray]:
        radar = self.radar
        cube = self._moving_cube(self.echoes(state.run, state.frame))
        cube += self.clutter[:, :, None]
        rng = np.random.default_rng([self.config.seed, state.run.run, state.frame, _NOISE_STREAM])
        shape = (2, radar.num_rx, radar.samples_per_chirp, radar.chirps_per_frame)
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise *= np.float32(np.sqrt(self.noise_power_mw / 2))
        cube.real += noise[0]
        cube.imag += noise[1]
        return {"radar": cube}

    def echoes(self, run: TrafficRun, frame: int) -> Echoes:
        """Echoes of the vehicles' visible TR 38.901 scattering points at `frame` (within range)."""
        if not run.vehicles:
            return _no_echoes()
        sizes = run.sizes
        points_lcs = np.stack([self._points(tuple(size)) for size in sizes])  # (V, K, 3)
        num_vehicles, num_points = points_lcs.shape[:2]
        centers = run.positions[frame].astype(np.float64)  # footprints -> box centres
        centers[:, 2] += sizes[:, 2] / 2
        yaws = run.yaws[:, None]
        points = centers[:, None, :] + _rotate_z(points_lcs, yaws)  # (V, K, 3)
        offset = points - self.position
        distance = np.linalg.norm(offset, axis=-1)
        k = offset / distance[..., None]  # direction of propagation, radar -> point

        flat = points.reshape(-1, 3)
        hits = segments_hit_boxes(
            np.broadcast_to(self.position, flat.shape),
            flat,
            np.concatenate([centers, self._building_centers]),
            np.concatenate([sizes / 2, self._building_half]),
            np.concatenate([run.yaws, np.zeros(len(self._building_centers))]),
        )
        own = np.repeat(np.arange(num_vehicles), num_points)
        hits[np.arange(len(own)), own] = False  # a target does not shadow its own points
        visible = ~hits.any(axis=-1)

        rcs_db = self._rcs_db(
            _rotate_z(k, -yaws).reshape(-1, 3), np.tile(np.arange(num_points), num_vehicles)
        )
        gain_db = self._gain_db(_rotate_z(k, -self.yaw_rad).reshape(-1, 3))
        distance, k = distance.ravel(), k.reshape(-1, 3)
        power_mw = (
            self._tx_power_mw
            * 10 ** ((2 * gain_db + rcs_db) / 10)
            * self.wavelength_m**2
            / ((4 * np.pi) ** 3 * distance**4)
        )
        velocities = np.repeat(run.velocity_at(frame), num_points, axis=0)
        echoes = Echoes(
            amplitude=np.sqrt(power_mw).astype(np.complex128),
            delay_s=2 * distance / SPEED_OF_LIGHT,
            range_rate_mps=np.einsum("pi,pi->p", velocities, k),
            sin_angle=k @ self.axis,
        )
        return echoes.select(visible & self._in_range(echoes))

    # ---- synthesis ---------------------------------------------------------------------------------

    def _in_range(self, echoes: Echoes) -> np.ndarray:
        return self._beat_hz(echoes) < self.radar.sample_rate_hz

    def _beat_hz(self, echoes: Echoes) -> np.ndarray:
        return self.radar.slope_hz_per_s * echoes.delay_s + self._doppler_hz(echoes)

    def _doppler_hz(self, echoes: Echoes) -> np.ndarray:
        return 2 * echoes.range_rate_mps / self.wavelength_m

    def _fast_time(self, echoes: Echoes) -> np.ndarray:
        """(P, R, S) per-echo amplitude x carrier phase x RX phase x fast-time (beat) phasor."""
        cycles = np.mod(self.radar.start_hz * echoes.delay_s, 1.0)  # f0 tau: keep the phase exact
        weight = echoes.amplitude * np.exp(2j * np.pi * cycles)
        rx = np.exp(-2j * np.pi * echoes.sin_angle[:, None] * self._rx_offsets)
        fast = np.exp(2j * np.pi * self._beat_hz(echoes)[:, None] * self._fast_s)
        return (weight[:, None] * rx)[:, :, None] * fast[:, None, :]

    def _moving_cube(self, echoes: Echoes) -> np.ndarray:
        radar = self.radar
        shape = (radar.num_rx, radar.samples_per_chirp, radar.chirps_per_frame)
        if not len(echoes):
            return np.zeros(shape, np.complex64)
        left = self._fast_time(echoes).reshape(len(echoes), -1).astype(np.complex64)  # (P, R*S)
        slow = np.exp(2j * np.pi * self._doppler_hz(echoes)[:, None] * self._slow_s).astype(np.complex64)
        return (left.T @ slow).reshape(shape)

    def _static_cube(self, echoes: Echoes) -> np.ndarray:
        """(R, S): the sum of static echoes, identical in every chirp.

        Summed in a canonical order: the solver's path order varies between runs, the sum must not.
        """
        radar = self.radar
        echoes = echoes.select(np.lexsort((echoes.amplitude.imag, echoes.amplitude.real, echoes.delay_s)))
        total = np.zeros((radar.num_rx, radar.samples_per_chirp), np.complex128)
        for start in range(0, len(echoes), _CHUNK):
            total += self._fast_time(echoes.select(slice(start, start + _CHUNK))).sum(axis=0)
        return total.astype(np.complex64)

    # ---- set-up ------------------------------------------------------------------------------------

    def _points(self, size: tuple[float, float, float]) -> np.ndarray:
        """(K, 3) TR 38.901 scattering points of a vehicle box of `size`, relative to its centre."""
        if size not in self._points_by_size:
            from sionna.rt.rcs import TR38901SensingTarget

            length, width, height = size
            target = TR38901SensingTarget(
                f"radar-points-{len(self._points_by_size)}",
                VEHICLE_TARGET,
                length=length,
                width=width,
                height=height,
            )
            self._points_by_size[size] = np.array(target.scattering_model.spst.lcs_positions, np.float64).T
        return self._points_by_size[size]

    @staticmethod
    def _monostatic_rcs_db(spst: object, directions: np.ndarray, point: int) -> np.ndarray:
        """10 log10 sigma of point `point` for waves propagating along `directions` (target frame)."""
        import mitsuba as mi

        n = len(directions)
        k_i = _to_dr_vectors(directions)
        sigma = spst.eval_rcs(
            k_i, -k_i, mi.Point3f(0.0, 0.0, 0.0), mi.UInt(np.zeros(n, np.uint32)), mi.UInt(np.full(n, point))
        )
        return 10 * np.log10(np.maximum(np.array(sigma, np.float64), 1e-30))

    @staticmethod
    def _pattern_gain_db(array: object, directions: np.ndarray) -> np.ndarray:
        """Antenna gain (dBi, both polarisations) towards `directions` given in the antenna frame."""
        import drjit as dr
        import mitsuba as mi

        theta = np.arccos(np.clip(directions[:, 2], -1.0, 1.0)).astype(np.float32)
        phi = np.arctan2(directions[:, 1], directions[:, 0]).astype(np.float32)
        c_theta, c_phi = array.antenna_pattern.patterns[0](mi.Float(theta), mi.Float(phi))
        gain = np.array(dr.squared_norm(c_theta), np.float64) + np.array(dr.squared_norm(c_phi), np.float64)
        return 10 * np.log10(np.maximum(gain, 1e-30))

    def _trace_clutter(self) -> Echoes:
        """Static paths from the radar back to itself (ground and buildings), traced once."""
        rt = sionna_rt()
        import mitsuba as mi

        config, rtc = self.config, self.config.ray_tracing
        if rtc.max_depth == 0:
            return _no_echoes()
        scene = rt.load_scene()
        scene.frequency = self.carrier_hz
        allowed = set(valid_materials(self.carrier_hz))
        materials: dict[str, object] = {}

        def scene_object(name: str, mesh: Mesh, material: str) -> object:
            material = material if material in allowed else FALLBACK_MATERIAL
            if material not in materials:
                materials[material] = rt.ITURadioMaterial(
                    f"radar-{material}",
                    material,
                    thickness=_WALL_THICKNESS_M,
                    scattering_coefficient=CLUTTER_SCATTERING_COEFFICIENT,
                )
            mi_mesh = mi.Mesh(name, vertex_count=len(mesh.vertices), face_count=len(mesh.faces))
            params = mi.traverse(mi_mesh)
            params["vertex_positions"] = mi.Float(mesh.vertices.ravel())
            params["faces"] = mi.UInt32(mesh.faces.ravel())
            params.update()
            return rt.SceneObject(mi_mesh=mi_mesh, name=name, radio_material=materials[material])

        objects = [scene_object("radar-ground", ground_box(config), config.street.ground_material)]
        by_material: dict[str, list[Mesh]] = {}
        for mesh, material in building_boxes(config):
            by_material.setdefault(material, []).append(mesh)
        objects += [
            scene_object(f"radar-buildings-{m}", merge(meshes), m)
            for m, meshes in sorted(by_material.items())
        ]
        scene.add(objects)

        array = rt.PlanarArray(num_rows=1, num_cols=1, pattern=ANTENNA_PATTERN, polarization="V")
        scene.tx_array, scene.rx_array = array, array
        pose = {
            "position": mi.Point3f(*map(float, self.position)),
            "orientation": mi.Point3f(self.yaw_rad, 0, 0),
        }
        scene.add(rt.Transmitter("radar-tx", **pose))
        scene.add(rt.Receiver("radar-rx", **pose))
        paths = rt.PathSolver(deterministic=True)(
            scene,
            max_depth=rtc.max_depth,
            samples_per_src=rtc.samples_per_src,
            synthetic_array=True,
            los=False,  # co-located: the zero-length "direct path" is the radar's own leakage
            specular_reflection=True,
            diffuse_reflection=True,
            refraction=False,
            diffraction=False,
            seed=rtc.seed,
        )
        a_re, a_im = paths.a
        a = (a_re.numpy() + 1j * a_im.numpy()).reshape(-1)
        valid = paths.valid.numpy().reshape(-1).astype(bool)
        theta, phi = paths.theta_r.numpy().reshape(-1), paths.phi_r.numpy().reshape(-1)
        arrival = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
        echoes = Echoes(
            # Sionna's gain a goes with exp(-j2pi f tau) on the received field; the IF is TX x conj(RX).
            amplitude=np.sqrt(self._tx_power_mw) * np.conj(a).astype(np.complex128),
            delay_s=paths.tau.numpy().reshape(-1).astype(np.float64),
            range_rate_mps=np.zeros(len(a)),
            sin_angle=arrival @ self.axis,
        )
        return echoes.select(valid & self._in_range(echoes))


def _no_echoes() -> Echoes:
    empty = np.zeros(0)
    return Echoes(empty.astype(np.complex128), empty, empty, empty)


def _window(n: int) -> np.ndarray:
    """Hann window without its zero end points (a 4-element array keeps all four elements)."""
    return np.hanning(n + 2)[1:-1]


def range_doppler_angle(
    cube: np.ndarray, config: RadarConfig | ScenarioConfig, angle_bins: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windowed range, Doppler and angle FFTs of one (num_rx, samples, chirps) cube.

    Returns `power` (samples, chirps, angles) in mW, normalised so that white noise of power N0 per
    sample has mean N0 in every cell (a target's peak is its per-sample power times the processing
    gain); `range_m` (samples,); `velocity_mps` (chirps,) radial velocity, positive moving away;
    `angle_deg` (angles,) ascending array angles (positive counter-clockwise from boresight).
    """
    radar = config.sensors.radar if isinstance(config, ScenarioConfig) else config
    num_rx, samples, chirps = cube.shape
    w_rx, w_fast, w_slow = _window(num_rx), _window(samples), _window(chirps)
    window = w_rx[:, None, None] * w_fast[None, :, None] * w_slow[None, None, :]
    spectrum = np.fft.fft(cube * window, axis=1)
    spectrum = np.fft.fftshift(np.fft.fft(spectrum, axis=2), axes=2)
    spectrum = np.fft.fftshift(np.fft.fft(spectrum, n=angle_bins, axis=0), axes=0)
    power = np.abs(spectrum) ** 2 / np.sum(window**2)

    # Element r sees phase -2 pi d (r - (R-1)/2) sin(theta): spatial frequency u = -d sin(theta).
    sin_theta = -np.fft.fftshift(np.fft.fftfreq(angle_bins)) / radar.rx_spacing_wavelengths
    keep = np.flatnonzero(np.abs(sin_theta) <= 1)[::-1]  # ascending angles
    angle_deg = np.degrees(np.arcsin(sin_theta[keep]))
    power = np.moveaxis(power[keep], 0, -1)

    wavelength = SPEED_OF_LIGHT / carrier_hz(radar)
    range_m = (
        np.arange(samples) * radar.sample_rate_hz / samples * SPEED_OF_LIGHT / (2 * radar.slope_hz_per_s)
    )
    velocity_mps = np.fft.fftshift(np.fft.fftfreq(chirps, d=radar.chirp_period_s)) * wavelength / 2
    return power.astype(np.float32), range_m, velocity_mps, angle_deg
