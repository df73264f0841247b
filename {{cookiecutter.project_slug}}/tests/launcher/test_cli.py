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
