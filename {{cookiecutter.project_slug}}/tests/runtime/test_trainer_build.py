"""Getting the Unity build: S3 (moto), input channel, local zip, safe extraction, executable search."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from template_runtime import build as unity_build
from template_runtime.build import (
    BuildAccessError,
    BuildNotFoundError,
    ExecutableNotFoundError,
    UnityBuildError,
    UnsafeArchiveError,
    extract_zip,
    find_executable,
)
from trainer import LocalTrainer, Trainer

pytestmark = pytest.mark.usefixtures("no_internet")

LAUNCHER = b"#!/bin/sh\necho player\n"


def write_zip(
    path: Path, entries: dict[str, bytes | tuple[bytes, int] | str], *, links: dict | None = None
) -> Path:
    """A zip with Unix modes: name -> content, or (content, mode); ``links``: name -> symlink target."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in entries.items():
            content, mode = value if isinstance(value, tuple) else (value, 0o644)
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def player_zip(path: Path, top: str = "") -> Path:
    """A Linux-build-shaped zip whose launcher was stored without execute bits (as Windows zips do)."""
    return write_zip(
        path,
        {
            f"{top}3DBall.x86_64": (LAUNCHER, 0o644),
            f"{top}UnityPlayer.so": b"engine",
            f"{top}3DBall_Data/app.info": b"sim\n3DBall",
        },
    )


class Job(Trainer):
    def run(self):
        return self.download_unity_env()


class Local(LocalTrainer):
    def run(self):
        return self.download_unity_env()


@pytest.fixture
def sagemaker_job(tmp_path, monkeypatch) -> Path:
    """The SM_* variables of a training container, pointing at temporary folders; cwd is a scratch dir."""
    root = tmp_path / "opt_ml"
    for name, sub in {"SM_MODEL_DIR": "model", "SM_OUTPUT_DATA_DIR": "output/data"}.items():
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")
    monkeypatch.delenv("SM_HPS", raising=False)
    work = tmp_path / "code"
    work.mkdir()
    monkeypatch.chdir(work)
    return root


# ---- safe extraction ---------------------------------------------------------------------------


def test_extract_writes_files_with_their_recorded_modes(tmp_path):
    archive = write_zip(tmp_path / "b.zip", {"run.x86_64": (LAUNCHER, 0o755), "data/a.txt": b"a"})
    extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out/data/a.txt").read_bytes() == b"a"
    assert stat.S_IMODE((tmp_path / "out/run.x86_64").stat().st_mode) == 0o755


@pytest.mark.parametrize("name", ["../evil.txt", "data/../../evil.txt", "..\\evil.txt"])
def test_extract_refuses_member_climbing_out_and_writes_nothing(tmp_path, name):
    archive = write_zip(tmp_path / "b.zip", {"ok.txt": b"ok", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="leaves the folder"):
        extract_zip(archive, tmp_path / "out" / "build")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["/tmp/evil.txt", "C:/evil.txt"])
