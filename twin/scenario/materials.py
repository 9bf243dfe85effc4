"""ITU-R P.2040 radio materials and the carrier frequencies at which each one is defined."""

from __future__ import annotations

from functools import cache

from twin.errors import ConfigError


@cache
def itu_frequency_ranges_ghz() -> dict[str, tuple[tuple[float, float], ...]]:
    """Material name → the frequency ranges (GHz) where Sionna RT's ITU model is defined."""
    from twin.rt_backend import sionna_rt

    sionna_rt()
    from sionna.rt.radio_materials.itu import ITU_MATERIALS_PROPERTIES

    return {
        name: tuple(sorted(ranges)) for name, ranges in ITU_MATERIALS_PROPERTIES.items() if name != "vacuum"
    }


def valid_materials(carrier_hz: float) -> list[str]:
    f_ghz = carrier_hz / 1e9
    return [
        name
        for name, ranges in itu_frequency_ranges_ghz().items()
        if any(low <= f_ghz <= high for low, high in ranges)
    ]


def check_material(name: str, carrier_hz: float, key: str) -> None:
    """Raise a ConfigError naming `key` when `name` is unknown or undefined at the carrier."""
    ranges = itu_frequency_ranges_ghz()
    allowed = ", ".join(valid_materials(carrier_hz))
    if name not in ranges:
        raise ConfigError(
            f"{key} = {name!r}: unknown ITU material; valid at {carrier_hz / 1e9:g} GHz: {allowed}"
        )
    if name not in valid_materials(carrier_hz):
        spans = ", ".join(f"{lo:g}-{hi:g} GHz" for lo, hi in ranges[name])
        raise ConfigError(
            f"{key} = {name!r}: ITU material defined only at {spans}, not at {carrier_hz / 1e9:g} GHz; "
            f"valid there: {allowed}"
        )
