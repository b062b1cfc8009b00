"""TokenService: what it issues, what it accepts, and what it says when it refuses a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm

from tests.conftest import make_settings
from todo_mcp.services import tokens
from todo_mcp.services.errors import InvalidInput, KeysUnavailable, Unauthenticated
from todo_mcp.services.tokens import MAX_TTL, TokenService

SQLITE = "sqlite:///unused.db"
# 64 bytes: long enough for HS512, so PyJWT has nothing to warn about.
SECRET = "test-secret-" + "s" * 53
OTHER_SECRET = "other-secret-" + "o" * 51

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    algorithm: str
    private_key: PrivateKey
    public_pem: str


def _now() -> datetime:
    return datetime.now(UTC)


def _service(**overrides: Any) -> TokenService:
    return TokenService(make_settings(SQLITE, **overrides))


def _hs256(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _valid_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "ada", "iat": _now(), "exp": _now() + timedelta(minutes=5), **extra}


def _json_claims() -> dict[str, Any]:
    """Valid claims as plain JSON values, for tokens built by hand."""
    return {"sub": "ada", "exp": int((_now() + timedelta(minutes=5)).timestamp())}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWT built by hand, for tokens that PyJWT refuses to make."""
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


def _refusal(service: TokenService, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        service.verify(token)
    assert raised.value.code == 401
    return raised.value.message


def _pem(private_key: PrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _key_pair(algorithm: str) -> KeyPair:
    private_key: PrivateKey
    if algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
    return KeyPair(algorithm, private_key, _pem(private_key))


@pytest.fixture(scope="module")
def rsa_pair() -> KeyPair:
    return _key_pair("RS256")


@pytest.fixture
def hs256() -> TokenService:
    return _service(jwt_secret=SECRET)


# --- issue and verify with the shared secret ---------------------------------------------------


def test_issued_token_verifies_to_its_subject(hs256: TokenService) -> None:
    assert hs256.can_issue is True
    assert hs256.verify(hs256.issue("ada")).subject == "ada"
    assert hs256.verify(hs256.issue("auth0|Ädä 🧑‍💻")).subject == "auth0|Ädä 🧑‍💻"


@pytest.mark.anyio
async def test_verify_async_without_jwks_gives_the_same_subject(hs256: TokenService) -> None:
    assert (await hs256.verify_async(hs256.issue("ada"))).subject == "ada"


def test_issued_token_carries_subject_issued_at_and_expiry(hs256: TokenService) -> None:
    before = int(_now().timestamp())

    token = hs256.issue("ada", ttl=timedelta(minutes=10))

    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ada"
    assert before <= claims["iat"] <= before + 5
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), MAX_TTL + timedelta(seconds=1)])
def test_token_lifetime_outside_one_second_to_thirty_days_is_refused(
    hs256: TokenService, ttl: timedelta
) -> None:
    with pytest.raises(InvalidInput, match="lifetime must be between 1 second and 30 days"):
        hs256.issue("ada", ttl=ttl)


def test_token_lifetime_of_thirty_days_is_allowed(hs256: TokenService) -> None:
    assert hs256.verify(hs256.issue("ada", ttl=MAX_TTL)).subject == "ada"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_round_trip(algorithm: str) -> None:
    service = _service(jwt_secret=SECRET, jwt_algorithm=algorithm)

    token = service.issue("ada")

    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert service.verify(token).subject == "ada"


# --- refusals, each saying why -----------------------------------------------------------------


def test_expired_token_is_refused_as_expired(hs256: TokenService) -> None:
    token = _hs256(_valid_claims(iat=_now() - timedelta(hours=2), exp=_now() - timedelta(hours=1)))

    assert _refusal(hs256, token) == "The token has expired; get a new one."


def test_token_expired_within_the_leeway_is_accepted() -> None:
    token = _hs256(_valid_claims(exp=_now() - timedelta(seconds=10)))

    assert _service(jwt_secret=SECRET, jwt_leeway_seconds=60).verify(token).subject == "ada"
    assert "expired" in _refusal(_service(jwt_secret=SECRET, jwt_leeway_seconds=0), token)


def test_token_signed_with_another_secret_is_refused_as_a_bad_signature(hs256: TokenService) -> None:
    token = _hs256(_valid_claims(), secret=OTHER_SECRET)

    assert _refusal(hs256, token) == "The token's signature is invalid."


def test_token_with_alg_none_is_refused(hs256: TokenService) -> None:
    token = _compact({"alg": "none", "typ": "JWT"}, _json_claims(), sign=lambda _: b"")

    assert _refusal(hs256, token) == "The token is malformed or not valid for this server."


