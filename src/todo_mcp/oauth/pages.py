"""The pages a person sees: log in and allow (or deny) a client, and the connected apps.

Plain HTML forms and one stylesheet, no JavaScript. Every form carries a CSRF token: an HMAC of
a random cookie (SameSite=Lax, HttpOnly) and of what the form acts on, so a page elsewhere can
neither submit one nor replay another's. The pages may not be framed (clickjacking).
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from mcp.server.auth.provider import construct_redirect_uri
from mcp.shared.auth import InvalidRedirectUriError
from pydantic import AnyUrl, ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from todo_mcp.config import is_loopback
from todo_mcp.db.engine import Database
from todo_mcp.db.models import User
from todo_mcp.db.types import utcnow
from todo_mcp.oauth.provider import LOGIN_PATH, LoginRequest, Provider
from todo_mcp.services import accounts
from todo_mcp.services.errors import DatabaseUnavailable, DomainError, NotFound, TooManyAttempts
from todo_mcp.services.oauth import grants
from todo_mcp.services.oauth.clients import RegisteredClient
from todo_mcp.services.oauth.keys import derive_key, mac, same

log = logging.getLogger(__name__)

CSRF_COOKIE = "todo_mcp_csrf"
SESSION_COOKIE = "todo_mcp_session"
SESSION_SECONDS = 30 * 60
CONNECTIONS_PATH = "/connections"
STYLESHEET = (Path(__file__).parent / "page.css").read_bytes()
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The login URL carries the sealed request; it is not sent on to anything the page links.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
WRONG_CREDENTIALS = "The email or password is incorrect."


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · todo-mcp</title>"
        '<link rel="stylesheet" href="/oauth/page.css"></head>'
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _problem_page(title: str, message: str, status: int) -> HTMLResponse:
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>", status)


def stylesheet(_: Request) -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"})


def _where_it_returns(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme == "http" and is_loopback(host):
        return "an app on your computer"
    if parts.scheme in ("http", "https"):
        return host
    return f"the app {parts.scheme}://{host}" if host else f"the app {parts.scheme}:"


def _credentials(email: str) -> str:
    return (
        '<label for="email">Email</label>\n'
        f'<input id="email" name="email" type="email" autocomplete="username" required value="{html.escape(email)}">\n'
        '<label for="password">Password</label>\n'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the password check refused, as the form shows it again."""

    error: str
    status: int
    headers: dict[str, str] | None = None


async def _check_password(db: Database, form: FormData) -> tuple[str, User | Refusal]:
    """The email as typed, and the user whose password it is, or why not: the same accounts and
    slow-down as `POST /auth/login`, and one message whether or not the email exists."""
    email = _field(form, "email")[:320]
    try:
        async with db.transaction() as session:
            outcome = await accounts.log_in(session, email=email, password=_field(form, "password"))
    except DatabaseUnavailable:
        return email, Refusal("The service is unavailable right now; try again in a few seconds.", 503)
    except DomainError:
        return email, Refusal(WRONG_CREDENTIALS, 401)
    if outcome.user is not None:
        return email, outcome.user
    if isinstance(outcome.refusal, TooManyAttempts):
        retry = {"Retry-After": str(outcome.refusal.retry_after_seconds)}
        return email, Refusal(outcome.refusal.message, 429, retry)
    return email, Refusal(WRONG_CREDENTIALS, 401)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


