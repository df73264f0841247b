"""cruft: a project made with `cruft create` takes a later template change with `cruft update`, and keeps
the user's own change.

The template is copied (working tree, not the last commit) into a git repository of its own, as a
user's clone would be; cruft reads templates from git. The project is rendered from it with cruft,
committed, changed by "the user", and the template gets a commit of its own; `cruft update` must
merge the template's change and keep the user's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR
from test_rendering import baked_files, expected_files

CRUFT = Path(sys.executable).parent / "cruft"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
USER_LINE = "# the user's own line, kept through template updates\n"
TEMPLATE_LINE = "\nA paragraph the template added later.\n"


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    import os

    completed = subprocess.run(command, cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True,
                               timeout=300, check=False)
    if check:
        assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def commit_all(folder: Path, message: str) -> None:
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-q", "-m", message], folder)


@pytest.fixture
def template_repo(tmp_path) -> Path:
    """The template's working tree as a git repository of its own."""
    if not CRUFT.exists():
        pytest.fail(f"{CRUFT} not found: install requirements-dev.txt (cruft) into this venv")
    repo = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".venvs", "work", "__pycache__", ".pytest_cache", ".ruff_cache"))
    run(["git", "init", "-q", "-b", "main"], repo)
    commit_all(repo, "the template")
    return repo


def cruft_create(template: Path, out: Path, **answers) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    return run([str(CRUFT), "create", "--no-input", "--output-dir", str(out), "--extra-context",
                json.dumps(answers), str(template)], out, check=False)


def test_cruft_create_renders_the_same_files_plus_its_state(template_repo, tmp_path):
    created = cruft_create(template_repo, tmp_path / "out", algorithm="ppo")

    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "out" / "unity_sagemaker_rl"
    assert baked_files(project) == expected_files("ppo") | {".cruft.json"}
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    head = run(["git", "rev-parse", "HEAD"], template_repo).stdout.strip()
    assert (state["template"], state["commit"]) == (str(template_repo), head)
    assert json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))["algorithm"] == "ppo"


def test_cruft_create_checks_answers_with_the_templates_rules(template_repo, tmp_path):
    """cruft passes no _repo_dir: the hook finds rules.py in the folder it was rendered in."""
    refused = cruft_create(template_repo, tmp_path / "out", s3_bucket="abc--x-s3")

    assert refused.returncode != 0
    assert "s3_bucket='abc--x-s3': ends with the reserved suffix '--x-s3'" in refused.stderr
    assert not (tmp_path / "out" / "unity_sagemaker_rl").exists()


def test_cruft_update_merges_a_template_change_and_keeps_the_users(template_repo, tmp_path):
    assert cruft_create(template_repo, tmp_path / "out", algorithm="random").returncode == 0
    project = tmp_path / "out" / "unity_sagemaker_rl"
    run(["git", "init", "-q", "-b", "main"], project)
    commit_all(project, "Start from unity-sagemaker-rl")
    with open(project / "src" / "random_trainer.py", "a", encoding="utf-8") as source:
        source.write(USER_LINE)
    commit_all(project, "the user's change")
    with open(template_repo / "{{cookiecutter.project_slug}}" / "README.md", "a", encoding="utf-8") as readme:
        readme.write(TEMPLATE_LINE)
    commit_all(template_repo, "a template change")

    assert run([str(CRUFT), "check"], project, check=False).returncode != 0  # out of date
    run([str(CRUFT), "update", "--skip-apply-ask"], project)

    assert (project / "README.md").read_text(encoding="utf-8").endswith(TEMPLATE_LINE)
    assert (project / "src" / "random_trainer.py").read_text(encoding="utf-8").endswith(USER_LINE)
    head = run(["git", "rev-parse", "HEAD"], template_repo).stdout.strip()
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == head
    assert not list(project.rglob("*.rej"))
    changed = {line[3:] for line in run(["git", "status", "--porcelain"], project).stdout.splitlines()}
    assert changed == {"README.md", ".cruft.json", ".cookiecutter.json"}  # .cookiecutter.json: its _commit
    assert run([str(CRUFT), "check"], project).returncode == 0
