"""The VI-PoE experiments script end to end on the tiny store at a tiny scale: the tables come out in
the paper's layout with numbers that hang together (top-1 ≤ top-3, a drop is full − masked DBA, the
paper's column is the paper's), and a second run in the same folder reuses the checkpoints and prints
the same tables."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from learners import vipoe_experiments


def run_script(
    store: Path,
    out: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, ...] = ("--experiments", "1,2,3"),
) -> str:
    argv = ["vipoe_experiments", "--store", str(store), "--out", str(out), "--scale", "0.05",
            "--stride", "4", *extra]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    vipoe_experiments.main()
    return capsys.readouterr().out


def table(text: str, title: str) -> list[list[str]]:
    """The body rows of the markdown table printed after the line starting with `title`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_tables_are_consistent_and_a_rerun_reuses_the_checkpoints(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_script(tiny_store, tmp_path, capsys, monkeypatch)
    one = table(first, "Table I analogue")
    methods = ["VI-PoE data-efficient", "VI-PoE data-sufficient", "BeamTransFuser", "GRU", "MLP", "Kalman"]
    assert [row[0] for row in one] == methods
    for row in one:
        dba, top1, top3 = (float(v) for v in row[1:4])
        assert 0 <= top1 <= top3 <= 1 and 0 <= dba <= 1
        assert float(row[4]) >= 0  # SNR loss against the genie
    full = float(re.search(r"full (\d\.\d+)\)", first).group(1))  # type: ignore[union-attr]
    two = table(first, "Table II analogue")
    assert [row[0] for row in two] == list(vipoe_experiments.MASKED)
    for name, dba, drop, paper in two:
        assert float(drop) == pytest.approx(full - float(dba), abs=1.5e-3)
        assert float(paper) == pytest.approx(vipoe_experiments.PAPER_TABLE_II[name], abs=1e-3)
    assert [row[0] for row in table(first, "Fig. 2 analogue")] == list(vipoe_experiments.PAPER_FIG_2)
    assert first.count("trained        ") == 8  # Table I's six models and Fig. 2's two ablations

    second = run_script(tiny_store, tmp_path, capsys, monkeypatch)
    assert "trained        " not in second
    for title in ("Table I analogue", "Table II analogue", "Fig. 2 analogue"):
        assert table(second, title) == table(first, title)

    # Table II on the data-sufficient model: its full DBA is Table I's data-sufficient row.
    third = run_script(
        tiny_store, tmp_path, capsys, monkeypatch, ("--experiments", "2", "--masked-model", "sufficient")
    )
    assert "trained        " not in third
    full = float(re.search(r"data-sufficient, full (\d\.\d+)\)", third).group(1))  # type: ignore[union-attr]
    assert full == pytest.approx(float(one[1][1]), abs=1e-3)
    assert [row[0] for row in table(third, "Table II analogue")] == list(vipoe_experiments.MASKED)


def test_experiment_five_on_shipped_checkpoints_needs_both_checkpoints(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vipoe").mkdir()
    (tmp_path / "vipoe" / "config.json").write_text("{}")
    argv = ["vipoe_experiments", "--store", str(tiny_store), "--out", str(tmp_path / "out"),
            "--experiments", "5", "--shipped", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        vipoe_experiments.main()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"--shipped: no checkpoint at {tmp_path / 'beamtransfuser'}")


def test_figure_three_is_written_as_a_png(tmp_path: Path) -> None:
    path = tmp_path / "fig3.png"
    vipoe_experiments.plot_figure_three({8: [0.2, 0.4], 32: [0.3, 0.5]}, [0.1, 1.0], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
