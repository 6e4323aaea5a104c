"""Op tests: every test marked `interpret` runs its kernels through the one shared interpreter fixture.

The fixture and the parity measure live in `triton_tier.py` (imported by the test files as `triton_tier`,
this folder being on sys.path under pytest's default import mode).
"""

from __future__ import annotations

import pytest
from triton_tier import interpret  # noqa: F401  (the fixture, for every test in this folder)


@pytest.fixture(autouse=True)
def _interpret_marked(request: pytest.FixtureRequest) -> None:
    """Tests marked `@pytest.mark.interpret` get the `interpret` fixture; the others run as they are."""
    if request.node.get_closest_marker("interpret") is not None:
        request.getfixturevalue("interpret")