def test_token_of_another_hmac_algorithm_with_the_right_secret_is_refused(hs256: TokenService) -> None:
    token = _hs256(_valid_claims(), algorithm="HS512")

    assert _refusal(hs256, token) == "The token is malformed or not valid for this server."


@pytest.mark.parametrize("claim", ["exp", "sub"])
def test_token_without_a_required_claim_is_refused_naming_it(hs256: TokenService, claim: str) -> None:
    claims = _valid_claims()
    del claims[claim]

    assert _refusal(hs256, _hs256(claims)) == f"The token has no '{claim}' claim."


def test_token_with_an_empty_subject_is_refused(hs256: TokenService) -> None:
    assert _refusal(hs256, _hs256(_valid_claims(sub=""))) == "The token's subject must be a user id."


def test_token_with_a_non_string_subject_is_refused(hs256: TokenService) -> None:
    _refusal(hs256, _hs256(_valid_claims(sub=42)))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Bearer x.y.z", "🙂.🙂.🙂"])
def test_garbage_is_refused_as_malformed(hs256: TokenService, token: str) -> None:
    assert _refusal(hs256, token) == "The token is malformed or not valid for this server."


def test_server_without_a_key_refuses_every_token_and_cannot_issue() -> None:
    service = _service()

    assert service.can_issue is False
    assert _refusal(service, _hs256(_valid_claims())) == "This server has no key to verify tokens with."
    with pytest.raises(InvalidInput, match="JWT_SECRET"):
        service.issue("ada")


# --- issuer and audience ------------------------------------------------------------------------

ISSUER = "https://auth.example.com"
AUDIENCE = "todo-mcp"


def test_issuer_is_set_on_issued_tokens_and_checked() -> None:
    service = _service(jwt_secret=SECRET, jwt_issuer=ISSUER)

    token = service.issue("ada")

    assert jwt.decode(token, SECRET, algorithms=["HS256"])["iss"] == ISSUER
    assert service.verify(token).subject == "ada"
    assert "not valid" in _refusal(service, _hs256(_valid_claims(iss="https://evil.example.com")))
    assert _refusal(service, _hs256(_valid_claims())) == "The token has no 'iss' claim."


def test_audience_is_set_on_issued_tokens_and_checked() -> None:
    service = _service(jwt_secret=SECRET, jwt_audience=AUDIENCE)

    token = service.issue("ada")

    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)["aud"] == AUDIENCE
    assert service.verify(token).subject == "ada"
    assert service.verify(_hs256(_valid_claims(aud=[AUDIENCE, "other"]))).subject == "ada"
    assert "not valid" in _refusal(service, _hs256(_valid_claims(aud="another-service")))
    assert _refusal(service, _hs256(_valid_claims())) == "The token has no 'aud' claim."


def test_token_for_another_issuer_is_refused_even_with_the_right_audience() -> None:
    service = _service(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)

    assert service.verify(_hs256(_valid_claims(iss=ISSUER, aud=AUDIENCE))).subject == "ada"
    _refusal(service, _hs256(_valid_claims(iss="https://evil.example.com", aud=AUDIENCE)))


# --- public-key algorithms ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_token_signed_with_the_private_key_verifies_with_the_public_key(algorithm: str) -> None:
    pair = _key_pair(algorithm)
    service = _service(jwt_algorithm=algorithm, jwt_public_key=pair.public_pem)

    token = jwt.encode(_valid_claims(), pair.private_key, algorithm=algorithm)

    assert service.verify(token).subject == "ada"


def test_public_key_server_cannot_issue_tokens(rsa_pair: KeyPair) -> None:
    service = _service(jwt_algorithm="RS256", jwt_public_key=rsa_pair.public_pem)

    assert service.can_issue is False
    with pytest.raises(InvalidInput, match="HS256/HS384/HS512"):
        service.issue("ada")


def test_token_signed_with_another_private_key_is_refused(rsa_pair: KeyPair) -> None:
    service = _service(jwt_algorithm="RS256", jwt_public_key=rsa_pair.public_pem)
    stranger = _key_pair("RS256")

    token = jwt.encode(_valid_claims(), stranger.private_key, algorithm="RS256")

    assert _refusal(service, token) == "The token's signature is invalid."


def test_expired_rs256_token_is_refused_as_expired(rsa_pair: KeyPair) -> None:
    service = _service(jwt_algorithm="RS256", jwt_public_key=rsa_pair.public_pem)

    token = jwt.encode(
        _valid_claims(exp=_now() - timedelta(hours=1)), rsa_pair.private_key, algorithm="RS256"
    )

    assert _refusal(service, token) == "The token has expired; get a new one."


