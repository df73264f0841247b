"""A Docker engine of the image tests' own, and the base image to build on, made from Debian alone.

The engine is Debian's `dockerd` (package docker.io) started as root with its own data root, exec
root, socket and pidfile in a temporary folder, with no bridge network and no iptables rules at all:
builds use the host's network (`docker build --network host`), jobs run with `--network none` like
a SageMaker job without VPC access to the internet. It is stopped by its PID, and `leftovers()` says
what, if anything, it left behind (containers, networks, links, iptables rules, mounts, processes).

The base image: the official `python:3.11-slim-bookworm` when it can be pulled; otherwise (Docker
Hub unreachable, as on CI machines that reach only package registries) Debian bookworm made with
`mmdebstrap` from Debian's own packages and `docker import`ed. The rootfs tarball is cached (in
$IMAGE_TEST_CACHE, default <repo>/.cache/image-test), so it is made once per machine or CI run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGES = {"dockerd": "docker.io", "mmdebstrap": "mmdebstrap"}
# Debian's client (20.10) does BuildKit builds with DOCKER_BUILDKIT=1; a newer client without the
# buildx plugin cannot, so the client from the docker.io package is preferred.
DEBIAN_DOCKER_CLIENT = Path("/usr/bin/docker")
OFFICIAL_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "local/python:3.11-bookworm-mmdebstrap"
DEBIAN_MIRROR = os.environ.get("IMAGE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the official slim image has that a job needs: CA certificates, /etc/services and friends,
# time zones, Python 3.11 with its venv module; passwd for useradd.
BASE_PACKAGES = "passwd,ca-certificates,netbase,tzdata,python3,python3-venv"


def run(command: list[str], timeout: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def ensure_debian_packages() -> None:
    """apt-get install what is missing (docker.io, mmdebstrap); needs root and Debian's registry."""
    missing = [package for program, package in DEBIAN_PACKAGES.items() if shutil.which(program) is None]
    if not DEBIAN_DOCKER_CLIENT.exists() and "docker.io" not in missing:
        missing.append("docker.io")
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], timeout=600, env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], timeout=900, env=env)


def host_state() -> dict:
    """What an engine could leave on the host: network links, iptables rules, mounts."""
    links = run(["ip", "-o", "link", "show"], timeout=30, check=False).stdout
    state = {
        "links": sorted(
            line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if ":" in line
        )
    }
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            rules = run([tool], timeout=30, check=False).stdout
            state[tool] = sorted(line for line in rules.splitlines() if line and not line.startswith("#"))
    return state


@dataclass
class Engine:
    folder: Path
    client: str = str(DEBIAN_DOCKER_CLIENT)
    process: subprocess.Popen | None = None
    pid: int | None = None
    before: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"unix://{self.folder}/docker.sock"

    @property
    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER": self.client, "DOCKER_BUILDKIT": "1"}

    def start(self, timeout: float = 90) -> None:
        self.before = host_state()
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "dockerd.log", "w")  # noqa: SIM115 - kept open for the engine's life
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--host",
                self.host,
                "--data-root",
                str(self.folder / "root"),
                "--exec-root",
                str(self.folder / "exec"),
                "--pidfile",
                str(self.folder / "dockerd.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.process.returncode}: {self.log()[-3000:]}")
            if self.docker("info", check=False, timeout=20).returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"dockerd did not answer within {timeout} s: {self.log()[-3000:]}")

    def log(self) -> str:
        path = self.folder / "dockerd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True, **kwargs
    ) -> subprocess.CompletedProcess:
        return run([self.client, *args], timeout=timeout, check=check, env=self.env, **kwargs)

    def containers(self) -> list[str]:
        return self.docker("ps", "--all", "--quiet", check=False).stdout.split()

    def networks(self) -> list[str]:
        out = self.docker("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
        return sorted(set(out) - {"host", "none"})  # the two built-in ones a --bridge none engine has

    def image_id(self, name: str) -> str:
        return self.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()

    def image_size(self, name: str) -> int:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())

    def layer_sizes(self, name: str) -> list[tuple[int, str]]:
        """(bytes, created by) for each layer of an image, the biggest first."""
        out = self.docker("history", "--no-trunc", "--human=false", "--format", "{{json .}}", name).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return sorted(((int(r["Size"]), r["CreatedBy"][-110:]) for r in rows), reverse=True)

    def stop(self, timeout: float = 60) -> None:
        """Remove what is left, then SIGTERM dockerd by its PID (SIGKILL after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return
        leftover = self.containers()
        if leftover:
            self.docker("rm", "--force", *leftover, check=False)
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        # Images and layers (GBs): gone with the engine, unless something is still mounted there.
        if not any(str(self.folder) in line for line in Path("/proc/mounts").read_text().splitlines()):
            shutil.rmtree(self.folder / "root", ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Everything the stopped engine left on the host (empty when it cleaned up after itself)."""
        found = []
        if self.process is not None and self.process.poll() is None:
            found.append(f"dockerd {self.pid} still runs")
        after = host_state()
        for key, rules in after.items():
            new = sorted(set(rules) - set(self.before.get(key, [])))
            if new:
                found.append(f"new {key}: {new}")
        mounts = Path("/proc/mounts").read_text().splitlines()
        found += [f"mount left: {line}" for line in mounts if str(self.folder) in line]
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.folder) in cmdline:
                found.append(f"process left: {proc.name} {cmdline[:200]}")
        return found


def try_pull(engine: Engine, image: str, timeout: float = 60) -> str | None:
    """None if ``image`` was pulled, else why not (one line)."""
    try:
        result = engine.docker("pull", "--quiet", image, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"docker pull {image}: no answer within {timeout:.0f} s"
    if result.returncode == 0:
        return None
    return f"docker pull {image}: " + (result.stderr.strip().splitlines() or ["failed"])[-1]


def debian_base(engine: Engine, cache: Path) -> tuple[str, dict]:
    """The base image to build on: the official one if it can be pulled, else Debian via mmdebstrap."""
    figures: dict = {}
    why_not = try_pull(engine, OFFICIAL_BASE)
    if why_not is None:
        return OFFICIAL_BASE, {"base": OFFICIAL_BASE}
    figures["official_base"] = why_not
    tarball = cache / "bookworm-python3.11-rootfs.tar"
    if not tarball.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        started = time.monotonic()
        run(
            [
                "nice",
                "mmdebstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(partial),
                DEBIAN_MIRROR,
            ],
            timeout=1200,
        )
        partial.rename(tarball)
        figures["mmdebstrap_seconds"] = round(time.monotonic() - started, 1)
    else:
        figures["mmdebstrap_seconds"] = "cached"
    engine.docker(
        "import",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["python3"]',
        str(tarball),
        LOCAL_BASE,
        timeout=300,
    )
    figures["base"] = f"{LOCAL_BASE} (mmdebstrap: {why_not})"
    figures["base_mb"] = engine.image_size(LOCAL_BASE) // 1_000_000
    return LOCAL_BASE, figures


def extra_ca_certificates() -> str | None:
    """The folder of this machine's extra CA certificates (Debian's place for them), if it has any."""
    chosen = os.environ.get("IMAGE_TEST_CA_CERTIFICATES")
    if chosen is not None:
        return chosen or None
    folder = Path("/usr/local/share/ca-certificates")
    return str(folder) if any(folder.glob("*.crt")) else None
