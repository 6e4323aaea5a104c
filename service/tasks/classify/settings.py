"""The bulk endpoint's own bounds, from the environment (`SEER_CLASSIFY_*`), validated at startup."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BulkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEER_CLASSIFY_", extra="ignore")

    max_upload_bytes: int = Field(
        default=1 << 30, ge=1, description="the largest file `POST .../classify/bulk` reads; past it, 413"
    )
    max_streams: int = Field(default=2, ge=1, description="bulk uploads scored at once per process; past it, 503")
    chunk_rows: int = Field(default=4096, ge=64, description="flows scored per step of a bulk upload")