def test_extract_refuses_absolute_member_path(tmp_path, name):
    archive = write_zip(tmp_path / "b.zip", {name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_refuses_symlink_pointing_outside(tmp_path):
    archive = write_zip(tmp_path / "b.zip", {"a.txt": b"a"}, links={"data/link": "../../outside"})
    with pytest.raises(UnsafeArchiveError, match="entry 'data/link' is a symlink"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_refuses_absolute_symlink(tmp_path):
    archive = write_zip(tmp_path / "b.zip", {}, links={"link": "/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        extract_zip(archive, tmp_path / "out")


def test_extract_refuses_symlink_escaping_through_another_link_and_cleans_up(tmp_path):
    # Each target looks harmless on its own; resolved together, x leaves the folder.
    archive = write_zip(
        tmp_path / "b.zip", {"p/q/f.txt": b"f"}, links={"p/q/a": "../../z", "p/q/x": "a/../../.."}
    )
    with pytest.raises(UnsafeArchiveError, match="through other links"):
        extract_zip(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]


def test_extract_keeps_symlink_inside_folder(tmp_path):
    archive = write_zip(tmp_path / "b.zip", {"lib/real.so": b"so"}, links={"lib/alias.so": "real.so"})
    extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out/lib/alias.so").read_bytes() == b"so"


def test_extract_refuses_archive_bigger_than_the_limit(tmp_path):
    archive = write_zip(tmp_path / "b.zip", {"big.bin": b"\0" * 10_000})
    with pytest.raises(UnsafeArchiveError, match="expands to more than"):
        extract_zip(archive, tmp_path / "out", max_bytes=1_000)
    assert not (tmp_path / "out").exists()


def test_extract_replaces_previous_build_folder_whole(tmp_path):
    extract_zip(write_zip(tmp_path / "a.zip", {"old.txt": b"old"}), tmp_path / "out")
    (tmp_path / "out/stale.txt").write_text("old build")
    extract_zip(write_zip(tmp_path / "b.zip", {"new.txt": b"new"}), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["new.txt"]


def test_extract_names_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "b.zip").write_text("not a zip")
    with pytest.raises(UnityBuildError, match=r"b\.zip is not a readable zip"):
        extract_zip(tmp_path / "b.zip", tmp_path / "out")


# ---- finding the player ------------------------------------------------------------------------


@pytest.mark.parametrize("env_file", ["3DBall", "3DBall.x86_64", ""])
def test_find_executable_at_archive_top_with_or_without_suffix(tmp_path, env_file):
    extract_zip(player_zip(tmp_path / "b.zip"), tmp_path / "out")
    assert find_executable(tmp_path / "out", env_file) == tmp_path / "out/3DBall.x86_64"


def test_find_executable_inside_one_top_level_folder(tmp_path):
    extract_zip(player_zip(tmp_path / "b.zip", top="Build/"), tmp_path / "out")
    assert find_executable(tmp_path / "out", "3DBall") == tmp_path / "out/Build/3DBall.x86_64"


def test_find_executable_sets_execute_for_user_group_and_others(tmp_path):
    extract_zip(player_zip(tmp_path / "b.zip"), tmp_path / "out")
    mode = stat.S_IMODE(find_executable(tmp_path / "out", "3DBall").stat().st_mode)
    assert mode & 0o555 == 0o555


def test_missing_executable_error_lists_what_the_build_contains(tmp_path):
    extract_zip(player_zip(tmp_path / "b.zip"), tmp_path / "out")
    with pytest.raises(ExecutableNotFoundError) as error:
        find_executable(tmp_path / "out", "Walker")
    assert "'Walker'" in str(error.value)
    assert "3DBall.x86_64, 3DBall_Data/, UnityPlayer.so" in str(error.value)
    assert "env_file='3DBall'" in str(error.value)


@pytest.mark.parametrize(
    ("entry", "platform"), [("3DBall.exe", "Windows"), ("3DBall.app/Contents/Info.plist", "macOS")]
)
def test_build_for_another_platform_is_named(tmp_path, entry, platform):
    extract_zip(write_zip(tmp_path / "b.zip", {entry: b"x", "3DBall_Data/a": b"a"}), tmp_path / "out")
    with pytest.raises(ExecutableNotFoundError, match=f"{platform} build: build for Linux"):
        find_executable(tmp_path / "out", "3DBall")


def test_several_players_without_env_file_asks_to_choose(tmp_path):
    extract_zip(write_zip(tmp_path / "b.zip", {"A.x86_64": b"a", "B.x86_64": b"b"}), tmp_path / "out")
    with pytest.raises(ExecutableNotFoundError, match=r"several Linux players \(A.x86_64, B.x86_64\)"):
        find_executable(tmp_path / "out", "")


# ---- SageMaker mode: S3 and input channels -------------------------------------------------------


def upload(bucket: str, key: str, path: Path) -> None:
    boto3.client("s3").upload_file(str(path), bucket, key)


def test_job_downloads_extracts_and_returns_the_player(aws, s3_bucket, sagemaker_job, tmp_path):
    upload(s3_bucket, "builds/3DBall.zip", player_zip(tmp_path / "b.zip"))
    trainer = Job({"bucket": s3_bucket, "zip_env_name": "builds/3DBall.zip", "env_file": "3DBall"})
    player = Path(trainer.run())
    assert player == Path.cwd() / "unity_build" / "3DBall.x86_64"
    assert stat.S_IMODE(player.stat().st_mode) & 0o111 == 0o111
    assert [p.name for p in Path.cwd().iterdir()] == ["unity_build"]  # no zip or temp file left


def test_job_accepts_s3_uri_as_zip_env_name(aws, s3_bucket, sagemaker_job, tmp_path):
    upload(s3_bucket, "x/3DBall.zip", player_zip(tmp_path / "b.zip"))
    trainer = Job({"zip_env_name": f"s3://{s3_bucket}/x/3DBall.zip", "build_folder": str(tmp_path / "b")})
    assert trainer.run() == str(tmp_path / "b" / "3DBall.x86_64")


def test_missing_key_error_names_bucket_key_and_config_field(aws, s3_bucket, sagemaker_job):
    trainer = Job({"bucket": s3_bucket, "zip_env_name": "builds/Nope.zip"})
    with pytest.raises(
        BuildNotFoundError, match=rf"s3://{s3_bucket}/builds/Nope.zip does not exist.*zip_env_name"
    ):
        trainer.run()
    assert list(Path.cwd().iterdir()) == []


def test_missing_bucket_error_names_the_bucket(aws, sagemaker_job):
    trainer = Job({"bucket": "no-such-bucket-here", "zip_env_name": "b.zip"})
    with pytest.raises(BuildNotFoundError, match="bucket 'no-such-bucket-here' does not exist"):
        trainer.run()


def test_empty_bucket_setting_is_named(sagemaker_job):
    with pytest.raises(BuildNotFoundError, match="bucket is empty"):
        Job({"zip_env_name": "b.zip"}).run()


def test_access_denied_error_names_the_permission_needed():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    error = unity_build._s3_error(denied, "bkt", "builds/b.zip")
    assert isinstance(error, BuildAccessError)
    assert "s3:GetObject on arn:aws:s3:::bkt/builds/b.zip" in str(error)


def test_archive_without_player_from_s3_lists_its_contents(aws, s3_bucket, sagemaker_job, tmp_path):
    upload(s3_bucket, "b.zip", write_zip(tmp_path / "b.zip", {"README.txt": b"hi"}))
    with pytest.raises(ExecutableNotFoundError, match="it contains: README.txt"):
        Job({"bucket": s3_bucket, "zip_env_name": "b.zip", "env_file": "3DBall"}).run()


def test_job_takes_zip_from_input_channel_without_s3(sagemaker_job, tmp_path, monkeypatch):
    channel = tmp_path / "input/data/env"
    channel.mkdir(parents=True)
    player_zip(channel / "whatever.zip")
    monkeypatch.setenv("SM_CHANNEL_ENV", str(channel))
    assert Path(Job({"env_file": "3DBall"}).run()) == Path.cwd() / "unity_build/3DBall.x86_64"


def test_job_takes_unzipped_build_from_input_channel(sagemaker_job, tmp_path, monkeypatch):
    channel = tmp_path / "input/data/env"
    extract_zip(player_zip(tmp_path / "b.zip"), channel)
    monkeypatch.setenv("SM_CHANNEL_ENV", str(channel))
    assert Path(Job({"env_file": "3DBall"}).run()) == channel / "3DBall.x86_64"


# ---- local mode --------------------------------------------------------------------------------


def test_local_zip_is_extracted_into_build_folder(tmp_path):
    zip_path = player_zip(tmp_path / "b.zip")
    trainer = Local(
        {"zip_env_name": str(zip_path), "build_folder": str(tmp_path / "build"), "project_file": ""}
    )
    assert trainer.run() == str(tmp_path / "build/3DBall.x86_64")


def test_local_zip_unchanged_is_not_extracted_again(tmp_path):
    zip_path = player_zip(tmp_path / "b.zip")
    config = {"zip_env_name": str(zip_path), "build_folder": str(tmp_path / "build"), "project_file": ""}
    Local(config).run()
    (tmp_path / "build/marker").write_text("kept")
    Local(config).run()
    assert (tmp_path / "build/marker").exists()


def test_local_extracted_folder_is_used_without_zip(tmp_path):
    extract_zip(player_zip(tmp_path / "b.zip"), tmp_path / "build")
    trainer = Local(
        {
            "zip_env_name": "",
            "build_folder": str(tmp_path / "build"),
            "env_file": "3DBall",
            "project_file": "",
        }
    )
    assert trainer.run() == str(tmp_path / "build/3DBall.x86_64")


def test_local_missing_build_error_names_both_paths_and_the_fix(tmp_path):
    trainer = Local(
        {
            "zip_env_name": str(tmp_path / "no.zip"),
            "build_folder": str(tmp_path / "nobuild"),
            "project_file": "",
        }
    )
    with pytest.raises(BuildNotFoundError) as error:
        trainer.run()
    assert str(tmp_path / "no.zip") in str(error.value) and str(tmp_path / "nobuild") in str(error.value)
    assert "make sim-build" in str(error.value)
