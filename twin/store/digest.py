"""Hashes of the code that shapes cached data: editing a listed module invalidates its caches."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import twin
from twin.store.schema import SCHEMA_VERSION


def source_digest(modules: Iterable[str], extra_files: Iterable[Path] = ()) -> str:
    """sha256 over the package version, the schema version, the named twin modules (or folders of
    modules) and extra files."""
    h = hashlib.sha256(f"{twin.__version__}/{SCHEMA_VERSION}".encode())
    package = Path(twin.__file__).parent
    for name in modules:  # a name ending in "/" stands for every module of that folder
        files = sorted((package / name).rglob("*.py")) if name.endswith("/") else [package / name]
        for path in files:
            h.update(path.relative_to(package).as_posix().encode())
            if path.exists():
                h.update(path.read_bytes())
    for path in extra_files:
        h.update(path.read_bytes())
    return h.hexdigest()
