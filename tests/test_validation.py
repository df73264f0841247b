"""Validation: each bad answer is refused by name, with its value and the rule, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import bake

BAD_ANSWERS: dict[str, list[str]] = {
    "project_name": ["", "   ", "x" * 501],
    "project_description": [""],
    "author_name": ["  "],
    "project_slug": ["1st_project", "my-project", "class", "My_Project", "my project", "caf\u00e9", "x" * 65],
    "s3_bucket": [
        "ab", "a" * 64, "My-Bucket", "-bucket", "bucket-", "my..bucket", "my_bucket", "192.168.1.1",
        "xn--bucket", "sthree-bucket", "bucket-s3alias", "bucket--ol-s3",
    ],
    "ecr_image_uri": [
        "my-image:latest",
        "docker.io/library/python:3.11",
        "public.ecr.aws/abc/unity:latest",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com/repo",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/Repo",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo@sha256:abc",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/repo:latest",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/repo:latest",
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:latest",
    ],
    "unity_build_zip_key": ["/builds/3DBall.zip", "builds/3DBall.tar.gz", "builds/../3DBall.zip",
                            "builds\\3DBall.zip", "a`b.zip", "builds/3DBall"],
    "unity_build_folder": ["/opt/unity", "../unity", "unity/../../etc", "unity\\build", "unity//build"],
    "unity_executable": ["bin/3DBall", "3DBall.exe", "3DBall.app", "..", "3DBall;rm -rf ~", "-rf"],
    "instance_type": ["c5.2xlarge", "ml.c5", "ML.C5.2XLARGE", "ml.c5.2xlarge "],
}

def files_written(cookies) -> list[Path]:
    output_root = Path(str(cookies._output_factory.__self__))  # the folder pytest-cookies bakes into
    return [path for path in output_root.rglob("*") if path.is_file()]


CASES = [(field, value) for field, values in BAD_ANSWERS.items() for value in values]


@pytest.mark.parametrize(("field", "value"), CASES, ids=[f"{f}={v[:30]!r}" for f, v in CASES])
def test_bad_answer_is_refused_by_name_and_nothing_is_written(cookies, capfd, field, value):
    answers = {field: value}
    if field in ("project_name", "project_slug"):
        # The slug, bucket and image defaults derive from the name: keep them valid so the one
        # bad answer is the one under test (and the output folder has a usable name).
        answers.setdefault("project_slug", "valid_slug")
        answers["s3_bucket"] = "valid-bucket"
        answers["ecr_image_uri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/valid:latest"

    result = bake(cookies, **answers)

    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert f"{field}={value!r}: " in err
    assert "nothing was generated" in err
    assert not files_written(cookies), "generation left files behind"


@pytest.mark.parametrize(("field", "value"), [("aws_region", "mars-east-1"), ("algorithm", "sac")])
def test_answer_outside_a_choice_list_is_refused_before_rendering(cookies, field, value):
    result = bake(cookies, **{field: value})

    assert result.exit_code != 0
    assert value in str(result.exception) and field in str(result.exception)
    assert not files_written(cookies)


def test_several_bad_answers_are_all_reported(cookies, capfd):
    result = bake(cookies, s3_bucket="Bad_Bucket", instance_type="c5.large")

    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert "s3_bucket='Bad_Bucket'" in err and "instance_type='c5.large'" in err


def test_image_in_another_region_is_a_warning_not_an_error(cookies, capfd):
    result = bake(cookies, aws_region="eu-west-1",
                  ecr_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl:v1")

    assert result.exit_code == 0, result.exception
    err = capfd.readouterr().err
    assert "WARNING" in err and "us-east-1" in err and "eu-west-1" in err


def test_image_across_the_china_partition_is_an_error(cookies, capfd):
    result = bake(cookies, aws_region="cn-north-1",
                  ecr_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl:v1")

    assert result.exit_code != 0
    assert "China partition" in capfd.readouterr().err


@pytest.mark.parametrize("uri", [
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/unity_rl.v2:2026-11-23_a",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl@sha256:" + "0f" * 32,
])
def test_valid_image_uris_are_accepted(cookies, uri):
    assert bake(cookies, ecr_image_uri=uri).exit_code == 0


def test_china_region_with_china_image_is_accepted(cookies):
    result = bake(cookies, aws_region="cn-northwest-1",
                  ecr_image_uri="123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/unity-rl:latest")
    assert result.exit_code == 0, result.exception
