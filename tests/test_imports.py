"""The import direction (ARCHITECTURE.md, rooms and imports), checked by reading the source (nothing is imported).

Every `import x` / `from x import y` counts, at any depth (inside functions, `if TYPE_CHECKING:`,
try/except), and so does `importlib.import_module("x")` / `__import__("x")` with a literal name,
so a lazy import cannot slip a dependency past the rule. Relative imports are resolved against
the importing module first.

The package names are generic (`core`, `data`, `service`, ...), so the last tests also check that
they resolve to this repository and that every folder holding code is a regular package
(setuptools' `packages.find` in pyproject skips folders without `__init__.py`, so such code
would silently be left out of `pip install .` and the Docker image).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PACKAGES = ("core", "forecasters", "signals", "data", "inference", "training", "service", "seer")
# In-repo top-level names that are never installed (`pip install .` ships PACKAGES only), so no
# shipped package may import them, `seer` included.
UNSHIPPED = ("bench", "tests")

FAMILIES = frozenset({"forecasters", "signals"})

# importer -> the in-project packages it may import (itself included where listed). The longest
# matching module prefix wins, so a subpackage can be given a rule of its own.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "forecasters": frozenset({"core", "forecasters"}),
    "signals": frozenset({"core", "signals"}),
    # The ground floor: data imports no model and runs none.
    "data": frozenset({"core", "data"}),
    # The room between the models and their users; the only place that assembles the families' specs.
    "inference": frozenset({"core", "forecasters", "signals", "data", "inference"}),
    # Training looks models up through inference's registry; only a recipe (one file per family) names
    # a family's config class.
    "training": frozenset({"core", "data", "inference", "training"}),
    "training.recipes": frozenset({"core", "data", "inference", "training"} | FAMILIES),
    # The service never imports training (nor the CLI that composes everything), nor a family.
    "service": frozenset({"core", "data", "inference", "service"}),
    "seer": frozenset(PACKAGES),
}


def rule_for(module: str) -> tuple[str, frozenset[str]]:
    """The ALLOWED entry of the longest prefix of `module` (`training.recipes.informer` -> training.recipes)."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        key = ".".join(parts[:k])
        if key in ALLOWED:
            return key, ALLOWED[key]
    raise KeyError(module)


# Models and the kernel core are plain torch: no training framework, tracking or HTTP stack.
FRAMEWORKS = frozenset(
    {"lightning", "lightning_fabric", "pytorch_lightning", "mlflow", "fastapi", "starlette", "uvicorn"}
)
FRAMEWORK_FREE = frozenset({"core", "forecasters", "signals"})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str  # the importing module
    imported: str  # the absolute name it imports
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported} ({self.why})"


