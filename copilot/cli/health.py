"""`copilot health`: status and latency of every configured backend."""

from __future__ import annotations

import json

import typer

from copilot.cli.common import run, settings_of
from copilot.health import check_all


def health(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Check every backend. Exit 0: all up; 1: a required one is down; 2: degraded."""
    report = run(check_all(settings_of(ctx)))
    if as_json:
        typer.echo(
            json.dumps(
                {"status": report.status, "checks": [c.as_dict() for c in report.checks]}, indent=2
            )
        )
    else:
        for check in report.checks:
            state = "ok" if check.ok else ("DOWN" if check.required else "down (optional)")
            color = typer.colors.GREEN if check.ok else typer.colors.RED
            typer.secho(
                f"{check.name:<14}{state:<18}{check.latency_ms:>8.1f} ms  {check.detail}", fg=color
            )
        typer.echo(f"status: {report.status}")
    raise typer.Exit(report.exit_code)
