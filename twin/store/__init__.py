"""The HDF5 store every layer reads: the sample schema, atomic writing with resume, validated reading."""

from twin.store.hdf5 import Episode, StoreWriter, TwinStore, discard_damaged, write_store

__all__ = ["Episode", "StoreWriter", "TwinStore", "discard_damaged", "write_store"]
