"""The documents a newcomer reads agree with the code and stay inside the repository: the set-up truth
about torch, links that resolve in a clone, the results page written by bench/report.py, the
Moirai-MoE recipe table, and the noise the commands no longer make."""

import io
import re
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_the_readme_tells_the_truth_about_installing_torch():
    top = (ROOT / "README.md").read_text().split("## What Seer is")[0]
    assert "from plain PyPI on\nLinux it is the CUDA build, about 2.7 GB" in top
    assert "runs on a machine without a\nGPU too" in top
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in top
    assert "multi-GB CUDA build" not in top  # the old claim that the pin avoids it


@pytest.mark.parametrize(
    "doc", ["README.md", "docs/RESULTS.md", "pretrained/README.md", "forecasters/moirai_moe/README.md"]
)
def test_links_resolve_inside_the_clone(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.exists() and ROOT in resolved.parents, (
            f"{doc} links to {target}, which is not in the repository"
        )


def test_every_results_table_has_a_place_and_the_moirai_blocks_are_current():
    from bench.report import PAGES, pretrained_table, render, zeroshot_table

    pages = {p: p.read_text() for p in PAGES}
    _, missing = render(pages)
    assert not missing, f"no page has the markers of {missing}"
    results = pages[ROOT / "docs" / "RESULTS.md"]
    assert f"<!-- results:zeroshot -->\n{zeroshot_table()}\n<!-- /results:zeroshot -->" in results
    assert f"<!-- results:pretrained -->\n{pretrained_table()}\n" in pages[ROOT / "README.md"]
    readme = (ROOT / "README.md").read_text()
    for table in ("accuracy", "zeroshot", "walkprobe", "decode", "kernels", "probsparse", "moe"):
        assert f"<!-- results:{table} -->" not in readme, f"the {table} table belongs on docs/RESULTS.md"


def test_the_moirai_readme_states_the_recipes_epochs_and_patience():
    from training.recipes import get_recipe

    text = (ROOT / "forecasters" / "moirai_moe" / "README.md").read_text()
    for name in ("moirai-moe-tiny", "moirai-moe-small"):
        t = get_recipe(name).trainer
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        assert f"| {t.max_epochs} ({t.patience}) | {t.lr:.0e}".replace("e-0", "e-") in row, row
        assert f"×{t.lr_decay}" in row, row


def test_log_lines_go_to_the_current_stderr():
    """A progress bar redirects stderr to print above itself; the handler must write there, not to the
    stream that was stderr when logging was set up."""
    import logging

    from seer.cli import _CurrentStderr

    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    swapped, real = io.StringIO(), sys.stderr
    sys.stderr = swapped
    try:
        handler.emit(logging.LogRecord("seer.kernels", logging.INFO, __file__, 1, "kernel line", None, None))
    finally:
        sys.stderr = real
    assert swapped.getvalue() == "kernel line\n"


def test_mlflows_type_hint_advice_is_not_shown():
    from training.tracking import _without_type_hint_advice

    shown: list[str] = []
    real = warnings.showwarning
    warnings.showwarning = lambda message, *a, **k: shown.append(str(message))
    try:
        with _without_type_hint_advice():
            warnings.showwarning("\x1b[33mAdd type hints to the `predict` method to enable ...", UserWarning, "f", 1)
            warnings.showwarning("something else", UserWarning, "f", 1)
    finally:
        warnings.showwarning = real
    assert shown == ["something else"]
