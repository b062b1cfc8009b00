"""The OAuth routes of the MCP app: discovery metadata, the SDK's handlers around our provider,
the endpoints where we differ from the SDK, and the pages.

Where we differ (docs/OAUTH.md): the metadata adds `none`, metadata documents and `iss`; the
issuer has no trailing slash; protected resource metadata is also at the root path; registration
is rate-limited per address and refuses unsafe redirect URIs; authorize says why a metadata
document is refused and adds `iss` to error redirects; the token endpoint refuses a `resource`
that is not ours; revocation works for public clients.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import unquote, urlencode

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import construct_redirect_uri
from mcp.server.auth.routes import build_metadata
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl, ConfigDict, TypeAdapter
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message

from todo_mcp.config import Settings
from todo_mcp.oauth.pages import CONNECTIONS_PATH, Pages, stylesheet
from todo_mcp.oauth.provider import LOGIN_PATH, Provider
from todo_mcp.services.errors import TooManyCalls
from todo_mcp.services.oauth.client_documents import ClientDocumentRefused, is_document_client_id
from todo_mcp.services.oauth.clients import DEFAULT_SCOPES, TASKS_SCOPE, VALID_SCOPES
from todo_mcp.services.rate_limits import limiter_for

log = logging.getLogger(__name__)

# Issuers compare as exact strings (RFC 8414, RFC 9207): no trailing slash added to an origin.
_URL = TypeAdapter(AnyHttpUrl, config=ConfigDict(url_preserve_empty_path=True))
AUTH_METHODS = ["client_secret_post", "client_secret_basic", "none"]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_BYTES = 64 * 1024


def protected_resource_metadata_url(settings: Settings) -> str:
    return f"{settings.public_url}/.well-known/oauth-protected-resource/mcp"


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    # Browser-based clients (the MCP Inspector) call these from their own origin.
    return CORSMiddleware(
        app,
        allow_origins=["*"],
        allow_methods=methods,
        allow_headers=["Authorization", "Content-Type", "MCP-Protocol-Version"],
    )


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


async def _form_too_big(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        return True
    return len(await request.body()) > MAX_FORM_BYTES


async def with_client_id(request: Request) -> Request:
    """The request, with `client_id` in its form when the client sent it only in its Basic
    credentials (RFC 6749 2.3.1 allows that; the TypeScript MCP SDK does it), since the SDK's
    handlers read the client id from the form alone."""
    form = await request.form()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if form.get("client_id") or scheme.lower() != "basic":
        return request
    try:
        client_id = unquote(base64.b64decode(credentials.strip(), validate=True).decode().split(":", 1)[0])
    except (ValueError, UnicodeDecodeError):
        return request  # the authenticator says what is wrong with it
    body = urlencode(
        [*((k, v) for k, v in form.multi_items() if isinstance(v, str)), ("client_id", client_id)]
    ).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k not in (b"content-length", b"content-type")]
    headers += [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
    ]

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)


def oauth_routes(settings: Settings, provider: Provider) -> list[BaseRoute]:
    assert settings.public_url is not None
    assert settings.mcp_resource_url is not None
    assert settings.jwt_secret is not None
    issuer = _URL.validate_python(settings.public_url)
    registration = ClientRegistrationOptions(
        enabled=True, valid_scopes=VALID_SCOPES, default_scopes=DEFAULT_SCOPES
    )
    metadata = build_metadata(issuer, None, registration, RevocationOptions(enabled=True)).model_copy(
        update={
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }
    )
    resource_metadata = ProtectedResourceMetadata(
        resource=_URL.validate_python(settings.mcp_resource_url),
        authorization_servers=[issuer],
        scopes_supported=[TASKS_SCOPE],
        resource_name="todo-mcp",
    )
    authenticator = ClientAuthenticator(provider)
    authorization = AuthorizationHandler(provider)
    tokens = TokenHandler(provider, authenticator)
    registering = RegistrationHandler(provider, options=registration)
    limiter = limiter_for(
        settings.oauth_registrations_per_minute / 60,
        settings.oauth_registrations_per_minute,
        settings.redis_url,
        prefix="todo_mcp:register:",
    )
    pages = Pages(
        provider,
        settings.jwt_secret.get_secret_value(),
        secure_cookies=settings.public_url.startswith("https://"),
    )
    own_login = f"{settings.public_url}{LOGIN_PATH}?"

    async def authorize(request: Request) -> Response:
        if request.method == "POST" and await _form_too_big(request):
            return _oauth_error(413, "invalid_request", "The request is too large.")
        params: Any = request.query_params if request.method == "GET" else await request.form()
        client_id = params.get("client_id")
        if isinstance(client_id, str) and is_document_client_id(client_id):
            try:
                await provider.client_or_refusal(client_id)
            except ClientDocumentRefused as refusal:
                log.warning(
                    "authorize: client metadata document %s refused: %s", client_id[:200], refusal.message
                )
                return _oauth_error(400, "invalid_client", refusal.message)
        response: Response = await authorization.handle(request)
        location = response.headers.get("location")
        if response.status_code == 302 and location and not location.startswith(own_login):
            # An error sent back to the client: RFC 9207 wants the issuer there too.
            response.headers["location"] = construct_redirect_uri(location, iss=settings.public_url)
        return response

    async def token(request: Request) -> Response:
        if await _form_too_big(request):
            return _oauth_error(413, "invalid_request", "The request is too large.")
        request = await with_client_id(request)
        form = await request.form()
        resource = form.get("resource")
        if isinstance(resource, str) and resource.rstrip("/") != settings.mcp_resource_url:
            return _oauth_error(
                400, "invalid_target", f"This server issues tokens only for {settings.mcp_resource_url}."
            )
        answer: Response = await tokens.handle(request)
        if answer.status_code >= 400:
            # Why a client could not get tokens, for the operator (never the code or token itself).
            try:
                error = json.loads(bytes(answer.body)).get("error", "unknown")
            except ValueError:
                error = "unknown"
            log.info(
                "token request refused: client %s, grant %s, %s",
                str(form.get("client_id", "?"))[:200],
                str(form.get("grant_type", "?"))[:40],
                error,
            )
        return answer

    async def register(request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        if limiter is not None:
            try:
                await limiter.admit(address)
            except TooManyCalls as err:
                log.warning("client registration from %s refused: over the limit", address)
                return _oauth_error(
                    429,
                    "invalid_client_metadata",
                    "Too many registrations from this address; "
                    f"try again in {err.retry_after_seconds} seconds.",
                    {"Retry-After": str(err.retry_after_seconds)},
                )
        if await _form_too_big(request):
            return _oauth_error(413, "invalid_client_metadata", "The registration is too large.")
        return await registering.handle(request)

    async def revoke(request: Request) -> Response:
        """RFC 7009 for confidential and public clients alike: an unknown token is a 200."""
        if await _form_too_big(request):
            return _oauth_error(413, "invalid_request", "The request is too large.")
        request = await with_client_id(request)
        try:
            client = await authenticator.authenticate_request(request)
        except AuthenticationError as err:
            return _oauth_error(401, "invalid_client", err.message)
        form = await request.form()
        value = form.get("token")
        if not isinstance(value, str) or not value:
            return _oauth_error(400, "invalid_request", "Send the token to revoke in the 'token' field.")
        access = await provider.load_access_token(value)
        grant_id = (
            access.grant_id
            if access is not None and access.client_id == client.client_id
            else await provider.find_refresh_for_revocation(client.client_id, value)
        )
        if grant_id is not None:
            await provider.revoke_grant(grant_id, client.client_id)
        return Response(status_code=200, headers=NO_STORE)

    resource_metadata_handler = _cors(
        request_response(ProtectedResourceMetadataHandler(resource_metadata).handle), ["GET", "OPTIONS"]
    )
    return [
        Route(
            "/.well-known/oauth-authorization-server",
            _cors(request_response(MetadataHandler(metadata).handle), ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        ),
        Route(
            "/.well-known/oauth-protected-resource/mcp", resource_metadata_handler, methods=["GET", "OPTIONS"]
        ),
        Route("/.well-known/oauth-protected-resource", resource_metadata_handler, methods=["GET", "OPTIONS"]),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", _cors(request_response(token), ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        Route(
            "/register", _cors(request_response(register), ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]
        ),
        Route("/revoke", _cors(request_response(revoke), ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        Route(LOGIN_PATH, pages.login_page, methods=["GET"]),
        Route(LOGIN_PATH, _limited(pages.login_submit), methods=["POST"]),
        Route("/oauth/page.css", stylesheet, methods=["GET"]),
        Route(CONNECTIONS_PATH, pages.connections_page, methods=["GET"]),
        Route(f"{CONNECTIONS_PATH}/login", _limited(pages.connections_login), methods=["POST"]),
        Route(f"{CONNECTIONS_PATH}/revoke", _limited(pages.connections_revoke), methods=["POST"]),
        Route(f"{CONNECTIONS_PATH}/logout", _limited(pages.connections_logout), methods=["POST"]),
    ]


def _limited(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        if await _form_too_big(request):
            return Response("The form is too large.", status_code=413)
        response: Response = await handler(request)
        return response

    return endpoint
