"""Shared by every benchmark: machine facts and the one-JSON-line-per-result emitter."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from functools import cache
from typing import Any


@cache
def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": sys.platform,
    }


def emit(name: str, value: float, unit: str, **extra: Any) -> None:
    """Print one result as a JSON line: name, value, unit, any extras, and the machine."""
    record = {"name": name, "value": round(value, 2), "unit": unit, **extra, "machine": machine()}
    print(json.dumps(record, ensure_ascii=False), flush=True)
