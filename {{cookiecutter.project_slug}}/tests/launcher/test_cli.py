"""The command line's own behaviour: arguments, help, exit codes."""

from __future__ import annotations

import pytest

from launcher import cli


def test_set_without_an_equals_sign_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--set", "episodes"])
    assert stop.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err


def test_dry_run_and_local_job_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--dry-run", "--local-job"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_help_names_every_job_setting(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(
        name in out for name in ("instance_type", "use_spot", "max_wait_seconds", "build_input", "telemetry")
    )


def test_a_name_that_is_neither_setting_nor_config_key_is_refused(tmp_path, capsys):
    from conftest import make_project

    project = make_project(tmp_path, "arn:aws:iam::123456789012:role/R", create_bucket=False)
    code = cli.main(["--project-file", str(project.file), "--set", "instance=ml.m5.large"])
    err = capsys.readouterr().err
    assert code == 2 and "'instance' is neither a job setting" in err and "instance_type" in err


def epilog_examples() -> list[list[str]]:
    import shlex

    return [
        shlex.split(line)[2:] for line in cli.epilog().splitlines() if line.startswith("  python launch.py")
    ]


def test_help_examples_use_a_key_of_this_projects_entry_point():
    from launcher.entry_points import load_entry_point
    from launcher.project import SOURCE_DIR, read_project
    from launcher.runtime import runtime_module

    entry = load_entry_point(read_project().entry_point, SOURCE_DIR)
    own = runtime_module("entry_point").read_entry_point(entry.path).config
    sets = [
        args[i + 1].split("=")[0] for args in epilog_examples() for i, a in enumerate(args) if a == "--set"
    ]
    assert f"src/{entry.name}, from project.toml" in cli.epilog()
    hyperparameters = [key for key in sets if key not in cli.SETTING_NAMES]
    assert hyperparameters and all(key in own for key in hyperparameters), (hyperparameters, sorted(own))


def test_help_dry_run_example_is_accepted(moto_endpoint, tmp_path, role_arn, monkeypatch, capsys):
    """The epilog's --dry-run line as it stands, for this repository's entry point (nothing is sent)."""
    from conftest import make_project
    from test_dry_run import closed_port

    from launcher.project import read_project

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    project = make_project(tmp_path, role_arn, create_bucket=False, entry_point=read_project().entry_point)
    args = next(a for a in epilog_examples() if "--dry-run" in a)

    code = cli.main(["--project-file", str(project.file), "--set", f"role={role_arn}", *args])

    assert code == 0, capsys.readouterr().err
