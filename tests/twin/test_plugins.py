"""A third-party predictor package plugs into the twin through an entry point, as the learners do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from twin import plugins
from twin.errors import ConfigError
from twin.loop.policies import POLICIES, available_policies, make_policy

# The whole example package: a policy module and the metadata pip would write for its pyproject's
#   [project.entry-points."twin.policies"]
#   boresight = "boresight:Boresight"
PACKAGE = {
    "boresight.py": '''
import numpy as np

from twin.loop.policies import Policy


class Boresight(Policy):
    """Serves the beam closest to the array's boresight, ranked by distance from it."""

    name = "boresight"

    def act(self, obs, link):
        return np.argsort(np.abs(self.context.angles_deg), kind="stable")[:3]
''',
    "boresight-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: boresight\nVersion: 0.1\n",
    "boresight-0.1.dist-info/entry_points.txt": "[twin.policies]\nboresight = boresight:Boresight\n",
}


def write_package(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Put a folder of packages on sys.path with the plug-in cache cleared before and after."""

    def add(files: dict[str, str]) -> Path:
        folder = write_package(tmp_path / "site", files)
        monkeypatch.syspath_prepend(str(folder))
        plugins.load.cache_clear()
        return folder

    yield add
    plugins.load.cache_clear()
    POLICIES.pop("boresight", None)
    sys.modules.pop("boresight", None)


def test_an_entry_point_policy_is_found_by_name(on_path) -> None:  # type: ignore[no-untyped-def]
    on_path(PACKAGE)
    assert "boresight" in available_policies()
    assert type(make_policy("boresight")).__name__ == "Boresight"


def test_the_learners_plug_in_the_same_way() -> None:
    names = dict(plugins.load(plugins.POLICY_GROUP))
    assert "learners" in names and "learned" in dict(plugins.load(plugins.RUN_STEP_GROUP))


def test_a_broken_plug_in_is_named_in_one_line(on_path) -> None:  # type: ignore[no-untyped-def]
    broken = {**PACKAGE, "boresight.py": "raise ImportError('no module named torchvision')\n"}
    on_path(broken)
    with pytest.raises(ConfigError) as info:
        make_policy("boresight")
    message = str(info.value)
    assert message.startswith("plug-in 'boresight' (boresight:Boresight, entry point group 'twin.policies')")
    assert "no module named torchvision" in message and "\n" not in message


def test_the_main_job_runs_a_plugged_in_policy(tiny_store: Path, tmp_path: Path) -> None:
    site = write_package(tmp_path / "site", PACKAGE)
    command = [
        sys.executable, "-m", "twin.run", "scenario=tiny", f"cache_dir={tiny_store.parent}",
        f"hydra.run.dir={tmp_path / 'run'}", "learned.train=[]", "policies=[genie,boresight]",
        "evaluation.seeds=[0]", "evaluation.snapshot=false", "evaluation.plots=false", "progress=false",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["policies"] == ["genie", "boresight"]