def module_name(rel_path: Path) -> tuple[str, bool]:
    """`data/scalers.py` -> ("data.scalers", False); `data/__init__.py` -> ("data", True)."""
    parts = list(rel_path.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    """Absolute name of `from <level dots><target> import ...`; None if it climbs past the top."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > len(base):
        return None
    base = base[: len(base) - level + 1]
    return ".".join(base + ([target] if target else []))


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str | None]]:
    """(line, absolute module name) for every import in the tree; None marks an unresolvable one."""
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module))
            else:
                found.append((node.lineno, _resolve_relative(module, is_package, node.level, node.module)))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                found.append((node.lineno, arg.value))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def check_source(source: str, rel_path: str) -> list[Violation]:
    """All rule violations in one file's source; `rel_path` is its path from the repo root."""
    module, is_package = module_name(Path(rel_path))
    importer = module.split(".")[0]
    rule, allowed_here = rule_for(module)
    tree = ast.parse(source, filename=rel_path)
    violations = []
    for line, imported in imported_names(tree, module, is_package):
        if imported is None:
            violations.append(Violation(rel_path, line, module, "?", "relative import beyond the top-level package"))
            continue
        top = imported.split(".")[0]
        if top in UNSHIPPED:
            violations.append(Violation(rel_path, line, module, imported, f"{top}/ is not installed with the package"))
        elif top in PACKAGES and top not in allowed_here:
            allowed = ", ".join(sorted(allowed_here))
            violations.append(Violation(rel_path, line, module, imported, f"{rule} may import only {allowed}"))
        elif top in FRAMEWORKS and importer in FRAMEWORK_FREE:
            violations.append(Violation(rel_path, line, module, imported, f"{importer} must stay free of {top}"))
    return violations


def source_files() -> list[Path]:
    """Every .py file of the packages that exist on disk (a package not written yet is skipped)."""
    files: list[Path] = []
    for package in PACKAGES:
        root = REPO / package
        if root.is_dir():
            files.extend(p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def test_the_tree_follows_the_import_direction():
    files = source_files()
    assert any(p.relative_to(REPO).parts[0] == "core" for p in files), "no core/*.py found: is REPO right?"
    violations = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        violations.extend(check_source(path.read_text(encoding="utf-8"), rel))
    assert not violations, "import direction broken (ARCHITECTURE.md):\n" + "\n".join(map(str, violations))


@pytest.mark.parametrize(
    ("rel_path", "source", "imported"),
    [
        ("service/x.py", "from training import y\n", "training"),
        ("service/x.py", "def handler():\n    import training.recipes as r\n    return r\n", "training.recipes"),
        ("service/app.py", "from seer.cli import main\n", "seer.cli"),
        ("service/x.py", "import importlib\nm = importlib.import_module('training.tracking')\n", "training.tracking"),
        ("core/nn/attention.py", "import lightning as L\n", "lightning"),
        ("core/ops/dispatch.py", "def f():\n    from mlflow.pyfunc import PythonModel\n", "mlflow.pyfunc"),
        ("forecasters/itransformer/model.py", "import pytorch_lightning\n", "pytorch_lightning"),
        (
            "signals/eeg_artifact/model.py",
            "try:\n    from fastapi import FastAPI\nexcept ImportError:\n    pass\n",
            "fastapi",
        ),
        ("forecasters/itransformer/model.py", "from data.scalers import StandardScaler\n", "data.scalers"),
        ("forecasters/__init__.py", "from signals import SPECS\n", "signals"),
        ("core/__init__.py", "from inference.registry import get_spec\n", "inference.registry"),
        ("data/series/sources.py", "from training.recipes import RECIPES\n", "training.recipes"),
        ("data/series/sources.py", "from service.settings import Settings\n", "service.settings"),
        ("data/bundle.py", "def load():\n    from forecasters import SPECS\n", "forecasters"),
        ("data/series/windows.py", "from inference.bundle import save_bundle\n", "inference.bundle"),
        ("service/store.py", "from forecasters import SPECS\n", "forecasters"),
        ("service/x.py", "from training.tasks import OBJECTIVES\n", "training.tasks"),
        ("training/run.py", "from forecasters.informer import InformerConfig\n", "forecasters.informer"),
        ("inference/bundle.py", "from training.tracking import CHAMPION\n", "training.tracking"),
        ("core/registry.py", "from inference.registry import REGISTRY\n", "inference.registry"),
        ("training/system.py", "from service import create_app\n", "service"),
        ("seer/cli.py", "from bench.accuracy import main\n", "bench.accuracy"),
        (
            "service/x.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from training import R\n",
            "training",
        ),
    ],
)
def test_checker_reports_a_bad_import(rel_path, source, imported):
    violations = check_source(source, rel_path)
    assert [v.imported for v in violations] == [imported], violations


@pytest.mark.parametrize(
    ("rel_path", "source"),
    [
        (
            "service/x.py",
            "from inference.bundle import load_bundle\nfrom inference.registry import REGISTRY\nimport fastapi\n",
        ),
        ("inference/registry.py", "from forecasters import SPECS\nfrom signals import SPECS as S\n"),
        ("training/recipes/informer.py", "from forecasters.informer import InformerConfig\n"),
        ("training/run.py", "from inference.registry import get_spec\nfrom data.schemas import ForecastBatch\n"),
        ("data/series/windows.py", "import lightning as L\n"),  # LightningDataModules live in data
        (
            "training/system.py",
            "import lightning as L\nimport mlflow\nfrom data.series.windows import ForecastDataModule\n",
        ),
        (
            "seer/cli.py",
            "def main():\n    from training.recipes import RECIPES\n    from service.app import create_app\n",
        ),
        ("forecasters/itransformer/model.py", "import torch\nfrom core.nn import SeriesNorm\nfrom .config import C\n"),
        ("core/ops/attention/__init__.py", "from . import reference\nfrom ..dispatch import resolve_impl\n"),
        ("core/nn/attention.py", "import importlib\nimportlib.import_module('triton')\n"),
    ],
)
def test_checker_accepts_allowed_imports(rel_path, source):
    assert check_source(source, rel_path) == []


def test_relative_imports_are_resolved():
    # `from ..dispatch import x` inside core/ops/attention/__init__.py is core.ops.dispatch.
    tree = ast.parse("from ..dispatch import x\nfrom . import reference\nfrom .triton import k\n")
    names = [name for _, name in imported_names(tree, "core.ops.attention", is_package=True)]
    assert names == ["core.ops.dispatch", "core.ops.attention", "core.ops.attention.triton"]
    tree = ast.parse("from .config import C\nfrom .. import REGISTRY\n")
    names = [name for _, name in imported_names(tree, "forecasters.itransformer.model", is_package=False)]
    assert names == ["forecasters.itransformer.config", "forecasters"]
    assert check_source("from ...training import x\n", "forecasters/itransformer/model.py")[0].imported == "?"


def _existing_packages() -> list[str]:
    return [name for name in PACKAGES if (REPO / name).is_dir()]


@pytest.mark.parametrize("name", _existing_packages())
def test_package_resolves_inside_the_repo(name, monkeypatch):
    # The repo root is appended (not prepended) when this session lacks it, so an installed
    # package of the same name still wins the lookup and is caught here.
    if str(REPO) not in sys.path:
        monkeypatch.setattr(sys, "path", [*sys.path, str(REPO)])
        importlib.invalidate_caches()
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is not importable"
    locations = [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        locations.append(Path(spec.origin).resolve())
    assert locations, f"{name} resolves to {spec!r}, not to a folder of this repo"
    outside = [str(p) for p in locations if not p.is_relative_to(REPO)]
    assert not outside, f"{name} resolves outside {REPO}: {outside} (another installed package shadows it)"


@pytest.mark.parametrize("name", _existing_packages())
def test_every_code_folder_is_a_regular_package(name):
    missing = sorted(
        str(folder.relative_to(REPO))
        for folder in {p.parent for p in (REPO / name).rglob("*.py") if "__pycache__" not in p.parts}
        if not (folder / "__init__.py").is_file()
    )
    assert not missing, f"folders with code but no __init__.py (left out of `pip install .`): {missing}"


def test_the_image_copies_every_shipped_package():
    # The Dockerfile installs from a copy of the sources: a room left out of its COPY lines would be
    # missing from the image, and only a container start would tell.
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert set(PACKAGES) <= copied, f"Dockerfile does not COPY {sorted(set(PACKAGES) - copied)}"
