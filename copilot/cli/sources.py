"""`copilot sources`: add a folder as a data source, list sources, sync one now, remove one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from copilot.cli.common import fail, run, settings_of
from copilot.cli.knowledge import DEFAULT_OWNER, acting_as, open_knowledge
from copilot.db.models import DataSource, SyncJob
from copilot.knowledge.sources import (
    NewSource,
    SourceError,
    SyncAlreadyRunning,
    add_source,
    get_source,
    list_sources,
    remove_source,
    sync_source,
)

app = typer.Typer(
    help="Data sources (folders) kept in step with the knowledge base.", no_args_is_help=True
)
add_app = typer.Typer(help="Add a data source.", no_args_is_help=True)
app.add_typer(add_app, name="add")

PERMISSION = "admin.datasources"


@add_app.command("folder")
def add_folder(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The folder (a mounted share).")],
    name: Annotated[str, typer.Option(help="The source's name (unique).")],
    scope: Annotated[
        Literal["company", "department"], typer.Option(help="Who may read its files.")
    ] = "company",
    department: Annotated[
        str | None, typer.Option(help="Department code, for a department source.")
    ] = None,
    classification: Annotated[
        Literal["public", "internal", "confidential", "secret"], typer.Option()
    ] = "internal",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag of every file (repeatable).")
    ] = None,
    as_user: Annotated[
        str, typer.Option("--as", help="Who adds it (owns its files; needs admin.datasources).")
    ] = DEFAULT_OWNER,
) -> None:
    """Add a folder whose files `copilot sources sync NAME` keeps in the knowledge base."""

    async def body() -> str:
        async with open_knowledge(settings_of(ctx)) as services, services.sessions() as session:
            principal = await acting_as(session, as_user, PERMISSION)
            new = NewSource(
                name,
                path,
                owner_id=uuid.UUID(principal.user_id),
                scope=scope,
                department_code=department,
                classification=classification,
                tags=tag or [],
            )
            try:
                source = await add_source(session, new)
            except SourceError as error:
                fail(str(error))
            return f"added {source.name}: {source.location} ({_access(source)})"

    typer.echo(run(body()))


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every source with its files and its last sync's status and counts."""

    async def body() -> list[dict[str, Any]]:
        async with open_knowledge(settings_of(ctx)) as services, services.sessions() as session:
            return [
                {
                    "name": s.source.name,
                    "kind": s.source.kind,
                    "location": s.source.location,
                    "access": _access(s.source),
                    "tags": s.source.tags,
                    "files": s.files,
                    "last_job": _job_json(s.last_job) if s.last_job else None,
                }
                for s in await list_sources(session)
            ]

    rows = run(body())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no data sources (add one with `copilot sources add folder PATH --name N`)")
    for row in rows:
        job = row["last_job"]
        last = f"last sync {job['status']} at {job['started_at']}: {_counts(job)}" if job else ""
        typer.secho(f"{row['name']}  {row['location']}  ({row['access']})", bold=True)
        typer.echo(f"    {row['files']} files; {last or 'never synced'}")


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The source's name.")],
    full: Annotated[
        bool, typer.Option("--full", help="Read every file, whatever its time says.")
    ] = False,
) -> None:
    """Sync a source now: new files added, changed ones a new version, gone ones removed.
    Exit 1 if the sync failed or any file did."""

    async def body() -> SyncJob:
        async with open_knowledge(settings_of(ctx)) as services:
            kb = services.kb
            async with kb.sessions() as session:
                try:
                    source = await get_source(session, name)
                except SourceError as error:
                    fail(str(error))
            try:
                return await sync_source(kb, source.id, full=full, trigger="cli")
            except SyncAlreadyRunning as error:
                fail(str(error))

    job = run(body())
    summary = _job_json(job)
    color = {"succeeded": typer.colors.GREEN, "partial": typer.colors.YELLOW}.get(
        job.status, typer.colors.RED
    )
    typer.secho(f"sync {job.status}: {_counts(summary)}", fg=color)
    for error in job.errors:
        typer.secho(f"  {error['path'] or name}: {error['error']}", fg=typer.colors.RED)
    if job.status != "succeeded":
        raise typer.Exit(1)


@app.command("remove")
def remove_command(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The source's name.")]
) -> None:
    """Remove a source and all its files (from both indexes and the database)."""

    async def body() -> int:
        async with open_knowledge(settings_of(ctx)) as services:
            try:
                return await remove_source(services.kb, name)
            except SourceError as error:
                fail(str(error))

    typer.echo(f"removed {name} and its {run(body())} files")


def _access(source: DataSource) -> str:
    return f"{source.scope}, {source.classification}"


def _job_json(job: SyncJob) -> dict[str, Any]:
    return {
        "status": job.status,
        "trigger": job.trigger,
        "full": job.full,
        "started_at": f"{job.started_at:%Y-%m-%d %H:%M:%S}",
        "finished_at": f"{job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else None,
        "added": job.added,
        "updated": job.updated,
        "deleted": job.deleted,
        "unchanged": job.unchanged,
        "failed": job.failed,
        "errors": job.errors,
    }


def _counts(job: dict[str, Any]) -> str:
    names = ("added", "updated", "deleted", "unchanged", "failed")
    return ", ".join(f"{job[name]} {name}" for name in names)
