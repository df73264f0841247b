"""Keep a test process on this machine, and record the CreateTrainingJob requests it sends.

``install(guard_log, capture_file)`` makes this process (and, through sitecustomize.py, every
Python child of a test) refuse to resolve or connect to anything but loopback; each attempt is
appended to ``guard_log``, which the tests then require to be empty. So an SDK that phones home
(telemetry included) fails the test even if the attempt itself is swallowed by the SDK.

With a ``capture_file``, every CreateTrainingJob that botocore really sent (not the ones the
launcher holds back) is also appended to it as one JSON line (and every
CreateHyperParameterTuningJob to ``capture_file + ".tuning"``). Nothing is answered here: every
call goes to the plain moto server, so what moto lacks (IAM SimulatePrincipalPolicy) the launcher
has to cope with, as it must against any S3-compatible endpoint.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

# Requests recorded as sent, each operation to capture_file + its suffix.
CAPTURED = {"CreateTrainingJob": "", "CreateHyperParameterTuningJob": ".tuning"}
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", None}


def is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES or host == socket.gethostname():
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install(guard_log: str, capture_file: str | None = None) -> None:
    _guard_sockets(guard_log)
    if capture_file is not None:
        try:
            import botocore.client  # noqa: F401
        except ImportError:  # a child without botocore (it cannot call AWS anyway)
            return
        patch_botocore(capture_file)


def _record(guard_log: str, what: str) -> None:
    with open(guard_log, "a", encoding="utf-8") as log:
        log.write(f"pid {os.getpid()}: {what}\n")


def _guard_sockets(guard_log: str):
    """Patch name lookups and connects; returns the function that puts the real ones back."""
    real_getaddrinfo, real_connect, real_connect_ex = (
        socket.getaddrinfo,
        socket.socket.connect,
        socket.socket.connect_ex,
    )

    def getaddrinfo(host, port, *args, **kwargs):
        if not is_local(host):
            _record(guard_log, f"resolve {host}:{port}")
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {host} is not on this machine")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            _record(guard_log, f"connect {address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"test guard: {address[0]} is not on this machine")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex

    def restore():
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex

    return restore


@contextmanager
def guarded(guard_log: str) -> Iterator[None]:
    """The same guard for a block of the test process itself (attempts go to the same log)."""
    restore = _guard_sockets(guard_log)
    try:
        yield
    finally:
        restore()


def patch_botocore(capture_file: str | None):
    """Wrap BaseClient._make_api_call to record CreateTrainingJob; returns the function that undoes it."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def make_api_call(self, operation_name, api_params):
        if operation_name not in CAPTURED or not capture_file:
            return real(self, operation_name, api_params)
        sent = copy.deepcopy(api_params)
        answer = real(self, operation_name, api_params)  # a held-back request raises here: not recorded
        with open(capture_file + CAPTURED[operation_name], "a", encoding="utf-8") as out:
            out.write(json.dumps(sent, default=str) + "\n")
        return answer

    BaseClient._make_api_call = make_api_call
    return lambda: setattr(BaseClient, "_make_api_call", real)
