"""Progress bars: in place on a terminal; into a log, a plain line every few seconds, not every
iteration."""

from __future__ import annotations

import io
import time

import pytest

from twin import progress
from twin.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_interval_not_every_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.1)
    log = io.StringIO()
    for _ in progress_bar(range(2000), desc="closed loop", unit="drive", stream=log):
        time.sleep(0.0003)  # 2000 iterations over 0.6 s or more
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert 2 <= len(lines) <= 20, lines  # one per 0.1 s (the sleeps take at least 0.6 s) and the last
    assert all(line.startswith("closed loop:") for line in lines)
    assert "2000/2000" in lines[-1]


def test_a_short_bar_in_a_log_and_a_disabled_bar_print_nothing() -> None:
    log = io.StringIO()
    with progress_bar(total=50, desc="tracing", stream=log) as bar:
        bar.update(50)  # done long before the first line is due
    for _ in progress_bar(range(50), enabled=False, stream=log):
        pass
    assert log.getvalue() == ""


def test_a_terminal_redraws_in_place() -> None:
    screen = Terminal()
    with progress_bar(total=3, desc="training", stream=screen) as bar:
        for _ in range(3):
            bar.update(1)
    assert "\r" in screen.getvalue() and "3/3" in screen.getvalue()
