from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class SyncMode(StrEnum):
    full = "full"  # everything, then deletions swept
    incremental = "incremental"  # what changed since the last run, with an overlap


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = (RunStatus.queued, RunStatus.running)


class SyncCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: SyncMode = SyncMode.incremental


class SyncAccepted(BaseModel):
    id: uuid.UUID
    status: RunStatus


class SyncRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connector_id: uuid.UUID
    mode: SyncMode
    status: RunStatus
    stream: str | None = Field(description="The stream being pulled: customers or orders.")
    pages: int
    customers: int
    orders: int
    skipped: int = Field(description="E-mails and phones that could not be normalized.")
    deleted: int = Field(description="Records gone from the platform, removed here too.")
    estimated_total: int | None = Field(
        description="Records expected: the streams pulled so far plus the platform's total of "
        "the one in progress; null while that total is unknown."
    )
    records_per_second: float | None = None
    eta_seconds: float | None = None
    attempts: int
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
