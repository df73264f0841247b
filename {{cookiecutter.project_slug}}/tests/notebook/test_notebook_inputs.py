"""`make notebook`'s inputs, checked before any AWS request: the GitHub URL, git, names, the role,
the token, the on-start script, and the command line. No AWS here (see test_notebook_instance.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_fixtures import *  # noqa: F401,F403 (fixtures)
from notebook_fixtures import OWNER, ROLE, git

from launcher import notebook_inputs as inputs
from launcher.notebook_inputs import GitHubRepo, Token, UserError
from launcher.notebook_instance import Plan, build_parser, main, resolve_plan
from template_runtime import rules

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(url: str) -> str:
    return inputs.parse_github_url(url, "origin", io.StringIO()).https_url


# ---------------------------------------------------------------- the GitHub URL


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/rl-repo.git",
        "https://github.com/octo/rl-repo",
        "https://github.com/octo/rl-repo/",
        "http://www.github.com/octo/rl-repo.git",
    ],
)
def test_https_remote_forms_become_one_https_url(url):
    assert parse(url) == "https://github.com/octo/rl-repo.git"


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:octo/rl-repo.git",
        "ssh://git@github.com/octo/rl-repo.git",
        "ssh://git@ssh.github.com:443/octo/rl-repo",
        "git@github.com:octo/rl-repo",
    ],
)
def test_ssh_remote_on_github_is_converted_to_https(url):
    assert parse(url) == "https://github.com/octo/rl-repo.git"


def test_ssh_remote_on_an_alias_host_is_refused_with_the_https_url_to_pass():
    with pytest.raises(
        UserError, match=r"host 'github-work'.*--repo-url https://github.com/octo/rl-repo.git"
    ):
        parse("git@github-work:octo/rl-repo.git")


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/octo/rl-repo.git",
        "https://github.com/octo",
        "/srv/git/rl-repo.git",
        "https://github.com/octo/rl/tree/main",
    ],
)
def test_url_that_is_not_a_github_repository_is_refused_naming_it(url):
    with pytest.raises(UserError, match=re.escape(f"not a GitHub repository URL: {url!r}")):
        parse(url)


def test_credentials_in_the_remote_are_dropped_and_never_echoed():
    warnings = io.StringIO()
    repo = inputs.parse_github_url("https://octo:ghp_leaky@github.com/octo/rl-repo.git", "origin", warnings)
    assert repo.https_url == "https://github.com/octo/rl-repo.git"
    assert "carries credentials" in warnings.getvalue() and "ghp_leaky" not in warnings.getvalue()


def test_credentials_in_a_refused_url_are_not_echoed():
    with pytest.raises(UserError) as refused:
        parse("https://octo:ghp_leaky@gitlab.com/octo/rl-repo.git")
    assert "ghp_leaky" not in str(refused.value)


# ---------------------------------------------------------------- names and values


@pytest.mark.parametrize(
    "slug, name",
    [
        ("unity_sagemaker_rl", "unity-sagemaker-rl"),
        ("_private_rl", "private-rl"),
        ("a" * 70, "a" * 63),
        ("rl__2", "rl-2"),
    ],
)
def test_instance_name_from_the_slug_follows_sagemaker_rules(slug, name):
    assert inputs.instance_name_from_slug(slug) == name


@pytest.mark.parametrize("value", ["my_notebook", "-notebook", "notebook-", "n" * 64, ""])
def test_invalid_instance_name_is_refused_with_the_rules(value):
    with pytest.raises(
        UserError,
        match=r"--name=.*: (is not a valid SageMaker name: 1-63 letters, digits and hyphens|is empty)",
    ):
        inputs.check_name("--name", value)


def test_names_derived_from_a_63_character_instance_name_stay_valid():
    plan = Plan(slug="s", region="us-east-1", name="n" * 63, repo=GitHubRepo(OWNER, "r"), branch="main")
    for name in (plan.code_repo_name, plan.lifecycle_name):
        assert inputs.check_name("derived", name) and len(name) <= 63
    assert plan.owns_code_repo(plan.code_repo_name) and not plan.owns_code_repo("n" * 63)


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::1234:role/x",
        "SageMakerRole",
        "arn:aws:s3:::bucket",
    ],
)
def test_role_arn_that_is_not_an_iam_role_is_refused(value):
    with pytest.raises(UserError, match=re.escape(f"--role-arn={value!r}: is not an IAM role ARN")):
        inputs.check_role_arn(value, "us-east-1")


def test_role_arn_from_another_partition_is_refused():
    with pytest.raises(UserError, match="partition 'aws' but region cn-north-1 is in 'aws-cn'"):
        inputs.check_role_arn(ROLE, "cn-north-1")


def test_missing_role_says_where_to_give_one():
    with pytest.raises(
        UserError, match=r"--role-arn arn:aws:iam::<account>.*SAGEMAKER_ROLE_ARN.*project.toml"
    ):
        inputs.check_role_arn(None, "us-east-1")


def test_unknown_instance_type_is_refused_with_types_of_that_family():
    with pytest.raises(
        UserError,
        match=r"--instance-type='ml.t3.huge': is not a SageMaker notebook instance type.*ml.t3.medium",
    ):
        inputs.check_instance_type("ml.t3.huge")


@pytest.mark.parametrize("size", [4, 16385])
def test_volume_size_outside_sagemaker_range_is_refused(size):
    with pytest.raises(UserError, match=f"--volume-size {size} is out of range"):
        inputs.check_volume(size)


@pytest.mark.parametrize("branch", ["feature x", "a..b", "-rf", "topic:"])
def test_invalid_branch_is_refused(branch):
    with pytest.raises(UserError, match="not a valid git branch name"):
        inputs.check_branch(branch)


def test_token_prints_masked():
    token = Token("ghp_abc")
    assert "ghp_abc" not in f"{token} {token!r} {[token]}" and token.reveal() == "ghp_abc"


# ---------------------------------------------------------------- git and the defaults


def options_for(project, github, *args):
    return build_parser().parse_args(
        ["--project-dir", str(project.path), "--role-arn", ROLE, "--github-api-url", github.url, *args]
    )


def plan_for(project, github, *args, warn=None) -> Plan:
    options = options_for(project, github, *args)
    start = Plan(slug=project.slug, region="us-east-1", name=project.instance_name)
    return resolve_plan(options, inputs.read_project(project.path), start, warn or io.StringIO())


def test_defaults_come_from_origin_the_current_branch_and_project_toml(project, github):
    github.add(project.repo_name, private=True)
    plan = plan_for(project, github)
    assert (plan.repo.https_url, plan.branch) == (
        f"https://github.com/{OWNER}/{project.repo_name}.git",
        "main",
    )
    assert (plan.name, plan.instance_type, plan.volume, plan.private) == (
        project.instance_name,
        "ml.t3.medium",
        10,
        True,
    )


def test_ssh_origin_is_used_as_https(project, github):
    git(project.path, "remote", "set-url", "origin", f"git@github.com:{OWNER}/{project.repo_name}.git")
    github.add(project.repo_name, private=False)
    assert plan_for(project, github).repo.https_url == f"https://github.com/{OWNER}/{project.repo_name}.git"


def test_repository_without_origin_says_how_to_push_it(project, github, capsys):
    git(project.path, "remote", "remove", "origin")
    assert main(["--project-dir", str(project.path), "--role-arn", ROLE]) == 1
    assert "no 'origin' remote" in capsys.readouterr().err


def test_folder_that_is_not_a_git_repository_says_how_to_start(tmp_path, no_internet, capsys):
    (tmp_path / "project.toml").write_text('[project]\nslug = "rl"\n[aws]\nregion = "us-east-1"\n')
    assert main(["--project-dir", str(tmp_path), "--role-arn", ROLE]) == 1
    assert "is not a git repository" in capsys.readouterr().err


def test_detached_head_asks_for_a_branch(project, github, capsys):
    git(project.path, "checkout", "-q", "--detach")
    assert main(["--project-dir", str(project.path), "--role-arn", ROLE]) == 1
    assert "pass --branch" in capsys.readouterr().err


def test_branch_not_pushed_is_warned_about(project, github):
    github.add(project.repo_name, private=False)
    git(project.path, "checkout", "-q", "-b", "topic")
    warnings = io.StringIO()
    plan_for(project, github, warn=warnings)
    assert "branch 'topic' is not on origin yet: push it (git push -u origin topic)" in warnings.getvalue()


def test_unpushed_commits_are_warned_about(project, github):
    github.add(project.repo_name, private=False)
    git(project.path, "commit", "-q", "--allow-empty", "-m", "local only")
    warnings = io.StringIO()
    plan_for(project, github, warn=warnings)
    assert "1 commit(s) on 'main' are not pushed" in warnings.getvalue()


def test_missing_project_toml_is_explained(tmp_path, no_internet, capsys):
    assert main(["--project-dir", str(tmp_path)]) == 1
    assert "project.toml not found" in capsys.readouterr().err


# ---------------------------------------------------------------- hostile values (template_runtime/rules.py)

# option -> values refused before any request, through the command line (main) as a user types them
HOSTILE_OPTIONS: dict[str, list[str]] = {
    "--instance-type": [
        "ml.t3.medium\n",
        "ml.t3.medium\r",
        " ml.t3.medium",
        "ml.t3.medium ",
        "ml.t3.mediu\u043c",
        "ml.t3\u200b.medium",
        "ML.T3.MEDIUM",
        "ml.fake.huge",
        "ml.c5n.xlarge",  # a training-only type
    ],
    "--name": ["notebook\n", " notebook", "note\u200bbook", "n\u043etebook", "note_book", "n" * 64],
    "--role-arn": [
        ROLE + "\n",
        " " + ROLE,
        ROLE + "\t",
        ROLE.replace("123", "\u0661\u0662\u0663"),
        ROLE.replace("Maker", "M\u0430ker"),
        "arn:aws-cn:iam::123456789012:role/SageMakerRole",
    ],
    "--region": ["us-east-1\n", "us-east-1 ", "us-\u0435ast-1", "US-EAST-1", "mars"],
}
HOSTILE_OPTION_CASES = [(option, value) for option, values in HOSTILE_OPTIONS.items() for value in values]


@pytest.mark.parametrize(
    ("option", "value"), HOSTILE_OPTION_CASES, ids=[f"{o}={v[:30]!r}" for o, v in HOSTILE_OPTION_CASES]
)
def test_hostile_option_is_refused_naming_it_before_any_request(project, no_internet, capsys, option, value):
    args = ["--project-dir", str(project.path), "--role-arn", ROLE, "--visibility", "public", "--dry-run"]

    code = main([*args, option, value], clients=object())  # any request would fail on object()

    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"error: {option}={rules.shown(value)}: "), err


def test_notebook_instance_type_is_checked_against_botocores_notebook_types():
    assert inputs.check_instance_type("ml.t3.medium") == "ml.t3.medium"
    assert "ml.t3.medium" in rules.notebook_instance_types()
    assert "ml.c5n.xlarge" not in rules.notebook_instance_types()


def test_role_from_the_environment_is_refused_naming_the_variable(project, github, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE + "\n")
    options = build_parser().parse_args(["--project-dir", str(project.path), "--github-api-url", github.url])
    with pytest.raises(
        UserError, match=r"^\$SAGEMAKER_ROLE_ARN='arn:aws:iam::123456789012:role/SageMakerRole\\n'"
    ):
        resolve_plan(options, inputs.read_project(project.path), project.plan(), io.StringIO())


# project.toml edited by hand: refused naming the file, the table and the key
HOSTILE_PROJECT_LINES = [
    ("project", "slug", "My-Project"),
    ("project", "slug", "rl\n"),
    ("aws", "region", "us-east-1\n"),
    ("aws", "region", "us-\u0435ast-1"),
    ("aws", "role_arn", ROLE + " "),
    ("aws", "role_arn", "SageMakerRole"),
]


@pytest.mark.parametrize(
    ("table", "key", "value"),
    HOSTILE_PROJECT_LINES,
    ids=[f"{t}.{k}={v!r}" for t, k, v in HOSTILE_PROJECT_LINES],
)
def test_bad_project_toml_value_is_refused_naming_table_and_key(
    project, no_internet, capsys, table, key, value
):
    path = project.path / "project.toml"
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{key} = ")]
    at = lines.index(f"[{table}]") + 1
    lines.insert(at, f"{key} = {json.dumps(value)}")  # a JSON string without surrogates is a TOML string
    path.write_text("\n".join(lines) + "\n")

    code = main(["--project-dir", str(project.path), "--role-arn", ROLE, "--dry-run"], clients=object())

    err = capsys.readouterr().err
    assert code == 1 and str(path) in err and f"[{table}] {key}={rules.shown(value)}: " in err, err


def test_role_arn_in_project_toml_is_used_when_no_option_or_variable_gives_one(project, github, monkeypatch):
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN", raising=False)
    path = project.path / "project.toml"
    path.write_text(path.read_text() + f'role_arn = "{ROLE}"\n')  # the [aws] table is the last one
    options = build_parser().parse_args(
        ["--project-dir", str(project.path), "--github-api-url", github.url, "--visibility", "public"]
    )
    plan = resolve_plan(options, inputs.read_project(project.path), project.plan(), io.StringIO())
    assert plan.role_arn == ROLE


# ---------------------------------------------------------------- GitHub: public or private, and the token


def test_auto_visibility_asks_github(project, github):
    github.add(project.repo_name, private=False)
    github.add("secret-rl", private=True)
    assert inputs.detect_visibility(GitHubRepo(OWNER, project.repo_name), github.url) == "public"
    assert inputs.detect_visibility(GitHubRepo(OWNER, "secret-rl"), github.url) == "private"
    assert all(not sent_token for _, sent_token in github.requests)


def test_unreachable_github_asks_for_the_visibility_flag(no_internet):
    with pytest.raises(UserError, match="pass --visibility public or --visibility private"):
        inputs.detect_visibility(GitHubRepo(OWNER, "rl"), "http://127.0.0.1:9")


def test_visibility_flag_skips_github(project, github):
    plan = plan_for(project, github, "--visibility", "private")
    assert plan.private and github.requests == []


def test_token_without_access_to_the_repository_asks_for_the_repo_scope(github):
    github.add("other", private=True, token="ghp_right")
    with pytest.raises(UserError, match="cannot read github.com/octo/rl.*'repo' scope"):
        inputs.check_token_with_github(GitHubRepo(OWNER, "rl"), Token("ghp_right"), github.url, io.StringIO())


# ---------------------------------------------------------------- the on-start script


def test_on_start_script_is_valid_bash_within_sagemaker_size_limit():
    script = inputs.on_start_script("/home/ec2-user/SageMaker/rl-repo")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert len(base64.b64encode(script.encode())) <= 16384


def test_on_start_script_hands_the_build_to_ec2_user_in_the_background():
    last_line = inputs.on_start_script("/home/ec2-user/SageMaker/rl-repo").strip().splitlines()[-1]
    assert last_line.startswith("nohup sudo -u ec2-user") and last_line.endswith("&")  # 5-minute limit


def fake_conda(folder: Path, log: Path) -> Path:
    """A conda whose `create --prefix X` makes X/bin/python, a python that only logs its arguments."""
    conda = folder / "conda"
    conda.write_text(f"""#!/bin/bash
