"""The optional first step: a local build zip goes to the bucket once, and again only when it changed."""

from __future__ import annotations

import hashlib

import pytest
from conftest import BUILD_KEY

from launcher import api
from launcher.errors import LaunchError


@pytest.fixture
def settings(project):
    return api.load_settings(project_file=str(project.file), role=project.role)


@pytest.fixture
def build(tmp_path):
    path = tmp_path / "3DBall.zip"
    path.write_bytes(b"PK\x03\x04 pretend build " * 100)
    return path


def test_upload_puts_the_zip_at_the_build_key(project, settings, build):
    assert api.upload_build(settings, build) is True
    body = project.s3().get_object(Bucket=project.bucket, Key=BUILD_KEY)["Body"].read()
    assert body == build.read_bytes()


def test_same_file_is_not_uploaded_again(project, settings, build, capsys):
    api.upload_build(settings, build)
    assert api.upload_build(settings, build) is False
    assert "already this build" in capsys.readouterr().out


def test_changed_file_is_uploaded_again(project, settings, build):
    api.upload_build(settings, build)
    build.write_bytes(build.read_bytes() + b"more")
    assert api.upload_build(settings, build) is True


def test_same_file_uploaded_by_another_tool_is_recognised_by_its_etag(project, settings, build):
    project.s3().put_object(
        Bucket=project.bucket, Key=BUILD_KEY, Body=build.read_bytes()
    )  # no checksum metadata
    head = project.s3().head_object(Bucket=project.bucket, Key=BUILD_KEY)
    assert head["ETag"].strip('"') == hashlib.md5(build.read_bytes()).hexdigest()
    assert api.upload_build(settings, build) is False


def test_same_size_but_different_content_is_uploaded(project, settings, build):
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"x" * build.stat().st_size)
    assert api.upload_build(settings, build) is True


def test_missing_local_zip_is_reported(settings, tmp_path):
    with pytest.raises(LaunchError, match="local_build_zip=.*nope.zip' does not exist"):
        api.upload_build(settings, tmp_path / "nope.zip")
