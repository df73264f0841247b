"""job_launcher.ipynb's section 6: with tune = True the notebook starts one tuning job and no training job."""

from __future__ import annotations

import pytest
from conftest import BUILD_KEY, make_project, offline_environment
from test_end_to_end import papermill

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned(moto_endpoint, role_arn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook-tuning")
    project = make_project(folder, role_arn)
    project.s3().put_object(Bucket=project.bucket, Key=BUILD_KEY, Body=b"PK\x05\x06" + b"\0" * 18)
    children = offline_environment(folder / "children")
    notebook = papermill(
        folder / "tuned.ipynb",
        {
            "project_file": str(project.file),
            "role": role_arn,
            "wait": False,
            "tune": True,
            "tuning_ranges": {"window": "10:100", "seed": [0, 1]},
            "tuning_max_jobs": 3,
        },
        children.env,
    )
    return notebook, children


def test_notebook_with_tune_sends_one_tuning_job_and_no_training_job(tuned):
    _, children = tuned
    sent = children.tuning_requests()
    assert len(sent) == 1 and children.requests() == []
    ranges = sent[0]["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert [r["Name"] for r in ranges["IntegerParameterRanges"]] == ["window"]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "seed", "Values": ["0", "1"]}]


def test_notebook_prints_the_tuning_job_it_started(tuned):
    notebook, children = tuned
    name = children.tuning_requests()[0]["HyperParameterTuningJobName"]
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "text" in o
    )
    assert f"Tuning job:    {name}" in printed and "tunes:          seed in {0, 1}" in printed


def test_notebook_tuning_stays_on_this_machine(tuned):
    assert tuned[1].attempts() == []
