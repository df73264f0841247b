"""The READMEs are a contract: every shell command they show runs, for every algorithm choice.

Conventions the READMEs follow, and these tests hold them to:

* Commands live in fenced ```sh blocks, one per line; a trailing comment starts after two spaces.
  Any inline `code` that starts like a command (make, python, cruft, ...) must also be in a block
  (of that README, or of the other one), so no command escapes the test.
* A command that needs what the test machine does not give it ends in a mark: `# needs AWS` (a real
  account), `# needs Docker` (a Docker engine, root), `# needs the package index` (pip or uv
  downloads). The test runs its dry-run form instead (dry_run_form: the command's own --dry-run,
  or `make -n` for a make target that only installs and runs); a command without one must be named
  in COVERED_ELSEWHERE with the test that covers it. A command that is run by CI itself (the template's own `make test`, `make demo`)
  must be in .ci/run.
* `<placeholders>` are replaced: `<account>` by moto's account, `<job-name>` by the job the last
  command printed (`Training job:  ...`), `<template>` by a local git clone of the template. Any
  other placeholder fails the test.

The slow tests run the rendered README of each algorithm choice top to bottom, in a project made
with `cruft create` from a git clone of the template (and committed, as a pushed project is), with
venvs that already hold the project's requirement files (proxies of venvs.py's shared ones, so
make sees them installed), against a loopback moto_server with fake credentials and no test shim:
the only preparation is the bucket project.toml names, which the README says must exist. Every
Python child runs under the launcher tests' network guard (tests/launcher/offline, loopback only);
its log must stay empty. Servers (`make tensorboard`, `launch.py --tensorboard`) are started, probed
over HTTP and stopped by their process group. Each command's text is run as the README shows it;
the only knobs are environment variables (TB_PORT for the TensorBoard port, JUPYTER_DATA_DIR so
`make launcher-kernel` writes into the test's folder, PIP_NO_INDEX so a `pip install` can only be
satisfied by what is installed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ALGORITHMS, TEMPLATE_DIR, bake, load_module
from venvs import venv_for

MARK = "# needs AWS"
MARKS = ("needs AWS", "needs Docker", "needs the package index")  # what a marked comment ends in
COMMAND_WORDS = {"make", "python", ".venv/bin/python", "cruft", "cookiecutter", "pip", "export", "git", "cd",
                 ".", "tensorboard", "bash", "source"}
TEMPLATE_README = TEMPLATE_DIR / "README.md"
OFFLINE_GUARD = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "tests" / "launcher" / "offline"
MOTO_ACCOUNT = "123456789012"
PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")
# Commands that need AWS and have no dry-run form: the test that exercises them instead.
COVERED_ELSEWHERE = {
    "make test": ("tests/test_baked_suites.py", "def test_full_suites_pass_for_every_example"),
    "make notebook": ("{{cookiecutter.project_slug}}/tests/notebook/test_notebook_instance.py", "def test_"),
    "make notebook ARGS=--dry-run": ("{{cookiecutter.project_slug}}/tests/notebook/test_notebook_instance.py",
                                     "dry_run"),
    "make test-container": ("tests/test_baked_suites.py",
                            "def test_container_suite_builds_the_image_and_runs_jobs_in_it"),
}
CI_RUN = TEMPLATE_DIR / ".ci" / "run"
SERVER_STARTS = ("make tensorboard", "python launch.py --tensorboard")
VENVS = {".venv": "requirements/locks/dev.txt", ".venv-launcher": "requirements/locks/launcher-dev.txt",
         ".venv-notebook": "requirements/locks/notebook-dev.txt"}  # the hashed locks the Makefile installs
BUILD_LOCK = "requirements/locks/build.txt"
GIT_ENV = {"GIT_AUTHOR_NAME": "README test", "GIT_AUTHOR_EMAIL": "readme@example.com",
           "GIT_COMMITTER_NAME": "README test", "GIT_COMMITTER_EMAIL": "readme@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


# ------------------------------------------------------------------ reading a README


@dataclass(frozen=True)
class Command:
    text: str  # as the README shows it, without the trailing comment
    comment: str

    @property
    def needs_aws(self) -> bool:
        """Marked as needing something the test machine lacks (AWS, Docker, the package index)."""
        return self.comment.endswith(MARKS)


def split_comment(line: str) -> Command:
    found = re.match(r"^(?P<command>.*?\S)(?:\s{2,}#\s?(?P<comment>.*))?$", line.strip())
    return Command(found["command"], (found["comment"] or "").strip())


def sh_blocks(markdown: str) -> list[list[Command]]:
    blocks = re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    return [[split_comment(line) for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            for block in blocks]


def inline_commands(markdown: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return [span for span in spans if len(span.split()) > 1 and span.split()[0] in COMMAND_WORDS]


def dry_run_form(command: str) -> str | None:
    """What the test runs for a command marked `# needs AWS`; None when there is no such form."""
    words = shlex.split(command)
    if words[:2] == ["python", "launch.py"] and not {"--local-job", "--fetch-results", "--tensorboard"} & set(words):
        return command + " --dry-run"
    return {
        "make role": "make role ARGS=--dry-run",
        "make image": "make image IMAGE_ARGS=--dry-run",
        "make image-build": "make image-build IMAGE_ARGS=--dry-run",
        "bash docker/push.sh": "bash docker/push.sh --dry-run",
        "make lock": "make -n lock",
        "make bench-mlagents-learn": "make -n bench-mlagents-learn",
    }.get(command)


def rendered(algorithm: str, cookies) -> Path:
    result = bake(cookies, algorithm=algorithm)
    assert result.exit_code == 0, result.exception
    return result.project_path


# ------------------------------------------------------------------ the conventions (fast)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_inline_command_is_in_a_tested_block(cookies, algorithm):
    readme = (rendered(algorithm, cookies) / "README.md").read_text(encoding="utf-8")
    shown = [c.text for block in sh_blocks(readme) + sh_blocks(TEMPLATE_README.read_text("utf-8")) for c in block]

    untested = [span for span in inline_commands(readme) if not any(c.startswith(span) for c in shown)]

    assert untested == [], f"inline commands that no ```sh block runs: {untested}"


def test_every_inline_command_of_the_template_readme_is_in_a_tested_block(cookies):
    readme = TEMPLATE_README.read_text(encoding="utf-8")
    project_readme = (rendered("all", cookies) / "README.md").read_text(encoding="utf-8")
    shown = [c.text for block in sh_blocks(readme) + sh_blocks(project_readme) for c in block]

    assert [span for span in inline_commands(readme) if not any(c.startswith(span) for c in shown)] == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_command_marked_needs_aws_has_a_dry_run_form_or_a_covering_test(cookies, algorithm):
    readme = (rendered(algorithm, cookies) / "README.md").read_text(encoding="utf-8")
    marked = [c for block in sh_blocks(readme) for c in block if c.needs_aws]

    assert marked, "the README marks no command as needing AWS: the launch itself does"
    for command in marked:
        assert command.comment.endswith(MARKS), command  # the mark ends the comment
        assert dry_run_form(command.text) or command.text in COVERED_ELSEWHERE, command.text


def test_the_tests_named_for_commands_without_a_dry_run_exist():
    for path, needle in COVERED_ELSEWHERE.values():
        assert needle in (TEMPLATE_DIR / path).read_text(encoding="utf-8"), (path, needle)


def test_commands_run_by_ci_itself_are_in_its_script():
    """The template README's last block (make demo, make test at the template root) is what .ci/run runs."""
    ci = CI_RUN.read_text(encoding="utf-8").splitlines()
    root_block = sh_blocks(TEMPLATE_README.read_text(encoding="utf-8"))[-1]

    assert [c.text for c in root_block] == ["make demo", "make test"]
    assert all(c.text in ci for c in root_block)


