"""Loads Sionna RT with a working Dr.Jit backend.

Dr.Jit's CPU (LLVM) backend crashes with Debian's default LLVM 15 ("Cannot select fmaximum"), so we
point it at LLVM >= 16 before mitsuba/drjit are imported. On a CUDA machine Sionna picks the GPU
variant itself and the LLVM path is irrelevant.
"""

from __future__ import annotations

import glob
import os
from functools import cache
from types import ModuleType

from twin.errors import BackendError

_LLVM_ENV = "DRJIT_LIBLLVM_PATH"
_LLVM_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1",
    "/usr/lib/x86_64-linux-gnu/libLLVM-19.so",
    "/usr/lib/llvm-19/lib/libLLVM.so.19.1",
    "/usr/lib/llvm-19/lib/libLLVM-19.so",
)
_INSTALL_HINT = "install it with `apt-get install -y libllvm19` or set DRJIT_LIBLLVM_PATH to libLLVM >= 16"


def find_llvm() -> str | None:
    """Path of a usable libLLVM (>= 16), or None."""
    configured = os.environ.get(_LLVM_ENV)
    if configured:
        return configured
    for candidate in _LLVM_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    found = sorted(glob.glob("/usr/lib/*/libLLVM.so.1[6-9]*") + glob.glob("/usr/lib/*/libLLVM.so.2[0-9]*"))
    return found[-1] if found else None


def configure_llvm() -> None:
    """Set DRJIT_LIBLLVM_PATH (if unset) so Dr.Jit does not fall back to an LLVM that crashes."""
    configured = os.environ.get(_LLVM_ENV)
    if configured:
        if not os.path.exists(configured):
            raise BackendError(f"{_LLVM_ENV}={configured!r} does not exist; {_INSTALL_HINT}")
        return
    path = find_llvm()
    if path is not None:
        os.environ[_LLVM_ENV] = path


@cache
def sionna_rt() -> ModuleType:
    """Import sionna.rt once, with the LLVM backend configured; a clear error if it cannot work."""
    configure_llvm()
    try:
        import sionna.rt as rt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BackendError(f"cannot import sionna.rt ({exc}); install with `pip install -e .`") from exc
    import mitsuba as mi

    if mi.variant() is None or not mi.variant().endswith("polarized"):  # pragma: no cover
        raise BackendError(f"Sionna RT needs a polarized Mitsuba variant, got {mi.variant()!r}")
    if mi.variant().startswith("llvm") and os.environ.get(_LLVM_ENV) is None:
        raise BackendError(f"no libLLVM >= 16 found for Dr.Jit's CPU backend; {_INSTALL_HINT}")
    return rt