echo "conda $*" >> {log}
prefix="${{@: -5:1}}"
mkdir -p "$prefix/bin"
printf '#!/bin/bash\\necho "python $*" >> {log}\\n' > "$prefix/bin/python"
chmod +x "$prefix/bin/python"
""")
    conda.chmod(conda.stat().st_mode | stat.S_IXUSR)
    return conda


def test_kernel_setup_builds_the_env_once_and_registers_the_kernel_every_start(tmp_path):
    clone, home, log = tmp_path / "SageMaker" / "rl-repo", tmp_path / "SageMaker", tmp_path / "calls.log"
    (clone / "requirements").mkdir(parents=True)
    (clone / "requirements" / "launcher.txt").write_text("sagemaker==3.27.0\n")
    script = tmp_path / "setup.sh"
    script.write_text(inputs.kernel_setup_script(str(clone), home=str(home)))
    environment = {**os.environ, "CONDA_EXE": str(fake_conda(tmp_path, log))}

    def start() -> None:
        subprocess.run(["bash", str(script)], env=environment, check=True, capture_output=True, timeout=60)

    start()
    start()
    (clone / "requirements" / "launcher.txt").write_text("sagemaker==3.28.0\n")
    start()

    calls = log.read_text().splitlines()
    assert sum(call.startswith("conda create") for call in calls) == 1
    assert sum("-m pip install --quiet -r" in call and "launcher.txt" in call for call in calls) == 2
    assert sum(f"-m ipykernel install --user --name {inputs.KERNEL_NAME}" in call for call in calls) == 3


# ---------------------------------------------------------------- the command line


def test_help_explains_every_option_and_runs_from_any_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "launcher.notebook_instance", "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in (
        "--repo-url",
        "--branch",
        "--visibility",
        "--token-env",
        "--name",
        "--instance-type",
        "--volume-size",
        "--role-arn",
        "--region",
        "--dry-run",
        "--stop",
        "--delete",
        "--all",
        "--yes",
        "--poll-seconds",
    ):
        assert re.search(rf"^\s+{option}\b.*\S", result.stdout, re.MULTILINE), option
    assert "ml.t3.medium" in result.stdout and "GITHUB_TOKEN" in result.stdout


def test_all_without_delete_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--all"])
    assert exited.value.code == 2 and "--all only goes with --delete" in capsys.readouterr().err


def test_readme_and_makefile_name_make_notebook():
    assert re.search(r"^notebook:", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE), (
        "Makefile: add the target"
    )
    assert "make notebook" in (REPO_ROOT / "README.md").read_text(), "README.md: add the paragraph"