def test_the_template_readme_names_no_placeholder_template_url():
    readme = TEMPLATE_README.read_text(encoding="utf-8")

    assert "gh:org" not in readme
    assert "`<template>` below is wherever you have it" in readme


ABSENT = {  # what a project without that example must not mention
    "ppo": [r"\bPPO\b", r"ppo_trainer", r"ALGO=ppo\b"],
    "tf": [r"\bDQN\b", r"tf_trainer", r"ALGO=tf\b"],
}


def docs_of(project: Path) -> dict[str, str]:
    return {name: (project / name).read_text(encoding="utf-8")
            for name in ("README.md", "Makefile", "job_launcher.ipynb", "launcher/settings.py")}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_docs_name_only_the_examples_the_project_has(cookies, algorithm):
    project = rendered(algorithm, cookies)
    for example, patterns in ABSENT.items():
        if algorithm in (example, "all"):
            continue
        for name, text in docs_of(project).items():
            for pattern in patterns:
                assert not re.search(pattern, text), f"{name} of an algorithm={algorithm} project: {pattern}"


def entry_keys(project: Path, script: str) -> set[str]:
    runtime = project / "src" / "template_runtime"
    load_module("template_runtime", runtime / "__init__.py").__path__ = [str(runtime)]
    reader = load_module("template_runtime.entry_point", runtime / "entry_point.py")
    defaults, _ = reader.read_defaults(project / "src")
    return set(defaults) | set(reader.read_entry_point(project / "src" / script).config)


