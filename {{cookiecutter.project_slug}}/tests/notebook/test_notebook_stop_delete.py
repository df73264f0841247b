"""`make notebook --stop` and `--delete [--all]`: confirmation first, then only what was asked for.
moto_server holds the instance, lifecycle configuration and secret; the Stubber the code repositories."""

from __future__ import annotations

from notebook_fixtures import *  # noqa: F401,F403 (fixtures)
from notebook_fixtures import FakeTerminal, describe, first_run


def test_stop_asks_first_then_stops(private_repo, capsys):
    first_run(private_repo, capsys)

    assert private_repo.run("--stop", stdin=FakeTerminal("y\n")) == 0

    assert "Stop notebook instance" in capsys.readouterr().out
    assert describe(private_repo)["NotebookInstanceStatus"] == "Stopped"


def test_stop_declined_changes_nothing(private_repo, capsys):
    first_run(private_repo, capsys)

    assert private_repo.run("--stop", stdin=FakeTerminal("n\n")) == 0

    assert private_repo.writes == [] and describe(private_repo)["NotebookInstanceStatus"] == "InService"


def test_stop_without_a_terminal_needs_yes(private_repo, capsys):
    first_run(private_repo, capsys)

    assert private_repo.run("--stop") == 1

    assert "pass --yes" in capsys.readouterr().err and private_repo.writes == []


def test_stop_of_a_missing_instance_names_it(notebook, capsys):
    assert notebook.run("--stop", "--yes") == 1

    assert f"no notebook instance named {notebook.project.instance_name}" in capsys.readouterr().err


def test_delete_removes_only_the_instance(private_repo, capsys):
    first_run(private_repo, capsys)
    plan = private_repo.project.plan()

    assert private_repo.run("--delete", "--yes") == 0

    assert private_repo.writes == ["StopNotebookInstance", "DeleteNotebookInstance"]
    assert private_repo.secrets.describe_secret(SecretId=plan.secret_name)
    assert private_repo.moto.describe_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=plan.lifecycle_name
    )


def test_delete_all_removes_repository_lifecycle_config_and_secret(private_repo, capsys):
    first_run(private_repo, capsys)
    plan = private_repo.project.plan()
    now = "2026-11-24T00:00:00Z"
    private_repo.stub.add_response(
        "list_code_repositories",
        {
            "CodeRepositorySummaryList": [
                {
                    "CodeRepositoryName": name,
                    "CodeRepositoryArn": private_repo.repo_arn(name),
                    "CreationTime": now,
                    "LastModifiedTime": now,
                }
                for name in (plan.code_repo_name, "unrelated-repo")
            ]
        },
        {"NameContains": plan.code_repo_prefix},
    )
    private_repo.stub.add_response("delete_code_repository", {}, {"CodeRepositoryName": plan.code_repo_name})

    assert private_repo.run("--delete", "--all", stdin=FakeTerminal("yes\n")) == 0

    assert private_repo.writes == [
        "StopNotebookInstance",
        "DeleteNotebookInstance",
        "DeleteCodeRepository",
        "DeleteNotebookInstanceLifecycleConfig",
        "DeleteSecret",
    ]
    assert private_repo.params("DeleteSecret")["ForceDeleteWithoutRecovery"] is True
    private_repo.stub.assert_no_pending_responses()


def test_delete_declined_changes_nothing(private_repo, capsys):
    first_run(private_repo, capsys)

    assert private_repo.run("--delete", stdin=FakeTerminal("\n")) == 0

    assert "nothing deleted" in capsys.readouterr().out and private_repo.writes == []


def test_delete_dry_run_prints_the_requests_only(private_repo, capsys):
    first_run(private_repo, capsys)

    assert private_repo.run("--delete", "--dry-run") == 0

    out = capsys.readouterr().out
    assert (
        "would send sagemaker:StopNotebookInstance" in out
        and "would send sagemaker:DeleteNotebookInstance" in out
    )
    assert private_repo.writes == []
