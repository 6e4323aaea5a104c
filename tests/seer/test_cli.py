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


TRAINING = {"--set", "--smoke", "--data", "--horizon", "--name", "--targets", "--threads"}


def test_frozen_commands_and_flags():
    action = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(action.choices) == {"train", "evaluate", "serve", "retrain", "recipes", "demo", "pretrained", "score"}
    assert flags("train") == TRAINING | {"--resume"}
    assert flags("demo") == TRAINING | {"--port"}
    assert flags("evaluate") == {"--set", "--model"}
    assert flags("serve") >= {"--models", "--host", "--port"}
    assert flags("retrain") == {"--jobs", "--once"}
    assert flags("pretrained") == {"--as"}
    assert flags("score") == {"--input", "--output", "--format", "--batch", "--quantiles", "--threads"}


def parsed(*argv: str):
    return build_parser().parse_args(list(argv))


def test_the_recipe_contract_is_unchanged_and_smoke_runs_get_their_own_name():
    from seer.cli import _recipe

    real = _recipe(parsed("train", "itransformer-etth1"))
    assert (real.registered_name, real.experiment) == ("itransformer-etth1", "seer")
    smoke = _recipe(parsed("train", "itransformer-etth1", "--smoke"))
    assert (smoke.registered_name, smoke.experiment) == ("itransformer-etth1-smoke", "seer-smoke")
    named = _recipe(parsed("train", "itransformer-etth1", "--name", "mine"))
    assert named.registered_name == "mine" and named.name == "itransformer-etth1"
    on_purpose = _recipe(
        parsed("train", "itransformer-etth1", "--smoke", "--set", "registered_name=itransformer-etth1")
    )
    assert on_purpose.registered_name == "itransformer-etth1"


def test_a_model_on_a_file_needs_its_horizon_and_names_the_registered_model(tmp_path, capsys):
    from user_files import weekly_csv

    from seer.cli import _recipe

    path = weekly_csv(tmp_path / "sales.csv")
    recipe = _recipe(parsed("train", "informer", "--data", str(path), "--horizon", "8", "--name", "weekly-sales"))
    assert (recipe.registered_name, recipe.model, recipe.data.calendar_freq) == ("weekly-sales", "informer", "w")
    assert recipe.model_config.label_len == recipe.data.lookback // 2
    smoke = _recipe(parsed("train", "itransformer", "--data", str(path), "--horizon", "8", "--name", "ws", "--smoke"))
    assert smoke.registered_name == "ws-smoke"
    assert main(["train", "itransformer", "--data", str(path)]) == 2
    assert "--data needs --horizon" in capsys.readouterr().err
    assert main(["train", "itransformer"]) == 2
    err = capsys.readouterr().err.strip()
    assert "itransformer is a model: add --data FILE --horizon H --name NAME" in err and len(err.splitlines()) == 1
    assert main(["train", "nope", "--data", str(path), "--horizon", "8"]) == 2
    assert "'nope' is not one of informer, itransformer, moirai_moe" in capsys.readouterr().err


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


@pytest.mark.parametrize("sub", ["train", "evaluate", "serve", "retrain", "recipes", "demo", "pretrained"])
def test_every_command_has_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0
    parser = next(a for a in build_parser()._actions if a.dest == "command").choices[sub]
    undocumented = [a.dest for a in parser._actions if a.dest != "help" and not a.help]
    assert not undocumented, f"seer {sub} --help says nothing about {undocumented}"


def test_serving_a_version_number_is_a_ref():
    from service.settings import parse_model_ref

    ref = parse_model_ref("weekly-sales/3")
    assert (ref.name, ref.version, ref.alias, ref.path, ref.source) == (
        "weekly-sales",
        "3",
        None,
        None,
        "models:/weekly-sales/3",
    )
    assert parse_model_ref("models:/weekly-sales/12").version == "12" and str(ref) == "weekly-sales/3"
    with pytest.raises(ValueError, match="version 'x' is not a number"):
        parse_model_ref("weekly-sales/x")


def test_the_demo_asks_with_what_the_model_stores():
    """A model without timestamps in its example (the pretrained Moirai-MoE's once crashed the demo with
    `'timestamps'`) is asked without them; a probabilistic one for its 10-90 % band."""
    from seer.demo import request_body

    assert request_body({"example_input": {"history": [[1.0]]}, "quantiles": True}) == {
        "history": [[1.0]],
        "quantiles": [0.1, 0.9],
    }
    with pytest.raises(ValueError, match="stores no example input"):
        request_body({"name": "m", "example_input": {}})