TRAINER_FLAGS = {"local", "help", "run_id", "resume"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_readme_examples_use_keys_the_scripts_have(cookies, algorithm):
    project = rendered(algorithm, cookies)
    entry = tomllib.loads((project / "project.toml").read_text(encoding="utf-8"))["training"]["entry_point"]
    setting_names = set(re.findall(r"^    (\w+): ", (project / "launcher" / "settings.py").read_text(), flags=re.MULTILINE))
    help_lines = [line for line in (project / "Makefile").read_text(encoding="utf-8").splitlines()
                  if line.startswith("#")]
    for line in help_lines:  # the Makefile's help: its --set examples too
        for key in re.findall(r"--set (\w+)=", line):
            assert key in setting_names | entry_keys(project, entry), (key, line)
    for block in sh_blocks((project / "README.md").read_text(encoding="utf-8")):
        for command in block:
            for key in re.findall(r"--set (\w+)=", command.text):
                assert key in setting_names | entry_keys(project, entry), (key, command.text)
            script = re.search(r"src/(\w+\.py)", command.text)
            algo = re.search(r"ALGO=(\w+)", command.text)
            if script or algo:
                name = script[1] if script else f"{algo[1]}_trainer.py"
                for key in re.findall(r"--(\w+)", command.text.split(name, 1)[-1] if script else command.text):
                    assert key in entry_keys(project, name) | TRAINER_FLAGS, (key, command.text)


# ------------------------------------------------------------------ running them (slow)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def venv_proxy(target: Path, proxy: Path) -> None:
    """A venv folder whose bin/lib are the shared venv's, with an .installed stamp newer than the
    project's requirement files: make takes it as installed and never writes into the shared venv."""
    proxy.mkdir()
    for name in ("bin", "lib", "include", "pyvenv.cfg"):
        if (target / name).exists():
            (proxy / name).symlink_to(target / name)
    (proxy / ".installed").touch()


def provide_venvs(project: Path) -> None:
    for folder, lock in VENVS.items():
        if not (project / folder).exists():
            venv_proxy(venv_for(project / lock, project / BUILD_LOCK), project / folder)


@dataclass
class Session:
    """One shell session through a README: environment, folder and what earlier commands printed."""

    env: dict
    cwd: Path
    tmp: Path
    template_clone: Path
    job_name: str | None = None
    ran: list[str] = field(default_factory=list)

    def substitute(self, command: str) -> str:
        values = {"<account>": MOTO_ACCOUNT, "<template>": str(self.template_clone)}
        if self.job_name:
            values["<job-name>"] = self.job_name
        for placeholder in set(PLACEHOLDER.findall(command)):
            assert placeholder in values, f"no value for {placeholder} in {command!r} (at this point)"
            command = command.replace(placeholder, values[placeholder])
        return command

    def run(self, command: str, stdin: str = "") -> str:
        if (self.cwd / "project.toml").is_file():
            provide_venvs(self.cwd)
        if command.startswith(SERVER_STARTS):
            return self.serve(command)
        state = self.tmp / f"state-{uuid.uuid4().hex[:8]}"
        script = f"set -e\n{command}\nenv -0 > {shlex.quote(str(state))}.env\npwd > {shlex.quote(str(state))}.cwd\n"
        completed = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=self.cwd, env=self.env,
                                   input=stdin, capture_output=True, text=True, timeout=1800, check=False)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, f"{command!r} failed ({completed.returncode}):\n{output[-6000:]}"
        assert "Traceback (most recent call last)" not in output, f"{command!r} printed a traceback:\n{output[-6000:]}"
        self.env = dict(item.split("=", 1) for item in Path(f"{state}.env").read_text().split("\0") if "=" in item)
        self.cwd = Path(Path(f"{state}.cwd").read_text().strip())
        job = re.findall(r"^Training job:\s+(\S+)", output, flags=re.MULTILINE)
        self.job_name = job[-1] if job else self.job_name
        self.ran.append(command)
        return output

    def serve(self, command: str) -> str:
        """Start a server command, wait until its HTTP port answers, then stop its whole process group."""
        port = int(self.env["TB_PORT"])
        log = (self.tmp / f"server-{uuid.uuid4().hex[:8]}.log").open("w+")
        server = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", command], cwd=self.cwd, env=self.env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while True:
                assert server.poll() is None, f"{command!r} exited ({server.returncode})"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                        assert answer.status == 200
                        break
                except OSError:
                    assert time.monotonic() < deadline, f"{command!r}: nothing answered on port {port}"
                    time.sleep(0.5)  # polling with a deadline
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.seek(0)
            output = log.read()
            log.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.ran.append(command)
        return output


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


