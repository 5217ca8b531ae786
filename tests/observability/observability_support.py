"""Helpers of the observability tests (no conftest.py here: see tests/support.py)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from athos_identity.kit import ratelimit
from athos_identity.observability import JsonFormatter
from athos_identity.settings import get_settings, use_settings


@contextlib.contextmanager
def settings_changed(**changes: Any) -> Iterator[None]:
    """The process settings with a few values changed for the block."""
    before = get_settings()
    use_settings(before.model_copy(update=changes))
    ratelimit.reset()
    try:
        yield
    finally:
        use_settings(before)
        ratelimit.reset()


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@contextlib.contextmanager
def json_logs(level: int = logging.DEBUG) -> Iterator[CapturedLogs]:
    """Every log record of the block, formatted by the service's JSON formatter."""
    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "procrastinate")}
    root.addHandler(handler)
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(level)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        present = label_text.rstrip("}")
        if all(part in present.split(",") for part in want.split(",") if part):
            total += float(value)
    return total
