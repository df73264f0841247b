"""Validation: each bad answer is refused by name, with its value and the rule, and nothing is written.

The rules are src/template_runtime/rules.py of the template (the pre-gen hook loads it from there);
these tests drive them through cookiecutter, the way a user meets them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import RUNTIME_DIR, TEMPLATE_DIR, as_rendered, bake, rules
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/valid:latest"  # the default region is us-east-1

BAD_ANSWERS: dict[str, list[str]] = {
    "project_name": ["", "   ", "\n\t", "x" * 501, "\U0001f680" * 501, "a\x00b", "caf\udce9"],
    "project_description": ["", " \n ", "d" * 10_000],
    "author_name": ["  ", "O'Brien\x00"],
    "project_slug": [
        "1st_project", "my-project", "class", "My_Project", "my project", "caf\u00e9", "x" * 65, "x" * 200,
        "my_project\n", " my_project", "my_project ", "my\tproject", "my_project\r", "m\u0443_project",
        "my\u200bproject",
    ],
    "s3_bucket": [
        "ab", "a" * 64, "a" * 1000, "My-Bucket", "-bucket", "bucket-", "my..bucket", "my_bucket",
        "192.168.1.1", "10.0.0.1", "xn--bucket", "sthree-bucket", "amzn-s3-demo-bucket", "bucket-s3alias",
        "bucket--ol-s3", "bucket.mrap", "bucket--x-s3", "bucket--table-s3",
        "my-bucket\n", "my-bucket\r", " my-bucket", "my-bucket ", "my\tbucket", "my\nbucket",
        "my\u200bbucket", "my-bu\u0441ket", "\uff4dy-bucket", "my-bucket\u00a0", "\ufeffmy-bucket",
    ],
    "ecr_image_uri": [
        "my-image:latest",
        "docker.io/library/python:3.11",
        "public.ecr.aws/abc/unity:latest",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com/repo",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/Repo",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:-tag",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo@sha256:abc",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:v1@sha256:" + "0" * 64,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/repo:latest",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/repo:latest",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo:latest",  # another region than the jobs'
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:latest",
        IMAGE + "\n", IMAGE + "\r", IMAGE + " ", " " + IMAGE, IMAGE + "\t", IMAGE.replace("/", "/\n"),
        IMAGE.replace("valid", "va\u200blid"),
        IMAGE.replace("ecr", "\u0435cr"),  # Cyrillic e
        "\u0661\u0662\u0663456789012" + IMAGE[12:],  # Arabic-Indic digits: Python's \d matches them
        IMAGE.replace("valid", "v" * 300),
    ],
    "unity_build_zip_key": [
        "/builds/3DBall.zip", "builds/3DBall.tar.gz", "builds/../3DBall.zip", "builds\\3DBall.zip", "a`b.zip",
        "builds/3DBall", "builds/3DBall.zip\n", "builds/3DBall.zip\r", " builds/3DBall.zip",
        "builds/3DBall.zip ", "builds/3DBall.zip\t", "builds//3DBall.zip", "./3DBall.zip",
        "builds/./3DBall.zip", "builds/3D\u200bBall.zip", "builds/3DB\u0430ll.zip", "builds/\n3DBall.zip",
        "b" * 1100 + ".zip",
    ],
    "unity_build_folder": [
        # the list: the repository itself, its own folders, and whitespace around a name
        "src", "tests", "builds", ".", "", "..", "./", "unity_build ", "unity_build\n",
        # more of the repository's folders and names, in other spellings
        "runs", "docker", "requirements", "launcher", "unity_sim", "benchmarks", "results", "tools",
        "tests_launcher", ".git", ".github", ".venv", "SRC", "Tests", "src/unity", "builds/unity",
        "project.toml", "Makefile", "README.md",
        # paths that are not plain relative folders
        "/opt/unity", "../unity", "unity/../../etc", "unity\\build", "unity//build", "unity_build/",
        "~/unity", "unity/./build", "C:/unity",
        # whitespace, invisible and look-alike characters, length
        " unity_build", "unity\tbuild", "unity\nbuild", "unity_build\r", "unity\u200bbuild",
        "unity_\u0432uild", "unity /build", "x" * 300, "/".join(["a" * 200] * 6),
    ],
    "unity_executable": [
        "bin/3DBall", "3DBall.exe", "3DBall.app", "3DBall.bat", "..", ".", "", "3DBall;rm -rf ~", "-rf",
        "3DBall ", "3DBall\n", " 3DBall", "3DBall\t", "3D\tBall", "3D\nBall", "3DBall\r", "3D\u200bBall",
        "3D\u0392all", "3DBall\u202e", "3DBall.", ".hidden", "x" * 300,
    ],
    "instance_type": [
        "c5.2xlarge", "ml.c5", "ML.C5.2XLARGE", "ml.c5.2xlarge ", "ml.c5.2xlarge\n", "ml.c5.2xlarge\r",
        "\tml.c5.2xlarge", " ml.c5.2xlarge", "ml.c5\u200b.2xlarge", "ml.\u04415.2xlarge", "ml.c5.\uff12xlarge",
        "ml.c5.2xlarge\nml.p4d.24xlarge", "ml." + "c" * 300 + ".xlarge", "",
        # well-formed, but not a training instance type in botocore's SageMaker model
        "ml.fake.huge", "ml.c5.3xlarge", "ml.t2.medium",
    ],
}
CASES = [(field, value) for field, values in BAD_ANSWERS.items() for value in values]


def files_written(cookies) -> list[Path]:
    output_root = Path(str(cookies._output_factory.__self__))  # the folder pytest-cookies bakes into
    return [path for path in output_root.rglob("*") if path.is_file()]


def isolated_answers(field: str, value: str) -> dict:
    answers = {field: value}
    if field in ("project_name", "project_slug"):
        # The slug, bucket and image defaults derive from the name: keep them valid so the one
        # bad answer is the one under test (and the output folder has a usable name).
        answers.setdefault("project_slug", "valid_slug")
        answers["s3_bucket"] = "valid-bucket"
        answers["ecr_image_uri"] = IMAGE
    return answers


@pytest.mark.parametrize(("field", "value"), CASES, ids=[f"{f}={v[:30]!r}" for f, v in CASES])
def test_bad_answer_is_refused_by_name_and_nothing_is_written(cookies, capfd, field, value):
    result = bake(cookies, **isolated_answers(field, value))

    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert f"  - {field}={rules.shown(as_rendered(value))}: " in err
    assert "nothing was generated" in err
    assert "Traceback" not in err
    assert not files_written(cookies), "generation left files behind"


@pytest.mark.parametrize(("field", "value"), [
    ("aws_region", "mars-east-1"), ("aws_region", "us-east-1\n"), ("aws_region", " us-east-1"),
    ("aws_region", "us-\u0435ast-1"), ("algorithm", "sac"), ("algorithm", "ppo\n"), ("algorithm", "PPO"),
])
def test_answer_outside_a_choice_list_is_refused_before_rendering(cookies, field, value):
    result = bake(cookies, **{field: value})

    assert result.exit_code != 0
    assert value in str(result.exception) and field in str(result.exception)
    assert not files_written(cookies)


# Rules across answers: each pair is refused, naming the first field.
CROSS_FIELD_CASES = [
    ("unity_build_folder", {"unity_build_folder": "games", "unity_build_zip_key": "games/3DBall.zip"},
     "holds the build zip"),
    ("unity_build_folder", {"unity_build_folder": "Games", "unity_build_zip_key": "games/v2/3DBall.zip"},
     "holds the build zip"),
    ("unity_build_folder", {"unity_build_folder": "zips/3DBall.zip", "unity_build_zip_key": "zips/3DBall.zip"},
     "holds the build zip"),
    ("ecr_image_uri", {"aws_region": "eu-west-1", "ecr_image_uri": IMAGE}, "only from ECR in the job's own region"),
    ("ecr_image_uri", {"aws_region": "cn-north-1", "ecr_image_uri": IMAGE}, "China partition"),
    ("ecr_image_uri", {"aws_region": "us-gov-west-1", "ecr_image_uri": IMAGE}, "GovCloud"),
    ("ecr_image_uri", {"aws_region": "us-east-1",
                       "ecr_image_uri": "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/repo"}, "partition"),
]


@pytest.mark.parametrize(("field", "answers", "reason"), CROSS_FIELD_CASES,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CROSS_FIELD_CASES)])
def test_answers_that_do_not_fit_together_are_refused(cookies, capfd, field, answers, reason):
    result = bake(cookies, **answers)

    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert f"  - {field}={answers[field]!r}: " in err and reason in err
    assert not files_written(cookies)


def test_several_bad_answers_are_all_reported(cookies, capfd):
    result = bake(cookies, s3_bucket="Bad_Bucket", instance_type="c5.large", unity_build_folder="src")

    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert "s3_bucket='Bad_Bucket'" in err and "instance_type='c5.large'" in err
    assert "unity_build_folder='src'" in err


def test_image_across_the_china_partition_is_an_error(cookies, capfd):
    result = bake(cookies, aws_region="cn-north-1",
                  ecr_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl:v1")

    assert result.exit_code != 0
    assert "China partition" in capfd.readouterr().err


@pytest.mark.parametrize("uri", [
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/unity_rl.v2:2026-11-23_a",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/unity-rl@sha256:" + "0f" * 32,
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b/c:" + "T" * 128,
])
def test_valid_image_uris_are_accepted(cookies, uri):
    assert bake(cookies, ecr_image_uri=uri).exit_code == 0


def test_china_region_with_china_image_is_accepted(cookies):
    result = bake(cookies, aws_region="cn-northwest-1",
                  ecr_image_uri="123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/unity-rl:latest")
    assert result.exit_code == 0, result.exception


# ------------------------------------------------------------------ where the rules come from


def copy_template(destination: Path) -> Path:
    shutil.copytree(TEMPLATE_DIR, destination, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".pytest_cache", ".venv*", "work", ".venvs", "*.pyc"))
    return destination


def git_repository(folder: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        subprocess.run(["git", "-C", str(folder), *command], check=True, env=env)
    return folder


def user_config(tmp_path: Path) -> str:
    """A cookiecutter user config that keeps clones and replay files inside tmp_path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'clones'}\nreplay_dir: {tmp_path / 'replay'}\n",
                      encoding="utf-8")
    return str(config)


def render(template: str, tmp_path: Path, **options) -> Path:
    return Path(cookiecutter(template, no_input=True, output_dir=str(tmp_path / "out"),
                             config_file=user_config(tmp_path), **options))


def template_sources(tmp_path: Path) -> dict[str, tuple[str, dict]]:
    """The template as a user may point cookiecutter at it: folder, git clone, subfolder of a repo, zip."""
    folder = copy_template(tmp_path / "src-folder" / "unity-sagemaker-rl")
    clone = git_repository(copy_template(tmp_path / "src-git" / "unity-sagemaker-rl"))
    mono = tmp_path / "src-mono"
    copy_template(mono / "templates" / "unity")
    git_repository(mono)
    archive = tmp_path / "unity-sagemaker-rl.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(folder, "unity-sagemaker-rl")  # cookiecutter takes the first entry as the top folder
        for path in sorted(folder.rglob("*")):
            zipped.write(path, Path("unity-sagemaker-rl") / path.relative_to(folder))
    return {
        "folder": (str(folder), {}),
        "git-clone": (f"git+file://{clone}", {}),
        "git-clone-directory": (f"git+file://{mono}", {"directory": "templates/unity"}),
        "zip": (str(archive), {}),
    }


def test_hook_takes_the_rules_from_the_template_however_it_is_fetched(tmp_path, capfd):
    """rules.py is found through cookiecutter's _repo_dir for a folder, a clone, a subfolder and a zip."""
    for kind, (template, options) in template_sources(tmp_path).items():
        with pytest.raises(FailedHookException):
            render(template, tmp_path / kind, extra_context={"s3_bucket": "abc--x-s3"}, **options)
        err = capfd.readouterr().err
        assert "s3_bucket='abc--x-s3': ends with the reserved suffix '--x-s3'" in err, kind
        assert not (tmp_path / kind / "out").exists() or not any((tmp_path / kind / "out").rglob("*.py")), kind

        project = render(template, tmp_path / kind, **options)
        assert (project / "src" / "template_runtime" / "rules.py").read_bytes() == (
            RUNTIME_DIR / "rules.py").read_bytes(), kind
    assert not (RUNTIME_DIR / "__pycache__").exists(), "the hook left bytecode in the template"


