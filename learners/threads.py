"""Torch on one thread for decisions (learners.policy, learners.blockage.policy)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside: decisions then come out the same on any number of cores, in
    or out of evaluation workers, and on a busy machine OpenMP's threads do not wait on each other
    (two threads were 6x slower than one for a batch of 16 with other jobs on the cores)."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)
