"""The code version of a generated store: a hash of the sources that shape its numbers. It names the
cache file, and every worker (a local process or a Ray task on another host) checks it runs the same."""

from __future__ import annotations

import functools

from twin.store.digest import source_digest
from twin.trace.scene import ASSETS_DIR

# Source files whose behaviour shapes the stored numbers: editing one invalidates cached datasets.
_GENERATION_SOURCES = (
    "validation.py", "modalities.py", "radio/", "scenario/config.py", "scenario/geodetic.py",
    "scenario/materials.py", "trace/", "sensors/", "store/schema.py", "store/hdf5.py",
    "dataset/generation.py", "dataset/simulator.py", "dataset/view.py",
)  # fmt: skip


def code_digest() -> str:
    return source_digest(_GENERATION_SOURCES, sorted((ASSETS_DIR / "vehicles").glob("*.ply")))


@functools.cache
def process_code_digest() -> str:
    """code_digest() as this process first read it (a worker checks it once, not for every run)."""
    return code_digest()
