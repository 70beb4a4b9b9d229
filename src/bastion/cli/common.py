"""Shared CLI pieces: the console, error rendering, the system principal."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from bastion.core.errors import BastionError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def report_error(err: BastionError) -> None:
    err_console.print(f"[bold red]{err.message('en')}[/] / {err.message('zh-CN')}")
    for problem in err.problems:
        err_console.print(f"  - {problem.text('en')}")


def domain_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a domain error into a clear message and exit code 1 (never a traceback)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except BastionError as err:
            report_error(err)
            raise typer.Exit(1) from None

    return wrapper
