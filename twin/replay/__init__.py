"""Replay of recorded datasets into the sample schema: real DeepSense 6G and simulated DeepVerse 6G.

    from twin.replay import replay_store
    path = replay_store("deepsense", "../shared/data/deepsense6g", "outputs/cache", scenario="scenario17")

converts the folder once (cached like twin data, by a hash of the folder's file listing, the options
and the replay code) and returns the store's path; the environment, policies and report then run on
it unchanged. Options are the fields of `ReplayConfig` (validated: one-line `ConfigError`s); a
recording that cannot be converted raises `ReplayError` naming the file, row and column.
From a composed Hydra node: `replay_from_config(replay_config_from(cfg.replay), cfg.cache_dir)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from twin.replay.config import KINDS, SENSORS, ReplayConfig, replay_config_from
from twin.replay.formats import BadFile, ReplayError, resolve
from twin.replay.recording import Recording, write_recording
from twin.store import discard_damaged
from twin.store.digest import source_digest
from twin.validation import to_dict

__all__ = [
    "KINDS",
    "SENSORS",
    "BadFile",
    "ReplayConfig",
    "ReplayError",
    "load_recording",
    "replay_config_from",
    "replay_from_config",
    "replay_store",
    "source_folder",
    "store_path",
]

# Modules whose behaviour shapes a converted store: editing one invalidates cached conversions.
_SOURCES = (
    "replay/", "scenario/geodetic.py", "store/schema.py", "store/hdf5.py", "radio/codebook.py",
)  # fmt: skip


def code_digest() -> str:
    return source_digest(_SOURCES)


def source_folder(config: ReplayConfig) -> tuple[Path, Path]:
    """(dataset root, the scenario folder inside it), both checked to exist."""
    root = Path(config.path).expanduser()
    if not root.is_dir():
        raise ReplayError(f"replay.path = {config.path!r}: folder not found")
    if not config.scenario:
        return root, root
    folder = resolve(root, root, config.scenario, "replay.scenario")
    if not folder.is_dir():
        present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
        raise ReplayError(
            f"replay.scenario = {config.scenario!r}: no such folder in {root}; folders: {present}"
        )
    return root, folder


def listing_digest(folder: Path) -> str:
    """Hash of every file's relative path, size and modification time under `folder` (a changed,
    added or removed file gives a new store; reading 10,000 sweeps to hash them would not)."""
    entries = []
    for directory, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(directory, name)
            stat = os.stat(full)
            entries.append(f"{os.path.relpath(full, folder)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def load_recording(config: ReplayConfig) -> Recording:
    root, folder = source_folder(config)
    if config.kind == "deepsense":
        from twin.replay import deepsense

        return deepsense.load(root, folder, config)
    from twin.replay import deepverse

    return deepverse.load(root, folder, config)


def store_path(config: ReplayConfig, cache_dir: str | Path) -> Path:
    _, folder = source_folder(config)
    options = to_dict(config)
    options["path"] = str(Path(config.path).resolve())
    key = hashlib.sha256(
        (json.dumps(options, sort_keys=True) + listing_digest(folder) + code_digest()).encode()
    ).hexdigest()[:12]
    return Path(cache_dir) / f"{config.kind}-{folder.resolve().name}-{key}.h5"


def replay_store(kind: str, path: str | Path, cache_dir: str | Path, **options: Any) -> Path:
    """Convert the recording at `path` (once) and return the store's path; options as in ReplayConfig."""
    config = replay_config_from({**options, "kind": kind, "path": str(path)})
    return replay_from_config(config, cache_dir)


def replay_from_config(config: ReplayConfig, cache_dir: str | Path) -> Path:
    target = store_path(config, cache_dir)
    if target.exists():
        damaged = discard_damaged(target)
        if damaged is None:
            return target
        print(f"cached store {target} was damaged ({damaged}); converting it again", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_recording(load_recording(config), target)
