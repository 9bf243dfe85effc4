"""The command line refuses every mistake with one line and exit status 2, before anything is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from twin import cli, generate
from twin.errors import ConfigError
from twin.scenario.config import load_scenario, scenario_from_dict

CONF = REPO / "twin" / "conf"


def run_generate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp: Path, *args: str):
    """`python -m twin.generate ARGS` in this process: (exit status, stdout, stderr)."""
    argv = ["twin.generate", *args, f"cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'run'}"]
    monkeypatch.setattr(sys, "argv", [*argv, "progress=false"])
    status = 0
    try:
        generate.main()
    except SystemExit as exc:
        status = int(exc.code or 0)
    out = capsys.readouterr()
    return status, out.out, out.err


def assert_refused(result: tuple[int, str, str], expected: str, tmp: Path) -> None:
    status, out, err = result
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith(f"error: {expected}"), err
    assert "Traceback" not in err and out == ""
    assert not (tmp / "cache").exists() and not (tmp / "run").exists()  # nothing written


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo=1", "foo: unknown key; allowed keys: scenario, replay, cache_dir, store, progress"),
        ("+foo=1", "foo: unknown key; allowed keys: scenario, replay, cache_dir, store, progress"),
        ("evaluation.sedes=[0]", "evaluation.sedes: unknown key; allowed keys: seeds, conditions"),
        ("replay=nope", "replay=nope: unknown option; available: deepsense, deepverse"),
        ("policies=[genie", "policies=[genie: not a valid override"),
    ],
)
def test_unknown_keys_and_options_get_one_line(
    override: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert_refused(run_generate(monkeypatch, capsys, tmp_path, "scenario=tiny", override), expected, tmp_path)


def test_model_option_of_the_learners_gets_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "learners.train", "model=nope", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: model=nope: unknown option; available: ar, beamtransfuser")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


NAME_EXPECTED = "a plain name of letters, digits, '.', '_' or '-', at most 100, no '..' (it names files)"


@pytest.mark.parametrize("name", ["../../outside", "/tmp/absolute", "", "a/b", ".."])
def test_a_scenario_name_never_leaves_the_cache_or_run_folder(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    expected = f"scenario.name = {name!r}: expected {NAME_EXPECTED}"
    result = run_generate(monkeypatch, capsys, tmp_path, "scenario=tiny", f"scenario.name={name}")
    assert_refused(result, expected, tmp_path)
    assert list(tmp_path.parent.glob("outside-*.h5")) == [] and not Path("/tmp/absolute").exists()
    with pytest.raises(ConfigError) as api:
        scenario_from_dict({"name": name})
    assert str(api.value) == expected


def test_a_broken_scenario_file_breaks_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(REPO / "scenarios" / "tiny.yaml", folder / "tiny.yaml")
    (folder / "empty.yaml").write_text("")
    (folder / "listed.yaml").write_text("- name: a\n- name: b\n")
    (folder / "unclosed.yaml").write_text("name: [unclosed\n")
    (folder / "nameless.yaml").write_text("description: no name\n")
    monkeypatch.setattr(cli, "SCENARIO_DIR", folder)
    cli.register_scenarios()
    work = tmp_path / "work"
    expected = {
        "empty": f"{folder / 'empty.yaml'}: empty; expected a mapping of scenario keys",
        "listed": f"{folder / 'listed.yaml'}: expected a mapping of scenario keys, got list",
        "unclosed": f"{folder / 'unclosed.yaml'}: not valid YAML (while parsing a flow sequence",
        "nameless": "scenario.name: missing; expected a string",
    }
    for name, message in expected.items():
        assert_refused(run_generate(monkeypatch, capsys, work, f"scenario={name}"), message, work)
        if name != "nameless":  # the same line from the Python API
            with pytest.raises(ConfigError) as api:
                load_scenario(folder / f"{name}.yaml")
            assert str(api.value).startswith(message)
    cli.check_command_line(["scenario=tiny"], CONF, "config")  # the other files still work


def test_the_readme_checkpoint_override_reaches_the_policy() -> None:
    override = "evaluation.policy_options.beamtransfuser.checkpoint=ck/bt"
    argv = cli.open_sections([override, "learned.train=[]"])
    cfg = cli.compose_command_line(argv, CONF, "config")
    assert cfg.evaluation.policy_options.beamtransfuser.checkpoint == "ck/bt"
    assert cfg.evaluation.policy_options.tracking.width == 2  # the other policies' options stay


def test_simple_mistakes_of_the_main_job_get_one_line(tiny_store: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable, "-m", "twin.run", f"store={tiny_store}", "learned.train=[]", "progress=false",
            "evaluation.snapshot=false", "evaluation.plots=false", f"hydra.run.dir={tmp_path / 'run'}", *args,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)

    for args, expected in [
        (["evaluation.seeds=[-1]"], "error: evaluation.seeds[0] = -1: expected a seed >= 0"),
        (["evaluation.seeds=[3,3]"], "error: evaluation.seeds[1] = 3: listed twice; expected distinct seeds"),
        (["policies=[genie,gps,genie]"], "error: policies[2] = 'genie': listed twice; expected each policy"),
        (["learned.train=[gru,gru]", "policies=[]"], "error: learned.train[1] = 'gru': listed twice"),
    ]:
        result = run(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
        assert not (tmp_path / "run" / "results.json").exists()  # nothing scored
    one = run("policies=genie")  # a scalar is a list of one
    assert one.returncode == 0, one.stderr
    assert "genie" in one.stdout and (tmp_path / "run" / "results.json").is_file()


def test_ctrl_c_prints_one_line(capsys: pytest.CaptureFixture) -> None:
    def generation(cfg: object) -> None:
        raise KeyboardInterrupt  # as Ctrl-C does in the middle of tracing

    with pytest.raises(SystemExit) as stopped:
        cli.run_task(generation)({})
    assert stopped.value.code == cli.INTERRUPTED_EXIT
    assert capsys.readouterr().err == f"error: {cli.INTERRUPTED}\n"
