"""Shared by the seeder and the schemathesis hooks of scripts/api-fuzz.sh.

Owns the HTTP calls to the hub made outside generated test cases, the
OpenAPI document lookups, and the fuzz identities: the accounts whose
tokens the generated requests carry.

Why identities need care: the API lets a caller revoke tokens (logout,
own password change, and for administrators `PATCH /users/{id}` with
`password` or `disabled`), and the fuzzer learns real user ids from
responses (`/auth/me`, `/users`): its stateful phase does chain
`GET /auth/me` into `PATCH /users/{that id} {"disabled": true}`. With
one fixed token everything after that would be 401. Instead of
excluding those operations, every one of them is fuzzed and the
identities recover:

* a pool of fleet administrators (`admin` plus two keepers) carries the
  token of every secured operation. A 401 to a request that carried the
  current token drops it; the next request logs in as the first pool
  member that still can, and that token puts the others back (enabled,
  known password);
* a separate non-administrator "session" user carries the token of the
  operations that end the caller's own session (logout, own password
  change), so fuzzing them never touches the administrators' tokens.

All three administrators would have to be disabled or re-keyed between
two logins for the run to lock itself out; the login every 60 s (and
after every 401) makes that unlikely, and it fails loudly if it happens.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

TIMEOUT_S = 30
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


class FuzzSetupError(RuntimeError):
    """The hub did not answer a set-up call as expected."""


def call(base: str, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """One request; returns the status and the JSON body (or the text)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, base + path, headers=headers, json=body, timeout=TIMEOUT_S)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def fetch_doc(base: str) -> dict:
    status, doc = call(base, "GET", "/api/v1/openapi.json")
    if status != 200 or not isinstance(doc, dict):
        raise FuzzSetupError(f"GET /api/v1/openapi.json answered {status}")
    return doc


def has_operation(doc: dict, method: str, path: str) -> bool:
    return method.lower() in doc.get("paths", {}).get(path, {})


def operations(doc: dict):
    """Yields (METHOD, path, operation object) for every documented operation."""
    for path, item in doc.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield method.upper(), path, op


def is_secured(doc: dict, op: dict) -> bool:
    """Whether the operation needs credentials (its own or the document's security)."""
    reqs = op.get("security", doc.get("security", []))
    return any(bool(r) for r in reqs)


def ends_own_session(path: str) -> bool:
    """Operations that revoke or re-key the caller's own credentials."""
    return path.endswith("/auth/logout") or path.endswith("/me/password")


def login(base: str, username: str, password: str) -> str | None:
    status, body = call(base, "POST", "/api/v1/auth/login", body={"username": username, "password": password})
    if status == 200 and isinstance(body, dict) and isinstance(body.get("token"), str):
        return body["token"]
    if status == 401:
        return None
    raise FuzzSetupError(f"login as {username}: {status} {body}")


@dataclass
class Account:
    username: str
    password: str
    id: str

    @staticmethod
    def of(d: dict) -> "Account":
        return Account(d["username"], d["password"], d["id"])


@dataclass
class Identities:
    """The fuzz accounts, as written by seed.py (a JSON file, mode 0600),
    and the tokens currently handed out for them.

    A token is reused until a request carrying it is answered 401 (see
    `note_unauthorized`) or it is older than `refresh_s`; then the next
    request logs in again. The periodic login also restores the other
    accounts, so that ones the fuzzer disabled without touching the
    current token are back before the current one is lost too."""

    base: str
    admins: list[Account]
    session: Account
    stats_path: str | None = None
    refresh_s: float = 60.0
    admin_logins: int = 0
    session_logins: int = 0
    restores: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _admin: tuple[str, float] | None = None
    _session: str | None = None

    @staticmethod
    def load(path: str, stats_path: str | None = None) -> "Identities":
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return Identities(
            base=d["base"],
            admins=[Account.of(a) for a in d["admins"]],
            session=Account.of(d["session"]),
            stats_path=stats_path,
        )

    def save(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "base": self.base,
                    "admins": [a.__dict__ for a in self.admins],
                    "session": self.session.__dict__,
                },
                f,
                indent=1,
            )

    def _write_stats(self) -> None:
        if self.stats_path:
            with open(self.stats_path, "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "admin_logins": self.admin_logins,
                        "session_logins": self.session_logins,
                        "restores": self.restores,
                    },
                    f,
                )

    def _restore(self, token: str, account: Account) -> bool:
        """Enables the account and sets its known password again."""
        status, _ = call(
            self.base,
            "PATCH",
            f"/api/v1/users/{account.id}",
            token,
            {"disabled": False, "password": account.password},
        )
        if status == 200:
            self.restores += 1
            return True
        return False

    def note_unauthorized(self, token: str) -> None:
        """A request with `token` was answered 401: never hand it out again."""
        with self._lock:
            if self._admin is not None and self._admin[0] == token:
                self._admin = None
            if self._session == token:
                self._session = None

    def admin_token(self) -> str:
        with self._lock:
            if self._admin is not None and time.monotonic() - self._admin[1] < self.refresh_s:
                return self._admin[0]
            return self._fresh_admin_token()

    def _fresh_admin_token(self) -> str:
        """Logs in as the first pool administrator that can, then restores
        every other fuzz account with that token."""
        self.admin_logins += 1
        try:
            for i, acc in enumerate(self.admins):
                token = login(self.base, acc.username, acc.password)
                if token is None:
                    continue
                for other in self.admins[:i] + self.admins[i + 1 :] + [self.session]:
                    self._restore(token, other)
                # Restoring the session user revoked its token.
                self._session = None
                self._admin = (token, time.monotonic())
                return token
            raise FuzzSetupError(
                "no fuzz administrator can log in any more: the generated requests disabled "
                "or re-keyed all of " + ", ".join(a.username for a in self.admins)
            )
        finally:
            self._write_stats()

    def session_token(self) -> str:
        """The session user's token, logging in again (and restoring the
        account if the fuzzer disabled it or reset its password) when the
        last one was revoked."""
        with self._lock:
            if self._session is not None:
                return self._session
            self.session_logins += 1
            self._write_stats()
            token = login(self.base, self.session.username, self.session.password)
            if token is None:
                if not self._restore(self.admin_token(), self.session):
                    self._admin = None
                    self._restore(self.admin_token(), self.session)
                self._write_stats()
                token = login(self.base, self.session.username, self.session.password)
            if token is None:
                raise FuzzSetupError(f"{self.session.username} cannot log in even after a reset")
            self._session = token
            return token
