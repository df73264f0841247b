"""`make notebook` against AWS: moto_server for what it implements, botocore's Stubber (with every
request checked against the service model) for the rest. See notebook_fixtures.py."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY
from notebook_fixtures import *  # noqa: F401,F403 (fixtures)
from notebook_fixtures import (
    NEW_TOKEN,
    OWNER,
    ROLE,
    TOKEN,
    TOOLS,
    FakeTerminal,
    describe,
    expect_unchanged_repository,
    first_run,
)

from launcher.notebook_aws import Aws, Clients
from launcher.notebook_inputs import UserError

MUTATING = re.compile(r"(Create|Update|Put|Delete|Start|Stop|Restore)\w+")


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


# ---------------------------------------------------------------- creating


def test_first_run_creates_secret_repository_lifecycle_config_and_instance(private_repo, capsys):
    plan = private_repo.project.plan()
    private_repo.code_repository_missing(plan.code_repo_name)
    private_repo.stub.add_response(
        "create_code_repository",
        {"CodeRepositoryArn": private_repo.repo_arn("x")},
        {
            "CodeRepositoryName": plan.code_repo_name,
            "Tags": ANY,
            "GitConfig": {
                "RepositoryUrl": f"https://github.com/{OWNER}/{plan.repo.name}.git",
                "Branch": "main",
                "SecretArn": ANY,
            },
        },
    )
    private_repo.sign_in_url(plan.name)

    assert private_repo.run() == 0

    assert private_repo.writes == [
        "CreateSecret",
        "CreateCodeRepository",
        "CreateNotebookInstanceLifecycleConfig",
        "CreateNotebookInstance",
    ]
    secret = private_repo.secrets.get_secret_value(SecretId=plan.secret_name)
    assert secret["SecretString"] == f'{{"username": "{OWNER}", "password": "{TOKEN}"}}'
    assert private_repo.params("CreateCodeRepository")["GitConfig"]["SecretArn"] == secret["ARN"]
    instance = describe(private_repo)
    assert (instance["InstanceType"], instance["VolumeSizeInGB"], instance["RoleArn"]) == (
        "ml.t3.medium",
        10,
        ROLE,
    )
    assert instance["DefaultCodeRepository"] == plan.code_repo_name
    assert instance["NotebookInstanceLifecycleConfigName"] == plan.lifecycle_name
    private_repo.stub.assert_no_pending_responses()


def test_lifecycle_config_installs_launcher_requirements_from_the_clone(private_repo, capsys):
    first_run(private_repo, capsys)
    config = private_repo.moto.describe_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=private_repo.project.plan().lifecycle_name
    )
    script = base64.b64decode(config["OnStart"][0]["Content"]).decode()
    assert f"/home/ec2-user/SageMaker/{private_repo.project.repo_name}/requirements/launcher.txt" in script
    assert "nohup" in script and "ipykernel install" in script


def test_public_repository_gets_no_secret(notebook, capsys):
    notebook.github.add(notebook.project.repo_name, private=False)
    plan = notebook.project.plan()
    notebook.code_repository_missing(plan.code_repo_name)
    notebook.code_repository_created(plan.code_repo_name, notebook.git_config(secret=False))
    notebook.sign_in_url(plan.name)

    assert notebook.run() == 0

    assert not [op for op in notebook.operations if op.endswith("Secret") or op == "GetSecretValue"]
    assert "public" in capsys.readouterr().out


def test_prints_jupyterlab_url_and_launcher_notebook_path(private_repo, capsys):
    plan = private_repo.expect_new_code_repository()
    private_repo.sign_in_url(plan.name)

    assert private_repo.run() == 0

    out = capsys.readouterr().out
    assert (
        f"https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1"
        f"#/notebook-instances/openNotebook/{plan.name}?view=lab"
    ) in out
    assert (
        f"https://{plan.name}.notebook.us-east-1.sagemaker.aws/lab/tree/{plan.repo.name}/job_launcher.ipynb"
        in out
    )
    assert f"/home/ec2-user/SageMaker/{plan.repo.name}/job_launcher.ipynb" in out
    assert "authToken=presigned" in out


def test_waiting_shows_each_status_until_in_service(private_repo, capsys):
    statuses = iter(["Pending", "Pending", "InService"])
    private_repo.after_describe(
        lambda found: found.update(NotebookInstanceStatus=next(statuses, "InService"))
    )
    plan = private_repo.expect_new_code_repository()
    private_repo.sign_in_url(plan.name)

    assert private_repo.run() == 0

    out = capsys.readouterr().out
    assert f"{plan.name}: Pending (0:00)" in out and f"{plan.name}: InService (0:00)" in out
    assert private_repo.operations.count("DescribeNotebookInstance") == 4  # exists? + 3 polls


def test_instance_that_fails_while_starting_reports_the_reason(private_repo, capsys):
    private_repo.after_describe(
        lambda found: found.update(
            NotebookInstanceStatus="Failed", FailureReason="Unable to clone the git repository"
        )
    )
    private_repo.expect_new_code_repository()

    assert private_repo.run() == 1

    err = capsys.readouterr().err
    assert "Unable to clone the git repository" in err and "'repo' scope" in err


# ---------------------------------------------------------------- running again


def test_second_run_sends_no_create_or_update_call(private_repo, capsys):
    first_run(private_repo, capsys)
    expect_unchanged_repository(private_repo)
    private_repo.sign_in_url(private_repo.project.instance_name)

    assert private_repo.run() == 0

    assert [op for op in private_repo.operations if MUTATING.fullmatch(op)] == [
        "CreatePresignedNotebookInstanceUrl"
    ]
    private_repo.stub.assert_no_pending_responses()


def test_second_run_without_token_keeps_the_stored_secret(private_repo, capsys, monkeypatch):
    first_run(private_repo, capsys)
    monkeypatch.delenv("GITHUB_TOKEN")
    expect_unchanged_repository(private_repo)
    private_repo.sign_in_url(private_repo.project.instance_name)

    assert private_repo.run(stdin=FakeTerminal("")) == 0  # a terminal, yet no prompt: nothing to ask for

    assert private_repo.writes == []
    assert "keeps the stored token" in capsys.readouterr().out


def test_new_token_updates_only_the_secret(private_repo, capsys, monkeypatch):
    first_run(private_repo, capsys)
    private_repo.github.add(private_repo.project.repo_name, private=True, token=NEW_TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", NEW_TOKEN)
    expect_unchanged_repository(private_repo)
    private_repo.sign_in_url(private_repo.project.instance_name)

    assert private_repo.run() == 0

    assert private_repo.writes == ["PutSecretValue"]
    stored = private_repo.secrets.get_secret_value(SecretId=private_repo.project.plan().secret_name)
    assert NEW_TOKEN in stored["SecretString"]


def test_changed_instance_type_stops_updates_and_starts_the_instance(private_repo, capsys):
    first_run(private_repo, capsys)
    name = private_repo.project.instance_name
    expect_unchanged_repository(private_repo)
    private_repo.stub.add_response(
        "update_notebook_instance", {}, {"NotebookInstanceName": name, "InstanceType": "ml.t3.large"}
    )
    private_repo.sign_in_url(name)

    assert private_repo.run("--instance-type", "ml.t3.large") == 0

    assert private_repo.writes == ["StopNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance"]
    assert "InstanceType: ml.t3.medium -> ml.t3.large" in capsys.readouterr().out


def test_changed_branch_links_a_new_code_repository_and_deletes_the_old(private_repo, capsys):
    first_run(private_repo, capsys)
    old, new = private_repo.project.plan(), private_repo.project.plan(branch="dev")
    private_repo.code_repository_missing(new.code_repo_name)
    private_repo.code_repository_created(
        new.code_repo_name, private_repo.git_config(secret=True, branch="dev")
    )
    private_repo.stub.add_response(
        "update_notebook_instance",
        {},
        {"NotebookInstanceName": old.name, "DefaultCodeRepository": new.code_repo_name},
    )
    private_repo.stub.add_response("delete_code_repository", {}, {"CodeRepositoryName": old.code_repo_name})
    private_repo.sign_in_url(old.name)

    assert private_repo.run("--branch", "dev") == 0

    assert private_repo.writes == [
        "CreateCodeRepository",
        "StopNotebookInstance",
        "UpdateNotebookInstance",
        "DeleteCodeRepository",
        "StartNotebookInstance",
    ]
    private_repo.stub.assert_no_pending_responses()


def test_changed_on_start_script_updates_the_lifecycle_config_in_place(private_repo, capsys):
    first_run(private_repo, capsys)
    plan = private_repo.project.plan()
    private_repo.moto.delete_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=plan.lifecycle_name
    )
    private_repo.moto.create_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=plan.lifecycle_name,
        OnStart=[{"Content": base64.b64encode(b"#!/bin/bash\necho older\n").decode()}],
    )
    expect_unchanged_repository(private_repo)
    private_repo.stub.add_response(
        "update_notebook_instance_lifecycle_config",
        {},
        {"NotebookInstanceLifecycleConfigName": plan.lifecycle_name, "OnStart": ANY},
    )
    private_repo.sign_in_url(plan.name)

    assert private_repo.run() == 0

    assert private_repo.writes == ["UpdateNotebookInstanceLifecycleConfig"]
    assert "runs at the next start" in capsys.readouterr().out


def test_stopped_instance_is_started(private_repo, capsys):
    first_run(private_repo, capsys)
    private_repo.moto.stop_notebook_instance(NotebookInstanceName=private_repo.project.instance_name)
    expect_unchanged_repository(private_repo)
    private_repo.sign_in_url(private_repo.project.instance_name)

    assert private_repo.run() == 0

    assert private_repo.writes == ["StartNotebookInstance"]
    assert describe(private_repo)["NotebookInstanceStatus"] == "InService"


def test_smaller_volume_is_refused(private_repo, capsys):
    first_run(private_repo, capsys)
    expect_unchanged_repository(private_repo)

    assert private_repo.run("--volume-size", "5") == 1

    assert "--volume-size 5 is smaller than" in capsys.readouterr().err
    assert private_repo.writes == []


# ---------------------------------------------------------------- a name already taken


def test_name_taken_by_an_instance_of_another_repository_is_refused(private_repo, capsys):
    name = private_repo.project.instance_name
    private_repo.moto.create_notebook_instance(
        NotebookInstanceName=name,
        InstanceType="ml.t3.medium",
        RoleArn=ROLE,
        DefaultCodeRepository="someone-elses-repo",
    )
    private_repo.expect_new_code_repository()

    assert private_repo.run() == 1

    err = capsys.readouterr().err
    assert f"the name {name} is taken" in err and "someone-elses-repo" in err and "--name" in err
    assert "UpdateNotebookInstance" not in private_repo.operations


def test_name_taken_by_an_instance_being_deleted_is_refused(private_repo, capsys):
    first_run(private_repo, capsys)
    private_repo.after_describe(lambda found: found.update(NotebookInstanceStatus="Deleting"))
    expect_unchanged_repository(private_repo)

    assert private_repo.run() == 1

    err = capsys.readouterr().err
    assert "is Deleting, a state this command cannot change" in err and "--name" in err
    assert private_repo.writes == []


# ---------------------------------------------------------------- the token


def test_private_repository_without_token_says_how_to_make_one(notebook, capsys):
    notebook.github.add(notebook.project.repo_name, private=True, token=TOKEN)

    assert notebook.run() == 1

    err = capsys.readouterr().err
    assert (
        "GITHUB_TOKEN is not set" in err and "github.com/settings/tokens/new" in err and "'repo' scope" in err
    )
    assert notebook.writes == []


def test_token_is_read_from_a_hidden_prompt_in_a_terminal(notebook, capsys, monkeypatch):
    notebook.github.add(notebook.project.repo_name, private=True, token=TOKEN)
    prompts = []
    monkeypatch.setattr(
        "launcher.notebook_inputs.getpass.getpass", lambda prompt: prompts.append(prompt) or TOKEN
    )
    plan = notebook.expect_new_code_repository()
    notebook.sign_in_url(plan.name)

    assert notebook.run(stdin=FakeTerminal("")) == 0

    assert len(prompts) == 1 and "hidden" in prompts[0]
    assert TOKEN in notebook.secrets.get_secret_value(SecretId=plan.secret_name)["SecretString"]


def test_token_github_rejects_stops_before_anything_is_created(notebook, capsys, monkeypatch):
    notebook.github.add(notebook.project.repo_name, private=True, token=TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", NEW_TOKEN)  # not the one GitHub knows

    assert notebook.run() == 1

    assert "GitHub rejected the token" in capsys.readouterr().err
    assert notebook.writes == []


def test_token_never_appears_in_output_or_in_any_file(private_repo, capsys, monkeypatch, tmp_path):
    before = {path: path.read_bytes() for path in files_under(tmp_path)}
    outputs = []
    plan = private_repo.expect_new_code_repository()
    private_repo.sign_in_url(plan.name)
    assert private_repo.run() == 0
    outputs.append(capsys.readouterr())
    monkeypatch.setenv("GITHUB_TOKEN", NEW_TOKEN)  # an update, a dry run and an error, with a second token
    private_repo.github.add(private_repo.project.repo_name, private=True, token=NEW_TOKEN)
    expect_unchanged_repository(private_repo)
    assert private_repo.run("--dry-run") == 0
    outputs.append(capsys.readouterr())
    private_repo.deny(private_repo.secrets, "PutSecretValue")
    assert private_repo.run() == 1
    outputs.append(capsys.readouterr())

    for captured in outputs:
        for token in (TOKEN, NEW_TOKEN):
            assert token not in captured.out and token not in captured.err
    changed = [path for path in files_under(tmp_path) if before.get(path) != path.read_bytes()]
    assert not [
        path
        for path in changed
        if TOKEN.encode() in path.read_bytes() or NEW_TOKEN.encode() in path.read_bytes()
    ]
    assert not [path for path in files_under(tmp_path) if path not in before]  # it writes no file at all


# ---------------------------------------------------------------- --dry-run


def test_dry_run_prints_every_request_with_the_token_masked_and_changes_nothing(private_repo, capsys):
    plan = private_repo.project.plan()
    private_repo.code_repository_missing(plan.code_repo_name)

    assert private_repo.run("--dry-run") == 0

    out = capsys.readouterr().out
    assert private_repo.writes == []
    for operation in (
        "CreateSecret",
        "CreateCodeRepository",
        "CreateNotebookInstanceLifecycleConfig",
        "CreateNotebookInstance",
    ):
        assert f"would send {'secretsmanager' if 'Secret' in operation else 'sagemaker'}:{operation}" in out
    for operation in ("DescribeSecret", "DescribeCodeRepository", "DescribeNotebookInstance"):
        assert f":{operation} " in out
    assert '\\"password\\": \\"****\\"' in out and TOKEN not in out
    assert "ipykernel install" in out  # the on-start script, decoded
    with pytest.raises(private_repo.secrets.exceptions.ResourceNotFoundException):
        private_repo.secrets.describe_secret(SecretId=plan.secret_name)


# ---------------------------------------------------------------- AWS errors


def test_access_denied_on_create_names_the_action_and_pass_role(private_repo, capsys):
    private_repo.deny(private_repo.moto, "CreateNotebookInstance")
    private_repo.expect_new_code_repository()

    assert private_repo.run() == 1

    err = capsys.readouterr().err
    assert "lacks the IAM permission 'sagemaker:CreateNotebookInstance'" in err and "iam:PassRole" in err


def test_access_denied_on_a_stubbed_call_names_the_action(private_repo, capsys):
    private_repo.stub.add_client_error(
        "describe_code_repository",
        "AccessDeniedException",
        "User: x is not authorized to perform: sagemaker:DescribeCodeRepository on resource: y",
        400,
    )

    assert private_repo.run() == 1

    assert "'sagemaker:DescribeCodeRepository'" in capsys.readouterr().err
    assert private_repo.writes == ["CreateSecret"]


def test_denied_sign_in_link_is_only_a_warning(private_repo, capsys):
    private_repo.expect_new_code_repository()
    private_repo.stub.add_client_error(
        "create_presigned_notebook_instance_url", "AccessDeniedException", "denied", 400
    )

    assert private_repo.run() == 0

    captured = capsys.readouterr()
    assert "sagemaker:CreatePresignedNotebookInstanceUrl" in captured.err and "JupyterLab:" in captured.out


def test_missing_credentials_are_explained(private_repo, capsys, monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable)
    private_repo.secrets = boto3.Session(region_name="us-east-1").client("secretsmanager")

    assert private_repo.run() == 1

    assert "no AWS credentials found" in capsys.readouterr().err


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonSageMaker-rl-github-AbCdEf"
OPERATIONS = {  # every request the tools send, with valid parameters
    ("sagemaker", "DescribeNotebookInstance"): {"NotebookInstanceName": "rl"},
    ("sagemaker", "CreateNotebookInstance"): {
        "NotebookInstanceName": "rl",
        "InstanceType": "ml.t3.medium",
        "RoleArn": ROLE,
    },
    ("sagemaker", "UpdateNotebookInstance"): {"NotebookInstanceName": "rl", "InstanceType": "ml.t3.large"},
    ("sagemaker", "StartNotebookInstance"): {"NotebookInstanceName": "rl"},
    ("sagemaker", "StopNotebookInstance"): {"NotebookInstanceName": "rl"},
    ("sagemaker", "DeleteNotebookInstance"): {"NotebookInstanceName": "rl"},
    ("sagemaker", "CreatePresignedNotebookInstanceUrl"): {"NotebookInstanceName": "rl"},
    ("sagemaker", "DescribeCodeRepository"): {"CodeRepositoryName": "rl-0123abcd"},
    ("sagemaker", "CreateCodeRepository"): {
        "CodeRepositoryName": "rl-0123abcd",
        "GitConfig": {"RepositoryUrl": "https://github.com/octo/rl.git"},
    },
    ("sagemaker", "UpdateCodeRepository"): {
        "CodeRepositoryName": "rl-0123abcd",
        "GitConfig": {"SecretArn": SECRET_ARN},
    },
    ("sagemaker", "DeleteCodeRepository"): {"CodeRepositoryName": "rl-0123abcd"},
    ("sagemaker", "ListCodeRepositories"): {"NameContains": "rl-"},
    ("sagemaker", "DescribeNotebookInstanceLifecycleConfig"): {
        "NotebookInstanceLifecycleConfigName": "rl-lc"
    },
    ("sagemaker", "CreateNotebookInstanceLifecycleConfig"): {
        "NotebookInstanceLifecycleConfigName": "rl-lc",
        "OnStart": [{"Content": "IyEvYmluL2Jhc2gK"}],
    },
    ("sagemaker", "UpdateNotebookInstanceLifecycleConfig"): {
        "NotebookInstanceLifecycleConfigName": "rl-lc",
        "OnStart": [{"Content": "IyEvYmluL2Jhc2gK"}],
    },
    ("sagemaker", "DeleteNotebookInstanceLifecycleConfig"): {"NotebookInstanceLifecycleConfigName": "rl-lc"},
    ("secretsmanager", "DescribeSecret"): {"SecretId": "AmazonSageMaker-rl-github"},
    ("secretsmanager", "CreateSecret"): {"Name": "AmazonSageMaker-rl-github", "SecretString": "{}"},
    ("secretsmanager", "GetSecretValue"): {"SecretId": SECRET_ARN},
    ("secretsmanager", "PutSecretValue"): {"SecretId": SECRET_ARN, "SecretString": "{}"},
    ("secretsmanager", "RestoreSecret"): {"SecretId": "AmazonSageMaker-rl-github"},
    ("secretsmanager", "DeleteSecret"): {
        "SecretId": "AmazonSageMaker-rl-github",
        "ForceDeleteWithoutRecovery": True,
    },
}


def test_every_request_the_tools_send_is_in_the_access_denied_table():
    source = "".join(path.read_text() for path in TOOLS.glob("notebook_*.py"))
    sent = set(re.findall(r'\.(?:read|write)\(\s*"(sagemaker|secretsmanager)",\s*"(\w+)"', source))
    assert sent == set(OPERATIONS)


@pytest.mark.parametrize("service, operation", sorted(OPERATIONS))
def test_access_denied_names_the_missing_iam_action(notebook, service, operation):
    client = notebook.moto if service == "sagemaker" else notebook.secrets
    notebook.deny(client, operation)
    aws = Aws(Clients(notebook.moto, notebook.secrets), dry_run=False, out=io.StringIO())
    send = aws.read if re.match(r"Describe|Get|List", operation) else aws.write

    with pytest.raises(UserError) as denied:
        send(service, operation, **OPERATIONS[service, operation])

    assert f"lacks the IAM permission '{service}:{operation}'" in str(denied.value)
