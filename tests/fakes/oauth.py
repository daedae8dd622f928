"""The OAuth side of the loopback Drive: token endpoint grants and test credential files.

Service-account assertions are RS256 JWTs checked against the public keys the test registered; refresh
tokens and authorization codes are checked against the values the test handed out. Keys are generated per
test run with `cryptography`: no key is ever committed.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"   # google-auth always puts this in `aud`


class GrantError(Exception):
    """The token endpoint refuses a grant: answered 400 with {"error": code}."""

    def __init__(self, code: str, description: str = ""):
        super().__init__(code)
        self.code = code
        self.description = description


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TokenGrant:
    """What the token endpoint saw for one issued access token."""

    grant_type: str
    client: str           # service-account email or OAuth client id
    subject: str = ""     # the impersonated user (domain-wide delegation)
    scope: str = ""


@dataclass
class OAuthState:
    token_uri: str = ""
    keys: dict = field(default_factory=dict)              # client_email -> RSA public key
    refresh_tokens: dict = field(default_factory=dict)    # refresh token -> (client_id, client_secret)
    codes: dict = field(default_factory=dict)             # auth code -> (client_id, scope)
    access: dict = field(default_factory=dict)            # access token -> TokenGrant
    grants: list = field(default_factory=list)            # every TokenGrant issued, in order
    issued: list = field(default_factory=list)            # every access token handed out
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service_account(self, email: str = "backupd@test-project.iam.gserviceaccount.com",
                        key: rsa.RSAPrivateKey | None = None) -> dict:
        """A service-account key file (as a dict) whose token_uri is this server; a fresh key unless given."""
        key = key or new_key()
        self.keys[email] = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "test-project",
                "private_key_id": secrets.token_hex(20), "private_key": pem, "client_email": email,
                "client_id": "1" + secrets.token_hex(10), "token_uri": self.token_uri}

    def authorized_user(self, client_id: str = "test-client.apps.example") -> dict:
        """A fresh authorized-user file (as a dict): client id, client secret, refresh token."""
        client_secret = "GOCSPX-" + secrets.token_urlsafe(18)
        refresh = "1//" + secrets.token_urlsafe(40)
        self.refresh_tokens[refresh] = (client_id, client_secret)
        return {"type": "authorized_user", "client_id": client_id, "client_secret": client_secret,
                "refresh_token": refresh, "token_uri": self.token_uri}

    def client_secrets(self, auth_uri: str, client_id: str = "login-client.apps.example") -> dict:
        """An installed-app client secrets file (as a dict) for the drive-login flow."""
        client_secret = "GOCSPX-" + secrets.token_urlsafe(18)
        self.refresh_tokens[("client", client_id)] = (client_id, client_secret)
        return {"installed": {"client_id": client_id, "client_secret": client_secret,
                              "auth_uri": auth_uri, "token_uri": self.token_uri,
                              "redirect_uris": ["http://localhost"]}}

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def invalidate_access_tokens(self) -> None:
        with self.lock:
            self.access.clear()

    def grant(self, form: dict) -> dict:
        """Answer one token request (form fields already decoded) or raise GrantError."""
        kind = form.get("grant_type", "")
        handlers = {JWT_BEARER: self._jwt_bearer, "refresh_token": self._refresh,
                    "authorization_code": self._code}
        if kind not in handlers:
            raise GrantError("unsupported_grant_type")
        issued = handlers[kind](form)
        token = "ya29.test-" + secrets.token_urlsafe(32)
        with self.lock:
            self.access[token] = issued
            self.grants.append(issued)
            self.issued.append(token)
        answer = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if kind == "authorization_code":
            answer["refresh_token"] = self._new_refresh(issued.client)
            answer["scope"] = issued.scope
        return answer

    def _jwt_bearer(self, form: dict) -> TokenGrant:
        try:
            header_b64, payload_b64, sig_b64 = form["assertion"].split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
        except (KeyError, ValueError):
            raise GrantError("invalid_request", "malformed assertion") from None
        key = self.keys.get(claims.get("iss"))
        if header.get("alg") != "RS256" or key is None:
            raise GrantError("invalid_client", "unknown issuer")
        try:
            key.verify(_b64decode(sig_b64), f"{header_b64}.{payload_b64}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise GrantError("invalid_grant", "bad signature") from None
        if claims.get("aud") not in (self.token_uri, GOOGLE_AUDIENCE) or claims.get("exp", 0) < time.time():
            raise GrantError("invalid_grant", "wrong audience or expired assertion")
        return TokenGrant(JWT_BEARER, claims["iss"], claims.get("sub", ""), claims.get("scope", ""))

    def _refresh(self, form: dict) -> TokenGrant:
        client = self.refresh_tokens.get(form.get("refresh_token"))
        if client is None:
            raise GrantError("invalid_grant", "Token has been expired or revoked.")
        if client != (form.get("client_id"), form.get("client_secret")):
            raise GrantError("invalid_client", "The OAuth client was not found.")
        return TokenGrant("refresh_token", client[0], scope=form.get("scope", ""))

    def _code(self, form: dict) -> TokenGrant:
        client_id, scope = self.codes.pop(form.get("code"), (None, ""))
        if client_id is None or client_id != form.get("client_id"):
            raise GrantError("invalid_grant", "unknown authorization code")
        if self.refresh_tokens.get(("client", client_id), (None, None))[1] != form.get("client_secret"):
            raise GrantError("invalid_client")
        return TokenGrant("authorization_code", client_id, scope=scope)

    def _new_refresh(self, client_id: str) -> str:
        refresh = "1//" + secrets.token_urlsafe(40)
        self.refresh_tokens[refresh] = self.refresh_tokens[("client", client_id)]
        return refresh

    def authorize(self, client_id: str, scope: str) -> str:
        """Issue an authorization code (the consent screen said yes)."""
        code = "4/" + secrets.token_urlsafe(24)
        self.codes[code] = (client_id, scope)
        return code

    def check(self, authorization: str | None) -> TokenGrant | None:
        """The grant behind an `Authorization: Bearer ...` header, or None when unknown/expired."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self.lock:
            return self.access.get(authorization[len("Bearer "):])
