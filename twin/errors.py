"""Exceptions that carry a one-line, user-facing message."""


class TwinError(Exception):
    """Base class: the message names the input, the value and what was expected."""


class ConfigError(TwinError):
    """A scenario or run configuration value is invalid."""


class StoreError(TwinError):
    """An HDF5 store is missing, incomplete or does not follow the sample schema."""


class BackendError(TwinError):
    """The ray-tracing backend (Sionna RT / Dr.Jit / LLVM) cannot be used."""


class TaskError(TwinError):
    """A unit of work (a run of the generator, a batch of replays) failed on every attempt."""


class UsageError(TwinError, ValueError):
    """A call into the Python API with an argument it does not accept (e.g. a beam index outside
    the codebook); a ValueError too, as Gymnasium and NumPy callers expect."""
