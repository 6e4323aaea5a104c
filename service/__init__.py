"""The HTTP service: FastAPI app factory, settings from `SEER_*`, the model store.

Imports `data` (bundles, transforms) and the model registries, never `training` or `seer`.
"""

from service.app import create_app
from service.settings import Settings

__all__ = ["Settings", "create_app"]
