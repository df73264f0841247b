"""The build folder belongs to the trainer: nothing else on disk is ever deleted or replaced.

Each test runs the trainer against a real checkout of this repository (copied, ``git init`` and
committed, plus uncommitted work: notes, a run's metrics, zips in builds/, a new trainer) inside a
fake home folder, and compares a full listing of everything (sizes, mtimes, modes, .git included)
before and after.

COUNT: 38 build_folder values refused locally, 6 in a job (and an unmarked folder refused before an S3
download), 4 existing folders not ours, 2 folders holding the zip, 7 broken new builds that must leave
the old one, and 6 good setups.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest

import trainer as trainer_module
from template_runtime.build import MARKER_FILE, BuildFolderError, UnityBuildError
from trainer import LocalTrainer, Trainer

pytestmark = pytest.mark.usefixtures("no_internet")

REPO = Path(__file__).resolve().parents[2]
PLAYER = b"#!/bin/sh\necho player\n"


def player_zip(path: Path, extra: dict[str, bytes] | None = None, player: bytes | None = PLAYER) -> Path:
    """A Linux-build-shaped zip (``player=None``: without the launcher)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        entries = {"3DBall.x86_64": player, "UnityPlayer.so": b"engine", **(extra or {})}
        for name, data in entries.items():
            if data is None:
                continue
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | (0o755 if name.endswith(".x86_64") else 0o644)) << 16
            archive.writestr(info, data)
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A committed checkout of this repository with uncommitted work in it, made once per module."""
    root = tmp_path_factory.mktemp("ownership")
    project = root / "home" / "work" / "proj"
    ignored = shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", ".git", ".venv", "runs", "builds", "results", "unity_build"
    )
    shutil.copytree(REPO, project, ignore=ignored)
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Start"], check=True)
    (project / "notes.txt").write_text("uncommitted notes")
    (project / "runs" / "ppo-20261201-101010").mkdir(parents=True)
    (project / "runs" / "ppo-20261201-101010" / "metrics.jsonl").write_text('{"step": 1}\n')
    player_zip(project / "builds" / "3DBall.zip")
    player_zip(project / "builds" / "Other.zip")
    (project / "src" / "my_trainer.py").write_text("# work in progress\n")
    (project / "linked_src").symlink_to(project / "src")
    (project / "linked_home").symlink_to(root / "home")
    return root


@pytest.fixture
def world(pristine, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the pristine checkout; the trainer sees it as its repository and home."""
    root = tmp_path / "world"
    shutil.copytree(pristine, root, symlinks=True)
    project = root / "home" / "work" / "proj"
    for link in ("linked_src", "linked_home"):  # re-point the copied links into this copy
        target = os.readlink(project / link).replace(str(pristine), str(root))
        (project / link).unlink()
        (project / link).symlink_to(target)
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setattr(trainer_module, "REPO_ROOT", project)
    monkeypatch.chdir(project)
    for name in ("SM_TRAINING_ENV", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_HPS", "SM_CHANNEL_ENV"):
        monkeypatch.delenv(name, raising=False)
    return root


def project_of(world: Path) -> Path:
    return world / "home" / "work" / "proj"


def listing(root: Path, folder_mtimes: bool = True) -> dict:
    """Every path under ``root`` (links not followed) with its type, size, mtime, mode and link target.

    ``folder_mtimes=False`` leaves out the mtimes of folders, which change when a temporary folder is
    made and removed in them (a new build is checked beside the old one)."""
    found = {}
    for directory, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(directory, name)
            info = path.lstat()
            kind = stat.S_IFMT(info.st_mode)
            mtime = info.st_mtime_ns if folder_mtimes or kind != stat.S_IFDIR else None
            target = os.readlink(path) if kind == stat.S_IFLNK else None
            found[str(path.relative_to(root))] = (kind, info.st_size, mtime, info.st_mode, target)
    return found


class Local(LocalTrainer):
    def run(self):
        return self.download_unity_env()


class Job(Trainer):
    def run(self):
        return self.download_unity_env()


def run_local(build_folder: str, zip_name: str = "builds/3DBall.zip", **extra) -> str:
    argv = ["--build_folder", build_folder, "--zip_env_name", zip_name, "--env_file", "3DBall"]
    return Local({"project_file": "", **extra}, argv=argv).run()


# ---- build_folder values that would delete what is not the build ------------------------------

LOCAL_REFUSED = [
    ("", "names nothing"),
    (" ", "names nothing"),
    (".", "names the folder it is relative to"),
    ("./", "names the folder it is relative to"),
    ("src/..", "names the folder it is relative to"),
    ("unity_build/..", "names the folder it is relative to"),
    ("..", "is the repository"),
    ("../..", "is your home folder"),
    ("../../..", "is your home folder"),
    ("~", "is your home folder"),
    ("~/work", "is the repository"),
    ("/", "is the root folder"),
    ("{project}", "is the repository"),
    ("{project}/", "is the repository"),
    ("{project}/src/../", "is the repository"),
    ("src", "is the repository's own 'src'"),
    ("tests", "is the repository's own 'tests'"),
    ("builds", "is the repository's own 'builds'"),
    ("runs", "is the repository's own 'runs'"),
    ("results", "is the repository's own 'results'"),
    ("docker", "is the repository's own 'docker'"),
    ("requirements", "is the repository's own 'requirements'"),
    ("launcher", "is the repository's own 'launcher'"),
    ("unity_sim", "is the repository's own 'unity_sim'"),
    ("benchmarks", "is the repository's own 'benchmarks'"),
    (".git", "is the repository's own '.git'"),
    (".github", "is the repository's own '.github'"),
    (".venv", "is the repository's own '.venv'"),
    ("SRC", "is the repository's own 'SRC'"),
    ("Builds", "is the repository's own 'Builds'"),
    ("src/template_runtime", "lies inside the repository's own 'src'"),
    ("tests/runtime", "lies inside the repository's own 'tests'"),
    ("builds/3DBall", "lies inside the repository's own 'builds'"),
    ("runs/build", "lies inside the repository's own 'runs'"),
    (".git/objects", "lies inside the repository's own '.git'"),
    ("linked_src", "is the repository's own 'src'"),  # through the link
    ("linked_home", "is your home folder"),
    ("README.md", "is the repository's own 'README.md'"),
]


@pytest.mark.parametrize(("value", "problem"), LOCAL_REFUSED)
def test_build_folder_that_would_delete_the_repository_or_its_folders_is_refused(world, value, problem):
    value = value.format(project=project_of(world))
    before = listing(world)
    with pytest.raises(BuildFolderError) as error:
        run_local(value)
    assert f"build_folder={value!r}" in str(error.value) and problem in str(error.value), str(error.value)
    assert listing(world) == before


@pytest.mark.parametrize("kind", ["unmarked folder", "unmarked folder, zip changed", "symlink", "file"])
def test_existing_folder_that_is_not_ours_is_left_alone_with_what_to_do(world, kind):
    project = project_of(world)
    target = project / "unity_build"
    if kind.startswith("unmarked"):
        target.mkdir()
        (target / "precious.txt").write_text("mine")
        if kind.endswith("changed"):
            (target / MARKER_FILE).write_text("not json")  # a marker that does not read is not ours
    elif kind == "symlink":
        (world / "elsewhere").mkdir()
        target.symlink_to(world / "elsewhere")
    else:
        target.write_text("a file")
    before = listing(world)
    with pytest.raises(BuildFolderError, match=str(target)) as error:
        run_local("unity_build")
    assert listing(world) == before
    if kind.startswith("unmarked"):
        assert "was not made by the trainer" in str(error.value) and "delete it or move it away" in str(
            error.value
        )


@pytest.mark.parametrize(
    ("zip_name", "build_folder"), [("assets/3DBall.zip", "assets"), ("a/b/3DBall.zip", "a")]
)
def test_build_folder_that_holds_the_zip_is_refused(world, zip_name, build_folder):
    player_zip(project_of(world) / zip_name)
    before = listing(world)
    with pytest.raises(BuildFolderError, match="the build being installed"):
        run_local(build_folder, zip_name)
    assert listing(world) == before


# ---- a broken new build never replaces a good one --------------------------------------------------


def duplicate_entries(path: Path) -> Path:
    player_zip(path)
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("3DBall.x86_64", b"#!/bin/sh\nrm -rf ~\n")
    return path


BROKEN = {
    "no player": lambda p: player_zip(p, player=None),
    "player is a folder": lambda p: player_zip(p, {"3DBall.x86_64/x": b"x"}, player=None),
    "player is not a program": lambda p: player_zip(p, player=b"MZ\x90\x00windows"),
    "empty zip": lambda p: (zipfile.ZipFile(p, "w").close(), p)[1],
    "truncated zip": lambda p: p.write_bytes(player_zip(p).read_bytes()[:100]) and p,
    "duplicate entries": duplicate_entries,
    "a tar": lambda p: (
        subprocess.run(["tar", "-cf", str(p), "-C", str(p.parent), "3DBall.zip"], check=True),
        p,
    )[1],
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_broken_new_build_leaves_the_previous_build_in_place(world, broken):
    project = project_of(world)
    assert run_local("unity_build") == str(project / "unity_build" / "3DBall.x86_64")
    BROKEN[broken](project / "builds" / "Broken.zip")
    before = listing(world, folder_mtimes=False)
    with pytest.raises(UnityBuildError, match=r"Broken\.zip"):
        run_local("unity_build", "builds/Broken.zip")
    assert listing(world, folder_mtimes=False) == before  # the old build, the zips, everything as it was


# ---- what works -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["unity_build", "env/walker", "{world}/outside/build", "~/builds_here"])
def test_a_folder_of_its_own_is_made_marked_and_nothing_else_changes(world, value):
    value = value.format(world=world)
    before = listing(world, folder_mtimes=False)
    player = Path(run_local(value))
    folder = player.parent
    assert player.name == "3DBall.x86_64" and os.access(player, os.X_OK)
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker["zip"] == str(project_of(world) / "builds" / "3DBall.zip")
    after = listing(world, folder_mtimes=False)
    assert {path: after.get(path) for path in before} == before
    inside = str(folder.relative_to(world))
    new = set(after) - set(before)
    assert all(
        path == inside or path.startswith(inside + "/") or inside.startswith(path + "/") for path in new
    )


def test_a_changed_zip_replaces_our_build_whole(world):
    project = project_of(world)
    run_local("unity_build")
    (project / "unity_build" / "stale.txt").write_text("from the old build")
    player_zip(project / "builds" / "3DBall.zip", {"new.txt": b"new"})
    run_local("unity_build")
    assert (project / "unity_build" / "new.txt").exists() and not (
        project / "unity_build" / "stale.txt"
    ).exists()
    assert not [p for p in project.iterdir() if p.name.startswith(".unity_build")]


def test_an_empty_existing_folder_is_used(world):
    (project_of(world) / "unity_build").mkdir()
    assert run_local("unity_build").endswith("unity_build/3DBall.x86_64")


# ---- inside a job: the working folder is the repository ---------------------------------------------


@pytest.fixture
def job(world, monkeypatch) -> Path:
    """A training container: SM_* folders, the build in the "env" channel, cwd = the code folder."""
    for name, sub in {"SM_MODEL_DIR": "opt/model", "SM_OUTPUT_DATA_DIR": "opt/output"}.items():
        (world / sub).mkdir(parents=True)
        monkeypatch.setenv(name, str(world / sub))
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")
    channel = world / "opt" / "input" / "env"
    player_zip(channel / "3DBall.zip")
    monkeypatch.setenv("SM_CHANNEL_ENV", str(channel))
    code = world / "opt" / "code"
    shutil.copytree(project_of(world) / "src", code / "src")
    monkeypatch.chdir(code)
    return code


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "names nothing"),
        (".", "names the folder"),
        ("..", "is the working folder"),
        ("src", "is the working folder's own 'src'"),
        ("{cwd}", "is the working folder"),
        ("/", "is the root folder"),
    ],
)
def test_job_refuses_a_build_folder_that_holds_the_working_folder(job, world, value, problem):
    value = value.format(cwd=job)
    before = listing(world)
    with pytest.raises(BuildFolderError, match=problem):
        Job({"project_file": ""}, argv=["--build_folder", value]).run()
    assert listing(world) == before


def test_job_refuses_an_unmarked_folder_before_downloading(aws, s3_bucket, job, world, monkeypatch):
    monkeypatch.delenv("SM_CHANNEL_ENV")
    boto3.client("s3").upload_file(str(player_zip(world / "up.zip")), s3_bucket, "b/3DBall.zip")
    (job / "unity_build").mkdir()
    (job / "unity_build" / "data.bin").write_text("not a build")
    before = listing(world)
    with pytest.raises(BuildFolderError, match="was not made by the trainer"):
        Job({"project_file": "", "bucket": s3_bucket, "zip_env_name": "b/3DBall.zip"}, argv=[]).run()
    assert listing(world) == before  # no temporary download either


def test_job_extracts_the_channel_zip_into_its_own_folder(job):
    player = Job({"project_file": "", "env_file": "3DBall"}, argv=[]).run()
    assert player == str(job / "unity_build" / "3DBall.x86_64")
    assert (
        json.loads((job / "unity_build" / MARKER_FILE).read_text())["made_by"] == "unity-sagemaker-rl trainer"
    )
