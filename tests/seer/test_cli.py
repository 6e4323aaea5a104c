"""The `seer` command is a stable contract (README, "The `seer` command"): its commands and flags are frozen here."""

import re
from pathlib import Path

import pytest

from seer.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def flags(sub: str) -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return {opt for a in action.choices[sub]._actions for opt in a.option_strings} - {"-h", "--help"}


def test_frozen_commands_and_flags():
    action = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(action.choices) == {"train", "evaluate", "serve", "retrain", "recipes", "demo"}
    assert flags("train") == {"--set", "--smoke"}
    assert flags("evaluate") == {"--set", "--model"}
    assert flags("serve") == {"--models", "--host", "--port"}
    assert flags("retrain") == {"--jobs", "--once"}


def test_recipes_lists_every_recipe(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("itransformer-etth1", "itransformer-etth2", "itransformer-ettm1", "itransformer-ettm2"):
        assert re.search(rf"^{name}\s+itransformer\s+ETT", out, re.M)


def test_unknown_recipe_and_bad_override_exit_2(capsys):
    assert main(["train", "nope"]) == 2
    assert "available" in capsys.readouterr().err
    assert main(["train", "itransformer-etth1", "--set", "trainer.bogus=1"]) == 2


def test_serve_without_models_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("SEER_MODELS", raising=False)
    assert main(["serve"]) == 2


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [line for line in blocks[0].splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, "the README must open with exactly two commands"
    test_cmd = commands[1]
    ci_cmds = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert test_cmd.endswith(ci_cmds[-1]), "CI's last line must be the README's test command"
    for step in ("pip install torch==2.13.0", "pip install -e '.[dev]'"):
        assert step in test_cmd and step in ci


@pytest.mark.parametrize("sub", ["train", "evaluate", "serve", "retrain", "recipes", "demo"])
def test_every_command_has_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
