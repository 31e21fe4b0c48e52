"""Who may reach the serving layer's data: the store endpoint's users and the API's token.

The store endpoint takes what a ClickHouse server takes, so ClickHouse clients work unchanged:
a user and a password as `X-ClickHouse-User` / `X-ClickHouse-Key` headers, or HTTP basic. The
`user`/`password` URL parameters a ClickHouse server would also take are refused: a secret in a
URL ends up in proxies' and browsers' logs. The JSON API takes `Authorization: Bearer <token>`.
Secrets are compared in constant time; a role whose password is empty cannot sign in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from lambdapipe.serving.guard import Role
from lambdapipe.settings import ServingSettings

STORE_CHALLENGE = 'Basic realm="ClickHouse", charset="UTF-8"'
API_CHALLENGE = 'Bearer realm="lambdapipe"'


class Unauthenticated(Exception):
    """No credentials, wrong ones, or credentials where they must not be (HTTP 401)."""


@dataclass(frozen=True)
class StoreUser:
    """A user of the store endpoint and the role it signs in with."""

    name: str
    role: Role
    password: SecretStr = field(repr=False)


def same_secret(presented: str, expected: SecretStr) -> bool:
    """True when `presented` equals a non-empty `expected`, compared in constant time."""
    secret = expected.get_secret_value()
    return bool(secret) and hmac.compare_digest(presented.encode(), secret.encode())


@dataclass(frozen=True)
class Access:
    """The store endpoint's users and the API token, from the serving settings."""

    users: tuple[StoreUser, ...]
    api_token: SecretStr = field(repr=False)

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> Access:
        return cls(
            users=(
                StoreUser(serving.writer_user, "writer", serving.writer_password),
                StoreUser(serving.reader_user, "reader", serving.reader_password),
            ),
            api_token=serving.api_token,
        )

    def store_user(self, headers: Mapping[str, str], query: Mapping[str, str]) -> StoreUser:
        """The user a store request signs in as; raise `Unauthenticated` otherwise."""
        if "password" in query or "user" in query:
            raise Unauthenticated(
                "credentials in the URL are refused: send them as X-ClickHouse-User and "
                "X-ClickHouse-Key headers or HTTP basic"
            )
        name, password = headers.get("x-clickhouse-user"), headers.get("x-clickhouse-key")
        if name is None:
            name, password = _basic(headers.get("authorization", ""))
        if not name:
            raise Unauthenticated(
                "authentication required: a user and password as X-ClickHouse-User and "
                "X-ClickHouse-Key headers or HTTP basic"
            )
        for user in self.users:
            if user.name == name and same_secret(password or "", user.password):
                return user
        raise Unauthenticated("wrong user or password")

    def api_caller(self, authorization: str | None) -> None:
        """Pass when `authorization` is `Bearer <the API token>`; raise `Unauthenticated`."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authentication required: Authorization: Bearer <API token>")
        if not same_secret(token.strip(), self.api_token):
            raise Unauthenticated("wrong API token")


def api_headers(serving: ServingSettings) -> dict[str, str]:
    """The headers an internal client of the JSON API sends (the bearer token)."""
    return {"Authorization": f"Bearer {serving.api_token.get_secret_value()}"}


def _basic(authorization: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    name, _, password = decoded.partition(":")
    return name, password
