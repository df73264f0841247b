"""Fixtures of the image suite: a loopback moto server and the simulated Unity build (tests/support/),
and for the container tests (test_container.py): an engine, a base, the built image.

Everything is session-scoped and made once: the Docker engine (engine.py), the base image, the CPU
image built from nothing (its figures go to $IMAGE_TEST_CACHE/figures.json and are printed at the
end), and the simulated Unity build that every job gets in its input channel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_fixtures import *  # noqa: F401,F403
from sim_fixtures import *  # noqa: F401,F403

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine as engine_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGE_TAG = "unity-rl-test:cpu"
CACHE = Path(os.environ.get("IMAGE_TEST_CACHE") or ROOT / ".cache" / "image-test")
# Copied into a build context of the tests' own, so the warm-cache test may edit src/ there.
CONTEXT_ENTRIES = ("docker", "requirements", "src", "project.toml", ".dockerignore")
ENABLED = os.environ.get("IMAGE_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="the container tests build and run the training image in a Docker engine of their own "
        "(root, Debian's docker.io and mmdebstrap): run them with `make test-container` (IMAGE_TESTS=1)"
    )
    for item in items:
        if Path(str(item.fspath)).name == "test_container.py":
            item.add_marker(skip)


@pytest.fixture(scope="session")
def figures() -> dict:
    """Measured figures, written to $IMAGE_TEST_CACHE/figures.json and printed at the end."""
    found: dict = {"load_average_at_start": os.getloadavg()}
    yield found
    found["load_average_at_end"] = os.getloadavg()
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "figures.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    print(f"\nimage test figures ({CACHE / 'figures.json'}):\n{json.dumps(found, indent=2, default=str)}")


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> engine_module.Engine:
    if os.geteuid() != 0:
        pytest.fail("the container tests start their own dockerd and need root (sudo make test-container)")
    engine_module.ensure_debian_packages()
    # A short folder: the engine's socket path must stay under 108 characters.
    folder = Path(tmp_path_factory.mktemp("engine", numbered=True))
    started = engine_module.Engine(folder)
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def base_image(engine, figures) -> str:
    name, found = engine_module.debian_base(engine, CACHE)
    figures.update(found)
    return name


@pytest.fixture(scope="session")
def context(tmp_path_factory) -> Path:
    """The build context: a copy of what the image is built from, and src/ (which it must ignore)."""
    folder = tmp_path_factory.mktemp("context")
    for name in CONTEXT_ENTRIES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, folder / name)
    return folder


@dataclass
class Build:
    seconds: float
    output: str
    returncode: int

    def steps(self) -> dict[str, str]:
        """BuildKit's plain progress: step title -> 'CACHED' or 'RAN'."""
        titles, states = {}, {}
        for line in self.output.splitlines():
            parts = line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("#"):
                continue
            if parts[1].startswith("[") and len(parts) == 3:
                titles.setdefault(parts[0], f"{parts[1]} {parts[2]}")
            elif parts[1] in ("CACHED", "DONE"):
                states[parts[0]] = "CACHED" if parts[1] == "CACHED" else states.get(parts[0], "RAN")
        return {titles[key]: states.get(key, "?") for key in titles if "[internal]" not in titles[key]}


def build(engine, context: Path, *options: str, docker_args: tuple = (), timeout: float = 2400) -> Build:
    command = [
        "bash",
        "docker/build.sh",
        *options,
        "--",
        "--network",
        "host",
        "--progress",
        "plain",
        *docker_args,
    ]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=context, env=engine.env, capture_output=True, text=True, timeout=timeout
    )
    return Build(round(time.monotonic() - started, 1), result.stdout + result.stderr, result.returncode)


def build_options(base_image: str, tag: str = IMAGE_TAG) -> list[str]:
    options = ["--tag", tag]
    if base_image != engine_module.OFFICIAL_BASE:
        options += ["--base", base_image]
    ca = engine_module.extra_ca_certificates()
    if ca:
        options += ["--ca-certificates", ca]
    return options


@pytest.fixture(scope="session")
def image(engine, base_image, context, figures) -> str:
    """The CPU image, built from nothing but the base (a fresh engine: no layer cache)."""
    result = build(engine, context, *build_options(base_image))
    assert result.returncode == 0, result.output[-6000:]
    figures["cold_build_seconds"] = result.seconds
    figures["image_mb"] = engine.image_size(IMAGE_TAG) // 1_000_000
    figures["largest_layers_mb"] = [
        (size // 1_000_000, created) for size, created in engine.layer_sizes(IMAGE_TAG)[:4]
    ]
    (CACHE / "cold-build.log").parent.mkdir(parents=True, exist_ok=True)
    (CACHE / "cold-build.log").write_text(result.output)
    return IMAGE_TAG


@pytest.fixture(scope="session")
def sim_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    subprocess.run(
        [sys.executable, "-m", "unity_sim.package_build", "--name", "3DBall", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out / "3DBall.zip"