def test_without_botocore_instance_types_are_checked_by_pattern_with_a_warning(tmp_path):
    """The hook runs on cookiecutter's interpreter, which may lack botocore: the pattern still holds."""
    blocker = tmp_path / "no-botocore" / "botocore"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('botocore blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"),
               "--config-file", user_config(tmp_path), str(TEMPLATE_DIR)]

    accepted = subprocess.run([*command, "instance_type=ml.fake.huge"], env=env, capture_output=True, text=True)
    refused = subprocess.run([*command, "-f", "instance_type=ml.c5.2xlarge\t"], env=env,
                             capture_output=True, text=True)

    assert accepted.returncode == 0, accepted.stderr
    assert "WARNING: instance_type='ml.fake.huge' was only checked against the pattern" in accepted.stderr
    assert refused.returncode != 0
    assert "instance_type='ml.c5.2xlarge\\t': has a tab (U+0009) at the end" in refused.stderr


def test_rules_and_project_file_import_with_the_standard_library_only():
    """python -I -S: no site-packages at all, so any third-party import at module level would fail."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from template_runtime import rules, project_file;"
        "assert rules.sagemaker_enum('CreateTrainingJob', 'ResourceConfig', 'InstanceType') is None;"
        "print(rules.training_instance_type('ml.fake.huge'), sorted(m for m in sys.modules if 'boto' in m))"
    )
    completed = subprocess.run([sys.executable, "-B", "-I", "-S", "-c", code, str(RUNTIME_DIR.parent)],
                               capture_output=True, text=True)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["ml.fake.huge", "[]"]


@pytest.mark.parametrize("how", ["dot", "relative"])
def test_hook_finds_the_rules_when_the_template_path_is_relative(tmp_path, how):
    """`cookiecutter .` (the template Makefile's make demo) and a relative path: _repo_dir is relative to
    where cookiecutter started, while the hook runs in the new project's folder."""
    cwd, template = (TEMPLATE_DIR, ".") if how == "dot" else (TEMPLATE_DIR.parent, TEMPLATE_DIR.name)
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"),
               "--config-file", user_config(tmp_path), template]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    refused = subprocess.run([*command, "s3_bucket=abc--x-s3"], cwd=cwd, env=env, capture_output=True, text=True)
    made = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)

    assert "s3_bucket='abc--x-s3': ends with the reserved suffix '--x-s3'" in refused.stderr
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out" / "unity_sagemaker_rl" / "project.toml").is_file()
