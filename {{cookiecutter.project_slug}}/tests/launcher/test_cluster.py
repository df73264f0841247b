"""instance_count > 1: allowed for an entry point that trains on several instances (the PPO example,
DD-PPO), refused with the fix for any other, and shown by --dry-run with what the instances share."""

from __future__ import annotations

import re

import pytest
from conftest import make_project
from test_dry_run import dead_endpoint  # noqa: F401  (a fixture: an AWS endpoint nothing listens on)
from test_settings import ROLE, outside_sagemaker  # noqa: F401  (an autouse fixture)

from launcher import api, dry_run
from launcher.entry_points import load_entry_point
from launcher.errors import LaunchError
from launcher.project import SOURCE_DIR
from launcher.settings import resolve

HAS_PPO = (SOURCE_DIR / "ppo_trainer.py").is_file()
needs_ppo = pytest.mark.skipif(not HAS_PPO, reason="the PPO example was not chosen")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path, ROLE, create_bucket=False)


def test_entry_points_say_whether_they_train_on_several_instances():
    assert not load_entry_point("random_trainer.py", SOURCE_DIR).distributed
    if HAS_PPO:
        assert load_entry_point("ppo_trainer.py", SOURCE_DIR).distributed
    if (SOURCE_DIR / "tf_trainer.py").is_file():
        assert not load_entry_point("tf_trainer.py", SOURCE_DIR).distributed


@pytest.mark.parametrize("entry_point", ["random_trainer.py", "tf_trainer.py"])
def test_a_single_instance_trainer_refuses_instance_count_above_one(project, entry_point):
    if not (SOURCE_DIR / entry_point).is_file():
        pytest.skip(f"{entry_point} was not chosen")
    expected = rf"instance_count=2: src/{re.escape(entry_point)} trains on one instance "
    expected += r".* Set instance_count=1"
    if HAS_PPO:
        expected += r"; ppo_trainer\.py train\(s\) on several"
    with pytest.raises(LaunchError, match=expected):
        resolve(project_file=str(project.file), role=ROLE, entry_point=entry_point, instance_count=2)
    resolve(project_file=str(project.file), role=ROLE, entry_point=entry_point, instance_count=1)


@needs_ppo
def test_ppo_on_two_instances_is_described_as_one_run(project):
    chosen = resolve(
        project_file=str(project.file), role=ROLE, entry_point="ppo_trainer.py", instance_count="2"
    )
    assert chosen.instance_count == 2
    assert "Cluster:          one run on 2 instances (algo-1 writes the results)" in chosen.describe()


@needs_ppo
def test_dry_run_shows_the_cluster_the_instances_make(dead_endpoint):  # noqa: F811
    settings = api.load_settings(
        project_file=str(dead_endpoint.file),
        role=dead_endpoint.role,
        entry_point="ppo_trainer.py",
        instance_count=3,
        hyperparameters={"preemption_threshold": 0.6},
    )
    plan = api.dry_run_plan(settings)
    assert plan["request"]["ResourceConfig"]["InstanceCount"] == 3
    cluster = plan["cluster"]
    assert cluster["instance_count"] == 3 and cluster["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert cluster["build_distribution"] == "FullyReplicated"  # every instance gets the whole build
    uri = plan["request"]["CheckpointConfig"]["S3Uri"]
    assert cluster["checkpoints"].startswith(f"{uri}: one prefix for the cluster, written by the chief")
    assert cluster["preemption_threshold"] == 0.6
    assert "algo-1 is the chief" in cluster["workers"]


def test_dry_run_of_one_instance_says_so(dead_endpoint):  # noqa: F811
    settings = api.load_settings(project_file=str(dead_endpoint.file), role=dead_endpoint.role)
    assert api.dry_run_plan(settings)["cluster"] == {"instance_count": 1, "workers": "one instance"}


def test_dry_run_names_the_port_the_trainer_listens_on():
    source = (SOURCE_DIR / "template_runtime" / "distributed.py").read_text()
    assert re.search(r"^CLUSTER_PORT = (\d+)$", source, re.M)[1] == str(dry_run.CLUSTER_PORT)
