"""Every entry point resolves its store one way: `store=`, else `replay=`, else the scenario's twin data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.twin.replay.conftest import RADAR, make_scenario
from twin.store import TwinStore


def test_generate_converts_a_replay_instead_of_tracing(tmp_path: Path) -> None:
    make_scenario(tmp_path / "data")
    command = [
        sys.executable, "-m", "twin.generate", "scenario=tiny", "replay=deepsense",
        f"replay.path={tmp_path / 'data'}", "replay.scenario=scenario31", "replay.resolution=[32,18]",
        f"replay.radar_shape=[{','.join(map(str, RADAR))}]", f"cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}", "progress=false",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip().splitlines()[-1])
    assert printed.parent == tmp_path / "cache" and printed.name.startswith("deepsense-scenario31-")
    assert "traced" not in result.stdout and not list((tmp_path / "cache").glob("tiny-*"))  # no twin data
    with TwinStore(printed) as store:
        assert store.attrs["source"] == "deepsense" and len(store.episode_ids) == 2