class Pages:
    def __init__(self, provider: Provider, jwt_secret: str, *, secure_cookies: bool) -> None:
        self.provider = provider
        self._csrf_key = derive_key(jwt_secret, "csrf")
        self._session_key = derive_key(jwt_secret, "connections-session")
        self._secure = secure_cookies

    # --- CSRF ------------------------------------------------------------------------------

    def _csrf_cookie(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF cookie, or a new one (True: it must be set)."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
            return current, False
        return secrets.token_urlsafe(32), True

    def _set_csrf(self, response: Response, value: str) -> None:
        response.set_cookie(
            CSRF_COOKIE, value, httponly=True, samesite="lax", secure=self._secure, path="/", max_age=3600
        )

    def _csrf_ok(self, request: Request, form: FormData, *bound: str) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        given = _field(form, "csrf")
        return bool(cookie and given) and same(given, mac(self._csrf_key, cookie or "", *bound))

    # --- authorize: log in and allow -------------------------------------------------------

    def _login_form(
        self,
        client: RegisteredClient,
        login: LoginRequest,
        sealed: str,
        csrf: str,
        *,
        email: str = "",
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        name = html.escape(client.display_name)
        where = html.escape(_where_it_returns(login.redirect_uri))
        origin = (
            f'<p class="note">Named by its metadata document at {html.escape(urlsplit(client.client_id).hostname or "")}.</p>'
            if client.from_document
            else '<p class="note">The app gave this name itself. Continue only if you started this from an app you trust.</p>'
        )
        problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = f"""<h1>Connect {name} to todo-mcp</h1>
<p><strong>{name}</strong> asks to read and change your tasks. Afterwards you return to <strong>{where}</strong>.</p>
{origin}{problem}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="request" value="{html.escape(sealed)}">
<input type="hidden" name="csrf" value="{html.escape(mac(self._csrf_key, csrf, sealed))}">
{_credentials(email)}
<div class="actions">
<button type="submit" name="action" value="deny" formnovalidate>Deny</button>
<button type="submit" name="action" value="allow" class="primary">Allow</button>
</div>
</form>
<p class="muted">You can disconnect it at any time under <a href="{CONNECTIONS_PATH}">Connected apps</a>.</p>"""
        return _page(f"Connect {client.display_name}", body, status, headers)

    async def _checked_request(self, sealed: str) -> tuple[LoginRequest, RegisteredClient] | HTMLResponse:
        login = self.provider.login_requests.open(sealed) if sealed else None
        if login is None:
            return _problem_page(
                "This link has expired",
                "This sign-in link has expired or is not valid. Go back to the app and connect again.",
                400,
            )
        client = await self.provider.get_client(login.client_id)
        if client is None:
            return _problem_page("Unknown app", "The app asking for access is no longer known here.", 400)
        try:
            client.validate_redirect_uri(AnyUrl(login.redirect_uri))
        except (InvalidRedirectUriError, ValidationError):
            return _problem_page("Unknown app", "The app's return address is no longer registered.", 400)
        return login, client

    async def login_page(self, request: Request) -> Response:
        sealed = request.query_params.get("request", "")
        checked = await self._checked_request(sealed)
        if isinstance(checked, Response):
            return checked
        login, client = checked
        csrf, is_new = self._csrf_cookie(request)
        response = self._login_form(client, login, sealed, csrf)
        if is_new:
            self._set_csrf(response, csrf)
        return response

    def _back_to_client(self, login: LoginRequest, **params: str | None) -> RedirectResponse:
        # RFC 9207: the issuer goes with every authorization response, success or error.
        location = construct_redirect_uri(
            login.redirect_uri, **params, state=login.state, iss=self.provider.issuer
        )
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})

    async def login_submit(self, request: Request) -> Response:
        form = await request.form()
        sealed = _field(form, "request")
        checked = await self._checked_request(sealed)
        if isinstance(checked, Response):
            return checked
        login, client = checked
        if not self._csrf_ok(request, form, sealed):
            log.warning("login form for client %s refused: CSRF token missing or wrong", client.client_id)
            return _problem_page(
                "Please try again",
                "This form could not be verified (it may have been sent from another site, or cookies are off). "
                "Go back to the app and connect again.",
                403,
            )
        if _field(form, "action") == "deny":
            log.info("user denied access to client %s", client.client_id)
            return self._back_to_client(
                login, error="access_denied", error_description="The user denied access."
            )
        email, user = await _check_password(self.provider.db, form)
        if isinstance(user, Refusal):
            csrf = request.cookies.get(CSRF_COOKIE, "")
            return self._login_form(
                client,
                login,
                sealed,
                csrf,
                email=email,
                error=user.error,
                status=user.status,
                headers=user.headers,
            )
        async with self.provider.db.transaction() as session:
            code = await grants.create_code(
                session,
                client_id=login.client_id,
                user_id=user.id,
                redirect_uri=login.redirect_uri,
                redirect_uri_explicit=login.redirect_uri_explicit,
                code_challenge=login.code_challenge,
                scopes=login.scopes,
                resource=login.resource,
                now=self.provider.clock(),
            )
        log.info("user %s allowed client %s", user.id, client.client_id)
        return self._back_to_client(login, code=code)

    # --- connected apps --------------------------------------------------------------------

    def _session_user(self, request: Request) -> str | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            claims = jwt.decode(
                cookie, self._session_key, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError:
            return None
        subject = claims.get("sub")
        return subject if isinstance(subject, str) else None

    def _connections_login(
        self,
        csrf: str,
        *,
        email: str = "",
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = f"""<h1>Connected apps</h1>
<p>Log in to see the apps that can reach your tasks, and disconnect any of them.</p>{problem}
<form method="post" action="{CONNECTIONS_PATH}/login">
<input type="hidden" name="csrf" value="{html.escape(mac(self._csrf_key, csrf, "connections-login"))}">
{_credentials(email)}
<div class="actions"><button type="submit" class="primary">Log in</button></div>
</form>"""
        return _page("Connected apps", body, status, headers)

    async def connections_page(self, request: Request) -> Response:
        csrf, is_new = self._csrf_cookie(request)
        user_id = self._session_user(request)
        if user_id is None:
            response: Response = self._connections_login(csrf)
        else:
            async with self.provider.db.transaction() as session:
                connections = await grants.list_connections(session, user_id, utcnow())
            token = html.escape(mac(self._csrf_key, csrf, "connections", user_id))
            items = "".join(
                f"""<li><div><strong>{html.escape((c.client_name or "An unnamed app")[:80])}</strong>
<div class="muted">Connected {c.created_at:%Y-%m-%d %H:%M} UTC, last used {c.last_used_at:%Y-%m-%d %H:%M} UTC</div></div>
<form method="post" action="{CONNECTIONS_PATH}/revoke"><input type="hidden" name="csrf" value="{token}">
<input type="hidden" name="connection" value="{c.id}"><button type="submit">Disconnect</button></form></li>"""
                for c in connections
            )
            listing = (
                f'<ul class="connections">{items}</ul>' if connections else "<p>No app is connected.</p>"
            )
            body = f"""<h1>Connected apps</h1>{listing}
<form method="post" action="{CONNECTIONS_PATH}/logout"><input type="hidden" name="csrf" value="{token}">
<div class="actions"><button type="submit">Log out</button></div></form>"""
            response = _page("Connected apps", body)
        if is_new:
            self._set_csrf(response, csrf)
        return response

    async def connections_login(self, request: Request) -> Response:
        form = await request.form()
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not self._csrf_ok(request, form, "connections-login"):
            return _problem_page("Please try again", "This form could not be verified; reload the page.", 403)
        email, user = await _check_password(self.provider.db, form)
        if isinstance(user, Refusal):
            return self._connections_login(
                csrf, email=email, error=user.error, status=user.status, headers=user.headers
            )
        now = int(time.time())
        session_token = jwt.encode(
            {"sub": user.id, "iat": now, "exp": now + SESSION_SECONDS},
            self._session_key,
            algorithm="HS256",
        )
        response = RedirectResponse(CONNECTIONS_PATH, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_token,
            httponly=True,
            samesite="strict",
            secure=self._secure,
            path=CONNECTIONS_PATH,
            max_age=SESSION_SECONDS,
        )
        return response

    async def connections_revoke(self, request: Request) -> Response:
        form = await request.form()
        user_id = self._session_user(request)
        if user_id is None:
            return RedirectResponse(CONNECTIONS_PATH, status_code=303)
        if not self._csrf_ok(request, form, "connections", user_id):
            return _problem_page("Please try again", "This form could not be verified; reload the page.", 403)
        try:
            grant_id = int(_field(form, "connection"))
            async with self.provider.db.transaction() as session:
                await grants.revoke_connection(session, user_id, grant_id, utcnow())
        except (ValueError, NotFound):
            return _problem_page("Not found", "That connection was not found.", 404)
        self.provider.active_grants.forget(grant_id)
        log.info("user %s disconnected grant %d", user_id, grant_id)
        return RedirectResponse(CONNECTIONS_PATH, status_code=303)

    async def connections_logout(self, request: Request) -> Response:
        form = await request.form()
        user_id = self._session_user(request)
        if user_id is not None and not self._csrf_ok(request, form, "connections", user_id):
            return _problem_page("Please try again", "This form could not be verified; reload the page.", 403)
        response = RedirectResponse(CONNECTIONS_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=CONNECTIONS_PATH)
        return response
