"""Commands of `bastion healthcode` (see bastion.cli.healthcode): offline verification of a
signed code and the signing keys (rotate, list, export the public half)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors, err_console
from bastion.core import clock
from bastion.core.i18n import t


def _keys_from_file(path: Path) -> dict[str, object]:
    from bastion.healthcode import signing

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return dict(signing.public_keys_from_jwks(document))
    except (OSError, ValueError, AttributeError) as err:
        err_console.print(f"[bold red]{t('code.keys_file_bad', 'en', file=str(path))}[/] ({err})")
        raise typer.Exit(2) from None


def verify(
    payload: str = typer.Argument(..., help="The scanned code (BHC1.…)."),
    keys_file: Path | None = typer.Option(
        None,
        "--keys",
        help="Public keys exported with `keys export-public` (JSON); without it, the database's.",
        dir_okay=False,
    ),
) -> None:
    """Check a code offline with only the public keys: prints the colour, expiry and masked
    person, or why it is refused (expired, bad signature, unknown or retired key, malformed).
    Exit 0 when valid, 1 when refused."""
    from bastion.healthcode import signing

    if keys_file is not None:
        public = _keys_from_file(keys_file)
    else:
        from bastion.core.db import transaction
        from bastion.healthcode import keys

        with transaction() as session:
            public = dict(keys.public_keys(db_session=session))
    verdict = signing.verify(payload, public, now=clock.now())  # type: ignore[arg-type]
    claims = verdict.claims
    if not verdict.ok:
        reason = verdict.refusal or "malformed"
        console.print(
            f"[bold red]REFUSED[/] {reason}: {t(f'code.verdict_{reason}', 'en')} / "
            f"{t(f'code.verdict_{reason}', 'zh-CN')}"
        )
        raise typer.Exit(1)
    assert claims is not None
    style = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}[claims.colour]
    expires = clock.to_local(signing.expires_text(claims)).strftime("%Y-%m-%d %H:%M:%S")
    console.print(f"[{style}]VALID {claims.colour.upper()}[/]")
    console.print(f"colour: {claims.colour}")
    console.print(f"expires: {expires}")
    console.print(f"person: {signing.mask_person(claims.person)}")
    console.print(f"key: {claims.kid}")


keys_app = typer.Typer(help="Signing keys of health codes.", no_args_is_help=True)


@keys_app.command("rotate")
@domain_errors
def rotate(
    grace: int | None = typer.Option(
        None, help="Seconds the old key keeps verifying (default: BASTION_CODE_KEY_GRACE_SECONDS)."
    ),
) -> None:
    """Activate a new signing key; the old one verifies until the grace period ends. Audited.
    Servers pick the new key up at their next key poll."""
    from bastion.core.auth import system_principal
    from bastion.core.db import transaction
    from bastion.healthcode import keys

    with transaction() as session:
        row = keys.rotate(db_session=session, principal=system_principal(), grace_seconds=grace)
        kid = row.kid
    console.print(f"new signing key [bold]{kid}[/]")


@keys_app.command("list")
@domain_errors
def list_keys() -> None:
    """Every key: created, activated, superseded and retired times; which one signs."""
    from bastion.core.auth import system_principal
    from bastion.core.db import transaction
    from bastion.healthcode import keys

    def when(value: object) -> str:
        return "—" if value is None else clock.to_local(value).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]

    now = clock.now()
    table = Table("kid", "state", "created", "activated", "superseded", "retired")
    with transaction() as session:
        for row in keys.list_keys(db_session=session, principal=system_principal()):
            if row.retired_at is not None and row.retired_at <= now:
                state = "retired"
            elif row.superseded_at is not None:
                state = "verifying"
            else:
                state = "signing"
            table.add_row(
                row.kid,
                state,
                when(row.created_at),
                when(row.activated_at),
                when(row.superseded_at),
                when(row.retired_at),
            )
    console.print(table)


@keys_app.command("export-public")
@domain_errors
def export_public(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of stdout."),
) -> None:
    """The public keys that still verify, as JSON (JWKS), for checkpoints working offline."""
    from bastion.core.db import transaction
    from bastion.healthcode import keys

    with transaction() as session:
        document = keys.jwks(db_session=session)
    text = json.dumps(document, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"{len(document['keys'])} key(s) written to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("verify")(verify)
    app.add_typer(keys_app, name="keys")
