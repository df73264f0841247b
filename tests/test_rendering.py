"""Rendering: every supported combination bakes into a clean, complete, parseable repository."""

from __future__ import annotations

import json
import py_compile
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ALGORITHMS, LEFTOVER_JINJA, TEMPLATE_DIR, bake, text_files

REGIONS_TO_BAKE = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"]

# What each algorithm choice adds; random_trainer.py is always there.
ALGORITHM_FILES = {
    "ppo": {"src/ppo_trainer.py", "tests/trainers/test_ppo_trainer.py", "benchmarks/bench_trainers.py"},
    "tf": {"src/tf_trainer.py", "tests/trainers/test_tf_trainer.py"},
}
LEARNING_SUPPORT_FILES = {"src/template_runtime/tf_blocks.py", "tests/trainers/learning_helpers.py"}


def template_files() -> set[str]:
    root = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts
    }


def expected_files(algorithm: str) -> set[str]:
    files = template_files() | {".cookiecutter.json"}
    for owner, owned in ALGORITHM_FILES.items():
        if algorithm not in (owner, "all"):
            files -= owned
    if algorithm == "random":
        files -= LEARNING_SUPPORT_FILES
    return files


def baked_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts
    }


@pytest.mark.parametrize("region", REGIONS_TO_BAKE)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_combination_bakes_a_clean_repository(cookies, algorithm, region):
    result = bake(cookies, algorithm=algorithm, aws_region=region)

    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert baked_files(project) == expected_files(algorithm)
    for path in text_files(project):
        text = path.read_text(encoding="utf-8")
        assert not LEFTOVER_JINJA.search(text), f"Jinja left in {path.relative_to(project)}"
        if path.suffix == ".py":
            py_compile.compile(str(path), cfile=str(path.with_suffix(".pyc-check")), doraise=True)
            path.with_suffix(".pyc-check").unlink()
        elif path.suffix == ".ipynb":
            nbformat.validate(nbformat.read(path, as_version=4))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)
        elif path.suffix == ".json":
            json.loads(text)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_project_toml_holds_the_answers(cookies, algorithm):
    result = bake(cookies, algorithm=algorithm, aws_region="eu-west-1", s3_bucket="my-builds.eu",
                  ecr_image_uri="111122223333.dkr.ecr.eu-west-1.amazonaws.com/rl/unity@sha256:" + "a" * 64,
                  unity_build_zip_key="games/Walker v2.zip", unity_build_folder="env/walker",
                  unity_executable="Walker.x86_64", instance_type="ml.g5.xlarge")

    config = tomllib.loads((result.project_path / "project.toml").read_text(encoding="utf-8"))
    assert config["aws"] == {
        "region": "eu-west-1",
        "s3_bucket": "my-builds.eu",
        "ecr_image_uri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/rl/unity@sha256:" + "a" * 64,
        "instance_type": "ml.g5.xlarge",
    }
    assert config["unity_build"] == {"zip_key": "games/Walker v2.zip", "folder": "env/walker",
                                     "executable": "Walker.x86_64"}
    entry_point = {"tf": "tf_trainer.py", "random": "random_trainer.py"}.get(algorithm, "ppo_trainer.py")
    assert config["training"] == {"algorithm": algorithm, "entry_point": entry_point}


HOSTILE_TEXT = {
    "project_name": 'Robo "Quote" \'Single\' \\back\\slash\n# not a heading',
    "project_description": "{% raw %}{{ cookiecutter.s3_bucket }} {% if x %}{% endraw %} $(touch PWNED) `touch PWNED` '''\"\"\"",
    "author_name": "O'Brien & <Sons>\\n\r\nline2 \u00e9\u4e2d",
}


def test_hostile_free_text_renders_inert(cookies):
    result = bake(cookies, project_slug="robo", **HOSTILE_TEXT)

    assert result.exit_code == 0, result.exception
    project = result.project_path
    typed = {  # what the user typed: the {% raw %} wrapper is how extra_context carries literal Jinja
        "project_name": HOSTILE_TEXT["project_name"],
        "project_description": "{{ cookiecutter.s3_bucket }} {% if x %} $(touch PWNED) `touch PWNED` '''\"\"\"",
        # cookiecutter renders extra_context values as templates, and Jinja folds \r\n into \n there
        "author_name": HOSTILE_TEXT["author_name"].replace("\r\n", "\n"),
    }
    assert {key: result.context[key] for key in typed} == typed
    answers = tomllib.loads((project / "project.toml").read_text(encoding="utf-8"))["project"]
    assert (answers["name"], answers["description"], answers["author"]) == (
        typed["project_name"], typed["project_description"], typed["author_name"])
    workflow = yaml.safe_load((project / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
    assert workflow["name"] == typed["project_name"] + " tests"
    kept = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert {key: kept[key] for key in typed} == typed
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# Robo \"Quote\" 'Single' \\\\back\\\\slash \\# not a heading\n")
    assert not LEFTOVER_JINJA.search(readme)
    assert not list(project.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))


def test_post_gen_hook_prints_the_next_steps(cookies, capfd):
    result = bake(cookies)

    assert result.exit_code == 0, result.exception
    out = capfd.readouterr().out
    for step in ("make demo", "make test", "git push", "SageMaker notebook instance", "job_launcher.ipynb"):
        assert step in out


def test_answers_file_keeps_no_local_paths(baked_default):
    answers = json.loads((baked_default / ".cookiecutter.json").read_text(encoding="utf-8"))

    assert not {"_output_dir", "_repo_dir", "_checkout"} & answers.keys()
    assert answers["project_slug"] == "unity_sagemaker_rl"


def test_rendered_repository_contains_no_credentials(baked_default):
    for path in text_files(baked_default):
        text = path.read_text(encoding="utf-8")
        assert "AKIA" not in text and "aws_secret_access_key =" not in text, path


def test_gitignore_keeps_builds_outputs_and_credentials_out(baked_default):
    ignored = (baked_default / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in ("builds/", "runs/", ".venv*/", ".env", "credentials", "/unity_build/", "*.pem"):
        assert pattern in ignored


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_baked_repository_passes_its_own_linter(cookies, algorithm):
    """Users copy this code: it should pass the ruff rules the rendered pyproject.toml sets."""
    project = bake(cookies, algorithm=algorithm).project_path

    completed = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project,
                               capture_output=True, text=True)

    assert completed.returncode == 0, completed.stdout + completed.stderr
