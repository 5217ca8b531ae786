"""Fixtures for the sandbox tests: a real uvicorn server on a free port, and a webhook sink."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if importlib.util.find_spec("athos_identity") is None:  # not installed in the venv yet
    sys.path.insert(0, str(SRC))