def test_hs256_token_keyed_with_the_public_key_is_refused(rsa_pair: KeyPair) -> None:
    # The classic key-confusion forgery: anyone has the public key, so an HMAC made with it
    # must never pass. Built by hand, since PyJWT itself refuses to make one.
    service = _service(jwt_algorithm="RS256", jwt_public_key=rsa_pair.public_pem)
    key = rsa_pair.public_pem.encode()

    token = _compact(
        {"alg": "HS256", "typ": "JWT"},
        _json_claims(),
        sign=lambda signing_input: hmac.new(key, signing_input, hashlib.sha256).digest(),
    )

    assert _refusal(service, token) == "The token is malformed or not valid for this server."


# --- keys from a JWKS document ------------------------------------------------------------------


@pytest.fixture
def jwks_server(rsa_pair: KeyPair) -> Iterator[str]:
    """A local HTTP server publishing rsa_pair's public key as "key-1"; yields the JWKS URL."""
    assert isinstance(rsa_pair.private_key, rsa.RSAPrivateKey)
    jwk = RSAAlgorithm.to_jwk(rsa_pair.private_key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.anyio
async def test_token_verifies_with_the_key_named_by_its_kid_in_the_jwks(
    jwks_server: str, rsa_pair: KeyPair
) -> None:
    service = _service(jwt_algorithm="RS256", jwt_jwks_url=jwks_server)

    token = jwt.encode(_valid_claims(), rsa_pair.private_key, algorithm="RS256", headers={"kid": "key-1"})

    assert (await service.verify_async(token)).subject == "ada"


@pytest.mark.anyio
async def test_token_with_a_kid_missing_from_the_jwks_is_refused(jwks_server: str, rsa_pair: KeyPair) -> None:
    service = _service(jwt_algorithm="RS256", jwt_jwks_url=jwks_server)

    token = jwt.encode(_valid_claims(), rsa_pair.private_key, algorithm="RS256", headers={"kid": "unknown"})

    with pytest.raises(Unauthenticated, match="signing key is not one this server trusts"):
        await service.verify_async(token)


@pytest.mark.anyio
async def test_jwks_key_does_not_accept_a_token_signed_by_another_key(jwks_server: str) -> None:
    service = _service(jwt_algorithm="RS256", jwt_jwks_url=jwks_server)
    stranger = _key_pair("RS256")

    token = jwt.encode(_valid_claims(), stranger.private_key, algorithm="RS256", headers={"kid": "key-1"})

    with pytest.raises(Unauthenticated, match="signature is invalid"):
        await service.verify_async(token)


@pytest.mark.anyio
async def test_unreachable_jwks_is_keys_unavailable_not_unauthenticated(rsa_pair: KeyPair) -> None:
    # Port 1 on this machine: nothing listens there, so the fetch is refused at once.
    service = _service(jwt_algorithm="RS256", jwt_jwks_url="http://127.0.0.1:1/jwks.json")

    token = jwt.encode(_valid_claims(), rsa_pair.private_key, algorithm="RS256", headers={"kid": "key-1"})

    with pytest.raises(KeysUnavailable) as raised:
        await service.verify_async(token)
    assert raised.value.code == 503


# --- remembered tokens --------------------------------------------------------------------------


def test_a_remembered_token_is_still_refused_once_it_expires() -> None:
    service = _service(jwt_secret=SECRET, jwt_leeway_seconds=0)
    expires = int(time.time()) + 1
    token = _hs256({"sub": "ada", "exp": expires})
    assert service.verify(token).subject == "ada"
    assert service.verify(token).subject == "ada"

    time.sleep(max(0.0, expires - time.time()) + 0.05)

    with pytest.raises(Unauthenticated, match="expired"):
        service.verify(token)


def test_a_remembered_token_has_its_signature_checked_again_after_the_cache_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _service(jwt_secret=SECRET)
    token = _hs256(_valid_claims())
    checks: list[str] = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        checks.append("decode")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    service.verify(token)
    service.verify(token)
    assert len(checks) == 1

    later = time.time() + tokens.VERIFIED_CACHE_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    service.verify(token)
    assert len(checks) == 2


def test_refused_tokens_are_not_remembered_and_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    service = _service(jwt_secret=SECRET)
    forged = _hs256(_valid_claims(), secret=OTHER_SECRET)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="signature"):
            service.verify(forged)
    for number in range(10):
        assert service.verify(_hs256(_valid_claims(sub=f"user-{number}"))).subject == f"user-{number}"
        assert len(service._verified) <= 3
