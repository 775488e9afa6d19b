"""The store-server's users: who a request says it is, and whether that holds.

A request presents a user and password as ClickHouse's HTTP interface
accepts them (what clickhouse-connect sends for ``http://user:password@host``
is the first): HTTP basic auth, the ``X-ClickHouse-User`` /
``X-ClickHouse-Key`` headers, or the ``user`` / ``password`` URL parameters.
Passwords are compared in constant time, against every user.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Credential", "find_user", "is_loopback", "presented"]


@dataclass(frozen=True, slots=True)
class Credential:
    """A user the server accepts.

    Attributes:
        user: the user name (``http://USER:password@host``).
        password: the password (the token).
        read_only: reads only (``SELECT``, ``SHOW`` …), for report and dashboard users.
    """

    user: str
    password: str = ""
    read_only: bool = False

    def __repr__(self) -> str:
        return f"Credential(user={self.user!r}, password='***', read_only={self.read_only})"


class _Headers(Protocol):
    def header(self, name: str, default: str = "") -> str: ...


def presented(head: _Headers, args: Mapping[str, str]) -> tuple[str, str]:
    """The user and password a request presents (empty strings when none)."""
    user, password = args.get("user", ""), args.get("password", "")
    if head.header("x-clickhouse-user"):
        user, password = head.header("x-clickhouse-user"), head.header("x-clickhouse-key")
    auth = head.header("authorization")
    if auth[:6].lower() == "basic ":
        try:
            pair = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
        user, _, password = pair.partition(":")
    return user, password


def find_user(users: Sequence[Credential], user: str, password: str) -> Credential | None:
    """The credential matching ``user`` and ``password``, compared with every one."""
    found = None
    for cred in users:  # no early exit: no timing hint of which names exist
        same_user = hmac.compare_digest(cred.user.encode(), user.encode())
        if hmac.compare_digest(cred.password.encode(), password.encode()) and same_user:
            found = cred
    return found


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )
