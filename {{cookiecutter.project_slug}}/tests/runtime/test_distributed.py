"""Who the workers of a run are (template_runtime/distributed.py's find_cluster): TF_CONFIG, SageMaker's
host list or resourceconfig.json, and clear errors for descriptions that cannot be used.

The training itself on several workers is tested in tests/trainers/test_ppo_distributed.py."""

from __future__ import annotations

import json

import pytest

from template_runtime.distributed import SINGLE, ClusterError, Workers, find_cluster


def tf_config(workers: list[str], index: int, chief: list[str] | None = None) -> str:
    cluster = {"worker": workers, **({"chief": chief} if chief else {})}
    task_type = "chief" if chief and index < 0 else "worker"
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": max(index, 0)}})


def test_without_a_description_a_run_is_one_worker(tmp_path):
    assert find_cluster(in_job=False, environ={}) is SINGLE
    assert find_cluster(in_job=True, environ={"SM_INPUT_CONFIG_DIR": str(tmp_path)}) is SINGLE
    assert not SINGLE.distributed and SINGLE.is_chief


def test_tf_config_names_the_workers_and_this_ones_rank():
    found = find_cluster(False, {"TF_CONFIG": tf_config(["127.0.0.1:1111", "127.0.0.1:2222"], 1)})
    assert (found.size, found.rank, found.is_chief, found.source) == (2, 1, False, "TF_CONFIG")
    assert found.tf_config() == {
        "cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]},
        "task": {"type": "worker", "index": 1},
    }


def test_a_tf_config_chief_comes_first():
    found = find_cluster(False, {"TF_CONFIG": tf_config(["w:1", "w:2"], -1, chief=["c:1"])})
    assert (found.rank, found.is_chief, found.addresses) == (0, True, ("c:1", "w:1", "w:2"))


def test_sagemaker_hosts_in_natural_order_with_algo_1_the_chief():
    hosts = ["algo-10", "algo-2", "algo-1"] + [f"algo-{i}" for i in range(3, 10)]
    environ = {"SM_HOSTS": json.dumps(hosts), "SM_CURRENT_HOST": "algo-2"}
    found = find_cluster(True, environ)
    assert found.hosts[:3] == ("algo-1", "algo-2", "algo-3") and found.hosts[-1] == "algo-10"
    assert (found.rank, found.addresses[0]) == (1, "algo-1:2222")
    assert not find_cluster(False, environ).distributed  # a local run ignores a job's variables


def test_resourceconfig_json_when_the_variables_are_missing(tmp_path):
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"hosts": ["algo-1", "algo-2"], "current_host": "algo-1"})
    )
    environ = {"SM_INPUT_CONFIG_DIR": str(tmp_path), "TRAINER_CLUSTER_PORT": "3333"}
    found = find_cluster(True, environ)
    assert (found.rank, found.addresses, found.source) == (
        0,
        ("algo-1:3333", "algo-2:3333"),
        str(tmp_path / "resourceconfig.json"),
    )


def test_given_addresses_replace_the_host_names():
    environ = {
        "SM_HOSTS": json.dumps(["algo-1", "algo-2"]),
        "SM_CURRENT_HOST": "algo-2",
        "TRAINER_CLUSTER_ADDRESSES": json.dumps({"algo-1": "127.0.0.1:4001", "algo-2": "127.0.0.1"}),
    }
    assert find_cluster(True, environ).addresses == ("127.0.0.1:4001", "127.0.0.1:2222")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TF_CONFIG": "{"}, "TF_CONFIG is not a cluster description"),
        ({"TF_CONFIG": json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}})},
         r"TF_CONFIG has jobs \['ps'\]"),
        ({"TF_CONFIG": tf_config(["a:1"], 3)}, "is not in its cluster"),
        ({"SM_HOSTS": "algo-1", "SM_CURRENT_HOST": "algo-1"}, "is not a JSON list"),
        ({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-3"}, "is not one of the hosts"),
        ({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-1", "TRAINER_CLUSTER_PORT": "x"},
         "must be a port number"),
        ({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-1",
          "TRAINER_CLUSTER_ADDRESSES": '{"algo-1": "h:1"}'}, r"has no address for \['algo-2'\]"),
    ],
    ids=["json", "ps", "task", "hosts", "current", "port", "addresses"],
)  # fmt: skip
def test_a_description_that_cannot_be_used_is_refused_saying_why(environ, message):
    with pytest.raises(ClusterError, match=message):
        find_cluster(True, environ)


def test_one_worker_shares_nothing():
    """Without a cluster every collective is the local value and TensorFlow's machinery never starts."""
    import numpy as np

    workers = Workers(SINGLE, preemption_threshold=0.5)
    batch = np.arange(12.0).reshape(6, 2)
    mean, var, count = workers.moments(batch)
    assert count == 6 and np.allclose(mean, batch.mean(0)) and np.allclose(var, batch.var(0))
    assert workers.total(5) == 5 and workers.count_steps(7) == 7 and workers.any(True)
    assert not workers.preempted(100, 100)  # nobody else to wait for
    workers.finish()
    workers.close()
