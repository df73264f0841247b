"""Fixtures for tests that need a Unity build: the simulated player, packaged fresh for the session.

    def test_something(sim_executable, unity_env_factory):
        env = unity_env_factory(additional_args=["--agents", "4"])   # closed after the test

- ``sim_build_zip``: ``3DBall.zip`` written by ``unity_sim.package_build`` into a session folder.
- ``sim_build_dir``: that zip extracted with permission bits restored (the launcher is executable).
- ``sim_executable``: ``<dir>/3DBall``, what a user passes as ``file_name`` / ``env_file``.
- ``unity_env_factory``: opens ``UnityEnvironment`` on free ports and, after the test, closes every
  environment it opened and checks each player process is gone.

Both give the build ``--agents 1`` unless ``additional_args`` names ``--agents``: most tests drive
one agent (the gym wrapper refuses more), while the build's own default is 12 like Unity's scene.

Players run under this interpreter (``UNITY_SIM_PYTHON`` is set to ``sys.executable`` for the
session), so they share its grpcio / protobuf / mlagents-envs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import template_runtime.fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split

import pytest
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import UnityEnvironmentException

from template_runtime import build as unity_build
from unity_sim.package_build import package_build

__all__ = [
    "SIM_BUILD_NAME",
    "free_base_port",
    "one_agent_unless_given",
    "open_sim_env",
    "process_is_gone",
    "sim_build_dir",
    "sim_build_zip",
    "sim_executable",
    "sim_python",
    "unity_env_factory",
    "wait_until_gone",
]

SIM_BUILD_NAME = "3DBall"
HANDSHAKE_TIMEOUT = 30
"""Seconds UnityEnvironment waits for the player (it answers in about a second)."""


@pytest.fixture(scope="session")
def sim_python() -> Iterator[str]:
    """Make launched players use this interpreter (and its packages) for the whole session."""
    previous = os.environ.get("UNITY_SIM_PYTHON")
    os.environ["UNITY_SIM_PYTHON"] = sys.executable
    yield sys.executable
    if previous is None:
        os.environ.pop("UNITY_SIM_PYTHON", None)
    else:
        os.environ["UNITY_SIM_PYTHON"] = previous


@pytest.fixture(scope="session")
def sim_build_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly packaged simulated build, so tests always run the current player code."""
    return package_build(SIM_BUILD_NAME, tmp_path_factory.mktemp("sim_build_zip"))


@pytest.fixture(scope="session")
def sim_build_dir(sim_build_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build extracted like a user's build would be, execute bits included."""
    folder = tmp_path_factory.mktemp("sim_build")
    unity_build.extract_zip(sim_build_zip, folder)  # the trainer's own unzip: permission bits restored
    return folder


@pytest.fixture(scope="session")
def sim_executable(sim_build_dir: Path, sim_python: str) -> str:
    """Path of the build's executable without the .x86_64 suffix, as UnityEnvironment accepts it."""
    return str(sim_build_dir / SIM_BUILD_NAME)


@pytest.fixture
def unity_env_factory(sim_executable: str) -> Iterator[Callable[..., UnityEnvironment]]:
    """``make(**kwargs)`` opens a UnityEnvironment on the simulated build; all are closed afterwards.

    kwargs go to UnityEnvironment (``additional_args``, ``seed``, ``side_channels``, ``worker_id``,
    ...); ``base_port`` defaults to a free port.
    """
    opened: list[UnityEnvironment] = []

    def make(**kwargs: Any) -> UnityEnvironment:
        kwargs.setdefault("file_name", sim_executable)
        kwargs.setdefault("base_port", free_base_port(kwargs.get("worker_id", 0) + 1))
        kwargs.setdefault("no_graphics", True)
        kwargs.setdefault("timeout_wait", HANDSHAKE_TIMEOUT)
        kwargs["additional_args"] = one_agent_unless_given(kwargs.get("additional_args"))
        env = UnityEnvironment(**kwargs)
        opened.append(env)
        return env

    yield make
    pids = [env._process.pid for env in opened if env._process is not None]
    for env in opened:
        close_quietly(env)
    left = [pid for pid in pids if not wait_until_gone(pid, timeout=10)]
    assert not left, f"simulated players still running after close: {left}"


@contextlib.contextmanager
def open_sim_env(executable: str, **kwargs: Any) -> Iterator[UnityEnvironment]:
    """Context-manager form of ``unity_env_factory`` for code outside a test function."""
    kwargs.setdefault("base_port", free_base_port(kwargs.get("worker_id", 0) + 1))
    kwargs.setdefault("no_graphics", True)
    kwargs.setdefault("timeout_wait", HANDSHAKE_TIMEOUT)
    kwargs["additional_args"] = one_agent_unless_given(kwargs.get("additional_args"))
    env = UnityEnvironment(file_name=executable, **kwargs)
    try:
        yield env
    finally:
        close_quietly(env)


def one_agent_unless_given(additional_args: list[str] | None) -> list[str]:
    """The player arguments with ``--agents 1`` first unless they choose a number of agents."""
    args = list(additional_args or [])
    return args if "--agents" in args else ["--agents", "1", *args]


def close_quietly(env: UnityEnvironment) -> None:
    """Close an environment that a test (or a gym wrapper) may already have closed."""
    with contextlib.suppress(UnityEnvironmentException):
        env.close()


def free_base_port(count: int = 1) -> int:
    """A port p such that p .. p+count-1 are free now (UnityEnvironment uses base_port + worker_id)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("localhost", 0))
            base = probe.getsockname()[1]
        if base + count < 65536 and all(_port_is_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError(f"found no {count} consecutive free TCP ports on localhost in 50 tries")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("localhost", port))
        except OSError:
            return False
    return True


def process_is_gone(pid: int) -> bool:
    """True once ``pid`` has exited; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = status.rpartition(")")[2].split()[0]
    return state in ("Z", "X")


def wait_until_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` has exited or ``timeout`` seconds pass; returns whether it is gone."""
    deadline = time.monotonic() + timeout
    while not process_is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
