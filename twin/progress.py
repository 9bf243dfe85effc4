"""The one progress bar every long loop uses (tracing, training, closed loop).

On a terminal it redraws in place a few times a second. When the output goes to a file or a pipe (a
CI log, `> run.log`) there is no redrawing: it prints one plain line every `LOG_INTERVAL_S` seconds
and, if the bar is kept, a last one when done; a bar done sooner prints nothing. So a main-job log
stays a few hundred lines however many iterations run.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm

TERMINAL_INTERVAL_S = 0.5
LOG_INTERVAL_S = 5.0


class LineWriter(io.TextIOBase):
    """Turns tqdm's in-place redraws (carriage return, padding) into one line each."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        for part in text.split("\r"):
            line = part.strip()
            if line:
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    stream: TextIO | None = None,
) -> tqdm:
    """A tqdm bar (use it as tqdm: iterate, `update`, `set_postfix`, a context manager) that
    redraws on a terminal and prints a line every few seconds elsewhere; `enabled=False`: silent."""
    stream = stream or sys.stderr
    options: dict[str, Any] = {"mininterval": TERMINAL_INTERVAL_S, "file": stream}
    if not is_terminal(stream):
        options = {
            "file": LineWriter(stream),
            "mininterval": LOG_INTERVAL_S,
            "maxinterval": LOG_INTERVAL_S,
            "delay": LOG_INTERVAL_S,  # a bar done within a few seconds prints nothing
            "ncols": 100,  # no terminal to size the bar for
        }
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, leave=leave, **options)