@pytest.fixture(scope="module")
def template_clone(tmp_path_factory) -> Path:
    """The template's working tree as a git repository (how a user has it; cruft needs git)."""
    clone = tmp_path_factory.mktemp("template") / "unity-sagemaker-rl"
    shutil.copytree(TEMPLATE_DIR, clone, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".venvs", "work", "__pycache__", ".pytest_cache", ".ruff_cache"))
    git(clone, "init", "-q", "-b", "main")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "the template")
    return clone


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A plain moto_server on loopback (from the launcher venv, which has moto[server])."""
    probe = bake_for_requirements(tmp_path_factory)
    launcher = venv_for(probe / VENVS[".venv-launcher"], probe / BUILD_LOCK)
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen([str(launcher / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)  # polling with a deadline
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def bake_for_requirements(tmp_path_factory) -> Path:
    """A default bake, only to read its requirement files (they do not depend on the answers)."""
    out = tmp_path_factory.mktemp("requirements")
    subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE_DIR)],
                   check=True, capture_output=True)
    return out / "unity_sagemaker_rl"


def session_env(tmp: Path, moto_endpoint: str, test_bin_first: bool) -> dict:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "PYTEST_", "VIRTUAL_ENV", "SAGEMAKER_", "PIP_", "PYTHON"))}
    test_bin = str(Path(sys.executable).parent)
    path = f"{test_bin}{os.pathsep}{keep['PATH']}" if test_bin_first else f"{keep['PATH']}{os.pathsep}{test_bin}"
    return {
        **keep, **GIT_ENV,
        "PATH": path,
        "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "TB_PORT": str(free_port()), "JUPYTER_DATA_DIR": str(tmp / "jupyter"), "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TQDM_DISABLE": "1",
        "PYTHONPATH": str(OFFLINE_GUARD), "LAUNCHER_TEST_GUARD_LOG": str(tmp / "network-attempts.log"),
    }


def run_block(session: Session, block: list[Command]) -> None:
    for command in block:
        if command.needs_aws:
            form = dry_run_form(command.text)
            if form is None:  # the covering test is checked by a fast test above
                continue
            session.run(session.substitute(form))
        elif command.text in COVERED_ELSEWHERE:
            continue
        else:
            stdin = "\n" * 100 if command.text.split()[0] in ("cookiecutter", "cruft") else ""
            session.run(session.substitute(command.text), stdin=stdin)


# Every single-algorithm choice has its README run; algorithm=all's commands are all among theirs
# (checked below), so running its README too would repeat them.
RUN_THROUGH = [a for a in ALGORITHMS if a != "all"]


def test_the_all_readme_shows_only_commands_a_single_algorithm_readme_runs(cookies):
    def commands(algorithm: str) -> set[str]:
        readme = (rendered(algorithm, cookies) / "README.md").read_text(encoding="utf-8")
        return {command.text for block in sh_blocks(readme) for command in block}

    assert commands("all") - set().union(*(commands(a) for a in RUN_THROUGH)) == set()


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("algorithm", RUN_THROUGH)
def test_every_command_of_the_rendered_readme_runs(algorithm, template_clone, moto, tmp_path):
    env = session_env(tmp_path, moto, test_bin_first=False)
    out = tmp_path / "out"
    out.mkdir()
    created = subprocess.run(["cruft", "create", "--no-input", "--output-dir", str(out), "--extra-context",
                              json.dumps({"algorithm": algorithm}), str(template_clone)],
                             env=env, capture_output=True, text=True, timeout=600, check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    project = out / "unity_sagemaker_rl"
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Start from unity-sagemaker-rl")
    bucket = re.search(r'^s3_bucket = "(.+)"$', (project / "project.toml").read_text(), flags=re.MULTILINE)[1]
    _create_bucket(moto, bucket)
    session = Session(env, project, tmp_path, template_clone)

    for block in sh_blocks((project / "README.md").read_text(encoding="utf-8")):
        run_block(session, block)

    print("ran:", *session.ran, sep="\n  ")
    assert session.job_name, "no command printed a job name"
    guard = tmp_path / "network-attempts.log"
    assert not guard.exists() or guard.read_text() == "", guard.read_text()
    assert len(session.ran) >= 15, session.ran


def _create_bucket(endpoint: str, bucket: str) -> None:
    """The bucket project.toml names (the README's precondition), through botocore (in requirements-dev)."""
    import botocore.session
    from botocore.exceptions import ClientError

    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as error:
        assert error.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"), error


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_command_of_the_template_readme_runs(template_clone, moto, tmp_path):
    """Each block is its own session in a fresh folder; the last one (make demo, make test at the
    template root) is what .ci/run runs (checked above)."""
    blocks = sh_blocks(TEMPLATE_README.read_text(encoding="utf-8"))
    for number, block in enumerate(blocks[:-1]):
        folder = tmp_path / f"block-{number}"
        folder.mkdir()
        session = Session(session_env(folder, moto, test_bin_first=True), folder, folder, template_clone)
        run_block(session, block)
        guard = folder / "network-attempts.log"
        assert not guard.exists() or guard.read_text() == "", guard.read_text()
