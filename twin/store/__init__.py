"""The HDF5 store every layer reads: the sample schema, atomic writing with resume, validated reading."""

from twin.store.hdf5 import (
    Episode,
    StoreWriter,
    TwinStore,
    discard_damaged,
    parts_folder,
    write_part,
    write_store,
)

__all__ = [
    "Episode",
    "StoreWriter",
    "TwinStore",
    "discard_damaged",
    "parts_folder",
    "write_part",
    "write_store",
]
