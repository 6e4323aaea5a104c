"""Generic rooms stay generic (STYLE rule 13): no generic module names a model family or a task.

A family plugs in by adding files — its spec, recipes and, where its task is new, the task's
predictor, objective, holdout and routes — and one line in each task table. So the modules that
serve, train, retrain and load every model must not mention any of them: this test reads their
code (identifiers, attribute names, string literals and comments; docstrings are prose and may give
examples) and fails on a model's name, its classes, a family folder, or a task's name.

The forbidden words come from the registry itself, so a family added later is covered without
editing this file.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from core.registry import TASKS
from inference.registry import REGISTRY

REPO = Path(__file__).resolve().parents[1]

# The generic modules: every file under these globs, less the per-task tables and folders.
# Not listed: the tables and composition roots whose job is to name them — inference/registry.py
# (assembles the families), inference/tasks/, service/tasks/, training/tasks/, training/recipes/<family>.py,
# data/<domain>/, seer/cli.py (the command, whose demo posts a forecast).
GENERIC_GLOBS = (
    "inference/bundle.py",
    "inference/predictor.py",
    "inference/pyfunc_model.py",
    "service/*.py",
    "training/system.py",
    "training/run.py",
    "training/checkpoint.py",
    "training/tracking.py",
    "training/recipes/recipe.py",
    "training/recipes/__init__.py",
    "training/retrain/*.py",
    "training/tasks/objective.py",
    "training/tasks/holdout.py",
    "core/registry.py",
    "core/config.py",
)
# Words that only name a task in the task vocabulary (core.registry.TASKS itself lists them).
ALLOWED_FILES_FOR_TASK_WORDS = {"core/registry.py"}
FAMILY_FOLDERS = ("forecasters", "signals")


def generic_files() -> list[Path]:
    files = sorted({p for g in GENERIC_GLOBS for p in REPO.glob(g) if p.name != "__pycache__"})
    return [p for p in files if p.is_file()]


def model_words() -> set[str]:
    """Model names, their config and module class names, and each model's folder in its family."""
    words: set[str] = set()
    for spec in REGISTRY.values():
        words |= {spec.name, spec.name.replace("_", ""), spec.model_cls.__name__, spec.config_cls.__name__}
        words.add(spec.model_cls.__module__.split(".")[1])  # forecasters.<folder>.model
        words.add(spec.name.split("_")[0])  # moirai_moe -> moirai
    for family in FAMILY_FOLDERS:
        words |= {p.name for p in (REPO / family).iterdir() if p.is_dir() and not p.name.startswith("_")}
    return {w.lower() for w in words if len(w) >= 4}


def code_words(source: str) -> list[tuple[int, str]]:
    """(line, text) of every identifier, string literal (not docstrings) and comment."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(body[0].lineno)
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if (
            tok.type in (tokenize.NAME, tokenize.COMMENT)
            or tok.type == tokenize.STRING
            and tok.start[0] not in docstrings
        ):
            found.append((tok.start[0], tok.string))
    return found


def offending(source: str, words: set[str]) -> list[tuple[int, str, str]]:
    hits = []
    for line, text in code_words(source):
        for piece in re.findall(r"[A-Za-z][A-Za-z0-9]*", text):
            low = piece.lower()
            for word in words:
                if low == word or (len(word) >= 6 and word in low):  # ForecastPredictor, moirai_moe
                    hits.append((line, word, text))
    return hits


def test_the_generic_module_list_is_real():
    files = generic_files()
    rels = {p.relative_to(REPO).as_posix() for p in files}
    assert {"service/app.py", "training/run.py", "inference/bundle.py", "training/system.py"} <= rels
    assert any(r.startswith("training/retrain/") for r in rels), rels


@pytest.mark.parametrize("path", generic_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_a_generic_module_names_no_model_family_and_no_task(path: Path):
    rel = path.relative_to(REPO).as_posix()
    words = model_words()
    if rel not in ALLOWED_FILES_FOR_TASK_WORDS:
        words |= set(TASKS)
    hits = offending(path.read_text(encoding="utf-8"), words)
    assert not hits, f"{rel} names a model family or task: " + "; ".join(
        f"line {n}: {w!r} in {t!r}" for n, w, t in hits
    )


def test_the_checker_catches_names_and_branches():
    words = model_words() | set(TASKS)
    bad = [
        "from inference.tasks.forecast import ForecastPredictor\n",
        "if spec.task == 'forecast':\n    pass\n",
        "x = cfg.router  # moirai_moe only\n",
        "if name.startswith('informer'):\n    pass\n",
    ]
    for source in bad:
        assert offending(source, words), source
    assert not offending('"""Forecast models are served here."""\nx = objective_for(spec.task)\n', words)
