"""`GET /admin/health`: the detailed backend report, for administrators only.

It names backends, their addresses, errors and the schema revision: useful to whoever
runs the system, a map for anyone else. The public `/healthz` says only ok or degraded.
Sign-in is the admin pages' own (the chat's cookie, a standing session); the permission
is `admin.system`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from copilot.health import check_runtime
from copilot.web.admin.access import Refused, signed_in
from copilot.web.runtime import current

SYSTEM_PERMISSION = "admin.system"

router = APIRouter(include_in_schema=False)


@router.get("/admin/health")
async def admin_health(request: Request) -> JSONResponse:
    principal = await signed_in(request)
    if not principal.can(SYSTEM_PERMISSION):
        raise Refused(f"The health report needs the {SYSTEM_PERMISSION} permission.")
    report = await check_runtime(current())
    return JSONResponse(
        {"status": report.status, "checks": [c.as_dict() for c in report.checks]},
        status_code=503 if report.status == "down" else 200,
    )
