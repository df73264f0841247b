"""template_runtime.rules and .project_file: one set of rules, one reader of project.toml.

The template's own tests drive every rule through cookiecutter; the launcher's and the notebook
tool's tests drive them through their settings. These check the pieces themselves.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from template_runtime import project_file, rules
from template_runtime.project_file import ProjectFileError, UnrenderedTemplateError, read_project_file

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "project": {"name": "Robo \U0001f680", "slug": "robo", "description": "d", "author": "a"},
    "aws": {
        "region": "eu-west-1",
        "s3_bucket": "my-builds",
        "ecr_image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/unity-rl:latest",
        "instance_type": "ml.c5.2xlarge",
    },
    "training": {"algorithm": "ppo", "entry_point": "ppo_trainer.py"},
    "unity_build": {"zip_key": "builds/3DBall.zip", "folder": "unity_build", "executable": "3DBall"},
}


def write(path: Path, tables: dict) -> Path:
    """A project.toml; JSON strings without surrogates are TOML basic strings."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_repository_project_toml_reads_with_every_field_checked():
    found = read_project_file(REPO_ROOT / "project.toml")
    assert all(getattr(found, field) for field in project_file.RENDERED_FIELDS)
    assert found.role_arn is None


def test_values_come_back_unchanged(tmp_path):
    found = read_project_file(write(tmp_path / "project.toml", GOOD))
    assert (found.name, found.bucket, found.build_folder) == ("Robo \U0001f680", "my-builds", "unity_build")


def test_every_problem_is_named_with_the_file_table_and_key(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    bad["aws"]["s3_bucket"] = "a..b"
    bad["aws"]["instance_type"] = "ml.fake.huge"
    bad["unity_build"]["folder"] = "src"
    del bad["training"]
    path = write(tmp_path / "project.toml", bad)

    with pytest.raises(ProjectFileError) as refused:
        read_project_file(path)

    message = str(refused.value)
    assert message.startswith(f"{path} has values that cannot be used")
    for part in (
        "[aws] s3_bucket='a..b': contains '..'",
        "[aws] instance_type='ml.fake.huge'",
        "[unity_build] folder='src': is the repository's own 'src'",
        "[training] algorithm is missing",
        "[training] entry_point is missing",
    ):
        assert part in message, part


def test_a_reader_asks_only_for_what_it_uses(tmp_path):
    path = write(tmp_path / "project.toml", {"project": {"slug": "robo"}, "aws": {"region": "us-east-1"}})
    found = read_project_file(path, ("slug", "region", "role_arn"), optional=("role_arn",))
    assert (found.slug, found.region, found.role_arn, found.bucket) == ("robo", "us-east-1", None, None)
    with pytest.raises(ProjectFileError, match=r"\[aws\] s3_bucket is missing"):
        read_project_file(path, ("slug", "bucket"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"aws": {"region": "us-east-1"}},
            r"\[aws\] ecr_image_uri=.*in region 'eu-west-1' but jobs run in 'us-east-1'",
        ),
        (
            {"unity_build": {"folder": "builds2", "zip_key": "builds2/3DBall.zip"}},
            r"\[unity_build\] folder='builds2': holds the build zip",
        ),
    ],
)
def test_values_that_do_not_fit_together_are_refused(tmp_path, changes, message):
    tables = json.loads(json.dumps(GOOD))
    for table, values in changes.items():
        tables[table].update(values)
    with pytest.raises(ProjectFileError, match=message):
        read_project_file(write(tmp_path / "project.toml", tables))


def test_the_unrendered_template_says_so(tmp_path):
    path = tmp_path / "project.toml"
    path.write_text('[aws]\nregion = "' + project_file.TEMPLATE_MARKER + 'aws_region }}"\n')
    with pytest.raises(UnrenderedTemplateError, match="unrendered template's project.toml.*cookiecutter"):
        read_project_file(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("folder", "is a folder"),
        ("[aws\n", "is not valid TOML"),
        (b"\xff\xfe", "cannot be read"),
        ('aws = "not a table"\n', r"\[aws\] is not a table"),
    ],
)
def test_a_file_that_cannot_be_read_is_named(tmp_path, content, message):
    path = tmp_path / "project.toml"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ProjectFileError, match=message):
        read_project_file(path, ("region",))


def test_every_rule_returns_its_value_unchanged_and_refuses_surrounding_whitespace():
    good = {
        "s3_bucket": "my-builds",
        "aws_region": "us-east-1",
        "instance_type": "ml.c5.2xlarge",
        "ecr_image_uri": GOOD["aws"]["ecr_image_uri"],
        "role": "arn:aws:iam::123456789012:role/R",
        "unity_build_zip_key": "builds/3DBall.zip",
        "unity_build_folder": "unity_build",
        "unity_executable": "3DBall",
        "base_job_name": "robo-ppo",
        "entry_point": "ppo_trainer.py",
        "notebook_instance_type": "ml.t3.medium",
        "notebook_instance_name": "robo",
        "project_slug": "robo",
    }
    for field, value in good.items():
        assert rules.check(field, value) == value
        for bad in (value + "\n", value + " ", "\t" + value, value + "\r"):
            with pytest.raises(rules.RuleError, match=r"at the (start|end): remove it"):
                rules.check(field, bad)


def test_rule_errors_name_the_field_and_show_long_values_cut():
    with pytest.raises(rules.RuleError) as refused:
        rules.bucket("b" * 1000, "s3_bucket")
    assert str(refused.value).startswith("s3_bucket='" + "b" * 120 + "'... (1000 characters): is 1000")
    assert (refused.value.field, refused.value.value) == ("s3_bucket", "b" * 1000)


def test_rules_and_project_file_need_only_the_standard_library():
    """-I -S: no site-packages; the instance types then fall back to their pattern."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from template_runtime import project_file, rules;"
        "print(rules.training_instance_types(), rules.training_instance_type('ml.fake.huge'))"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(REPO_ROOT / "src")], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["None", "ml.fake.huge"]


def test_the_package_init_imports_nothing():
    tree = ast.parse((REPO_ROOT / "src" / "template_runtime" / "__init__.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
