"""`bastion healthcode …`: status, recompute, manual changes (healthcode_status) and signed
codes, keys and offline verification (healthcode_codes)."""

from __future__ import annotations

import typer

from bastion.cli import healthcode_codes, healthcode_status

app = typer.Typer(
    help="Health codes: status, recompute, manual changes, signed codes.", no_args_is_help=True
)
healthcode_status.register(app)
healthcode_codes.register(app)
