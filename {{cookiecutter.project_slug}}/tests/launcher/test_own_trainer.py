"""A user's own trainer: one new file in src/, no other file changed, runs locally and as a local job.

The trainer below is a 40-line REINFORCE (a linear Gaussian policy in NumPy). It is written into a
copy of this repository; the test then runs it as a user would, locally and through
``launch.py --local-job``, and checks that the launcher found it (any file name), read its
hyperparameters and declared metric, and that the job's results carry that metric.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from conftest import BUILD_KEY, REPO_ROOT, make_project, offline_environment

pytestmark = pytest.mark.slow

REINFORCE = textwrap.dedent(
    '''
    """REINFORCE with a linear Gaussian policy: the smallest learning trainer."""

    from trainer import Trainer

    # isort: split
    import numpy as np

    config = {
        "episodes": 30,  # episodes to learn from
        "learning_rate": 0.01,  # step size of the policy gradient
        "action_std": 0.5,  # standard deviation of the Gaussian policy
        "additional_args": ["--agents", "1"],  # one agent of the simulated build (its default is 12)
    }


    class Reinforce(Trainer):
        metrics = ("gradient_norm",)

        def run(self):
            c = self.config
            with self.make_vec_env() as envs:
                obs = envs.reset()
                weights = np.zeros((obs.shape[1], envs.action_space.shape[0]))
                grads, returns, steps, done_episodes = np.zeros_like(weights), [], 0, 0
                while done_episodes < c["episodes"]:
                    mean = obs @ weights
                    actions = mean + c["action_std"] * self.rng.standard_normal(mean.shape)
                    grads += obs.T @ ((actions - mean) / c["action_std"] ** 2)
                    obs, rewards, terminated, truncated, _ = envs.step(np.clip(actions, -1, 1))
                    steps += envs.num_agents
                    for episode in envs.pop_finished():
                        done_episodes += 1
                        returns.append(episode.reward)
                        weights += c["learning_rate"] * episode.reward * grads / max(episode.length, 1)
                        grads[:] = 0.0
                        self.log_metrics(
                            steps,
                            episode_reward_mean=np.mean(returns[-10:]),
                            episode_length_mean=episode.length,
                            fps=0.0,
                            gradient_norm=float(np.abs(weights).sum()),
                        )
            np.save(self.model_dir / "weights.npy", weights)


    if __name__ == "__main__":
        Reinforce(config).run()
    '''
)


def free_worker_id() -> str:
    """A worker_id whose port (5005 + id) is free now: other test runs on this machine keep theirs."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return str(probe.getsockname()[1] - 5005)


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """This repository with one new file, src/reinforce.py (the only difference)."""
    copy = tmp_path / "repo"
    skip = shutil.ignore_patterns(".venv*", "runs", "builds", "results", ".git", "__pycache__", "unity_build")
    shutil.copytree(REPO_ROOT, copy, ignore=skip)
    (copy / "src" / "reinforce.py").write_text(REINFORCE.lstrip(), encoding="utf-8")
    return copy


def test_own_trainer_runs_locally_and_as_a_local_job(
    repo_copy, moto_endpoint, aws_offline, role_arn, container_python, sim_build_zip, tmp_path
):
    local = subprocess.run(
        [str(container_python), "src/reinforce.py", "--local", "--zip_env_name", str(sim_build_zip),
         "--env_file", "3DBall", "--project_file", "", "--episodes", "5", "--worker_id", free_worker_id()],
        cwd=repo_copy, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    (run,) = (repo_copy / "runs").iterdir()
    assert (run / "model/weights.npy").is_file()
    records = [json.loads(line) for line in (run / "output/metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all("gradient_norm" in record for record in records)

    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", role_arn, entry_point="reinforce.py")
    project.s3().upload_file(str(sim_build_zip), project.bucket, BUILD_KEY)
    children = offline_environment(tmp_path / "children")
    dry = subprocess.run(
        [sys.executable, "launch.py", "--project-file", str(project.file), "--dry-run",
         "--set", f"role={role_arn}", "--set", "episodes=4"],
        cwd=repo_copy, env=children.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "gradient_norm" in dry.stdout  # the declared metric became a metric definition

    job = subprocess.run(
        [sys.executable, "launch.py", "--project-file", str(project.file), "--local-job",
         "--container-python", str(container_python), "--work-dir", str(tmp_path / "jobs"),
         "--set", f"role={role_arn}", "--set", "episodes=4", "--set", f"worker_id={free_worker_id()}"],
        cwd=repo_copy, env=children.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-5000:]
    job_name = next(line.split()[2] for line in output.splitlines() if line.startswith("Training job:"))
    key = f"{job_name}/output/output.tar.gz"
    body = project.s3().get_object(Bucket=project.bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        metrics = tar.extractfile("metrics.jsonl").read().decode().splitlines()
    assert len(metrics) == 4 and all("gradient_norm" in json.loads(line) for line in metrics)
    assert children.attempts() == []
