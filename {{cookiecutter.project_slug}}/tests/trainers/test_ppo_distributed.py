"""PPO on several workers (DD-PPO): processes on loopback, each its own simulated build, one run.

Each worker is ``python src/ppo_trainer.py --local`` with a ``TF_CONFIG`` naming every worker's
127.0.0.1 port, as a SageMaker job with ``instance_count > 1`` would make one worker per instance.
Every worker has its own build folder, run folder and checkpoint folder (as every instance has its
own /opt/ml), so what only the chief writes shows up only in the chief's folders.

The post-generation hook deletes this file with src/ppo_trainer.py when PPO is not chosen.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from learning_helpers import free_worker_id, mean_return, serve

pytestmark = pytest.mark.usefixtures("no_internet", "sim_python")

SRC = Path(__file__).resolve().parents[2] / "src"
AGENTS, N_STEPS = 12, 64  # the build's 12 agents; a short rollout: 768 agent steps per worker per update
PER_WORKER = AGENTS * N_STEPS
CRC_LINE = re.compile(r"step=(\d+) weights crc32=([0-9a-f]{8}), equal on all (\d+) workers")
ROLLOUT_LINE = re.compile(r"rollout: (\d+) agent steps here, (\d+) on all (\d+) workers")
RUN_SECONDS = 300  # a 2-core machine runs every worker, its player and TensorFlow's compilation


@dataclass
class Worker:
    rank: int
    folder: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    def run_dir(self) -> Path:
        (found,) = (self.folder / "runs").iterdir()  # one run folder per worker start (a fresh name)
        return found

    def crcs(self) -> list[tuple[int, str]]:
        return [(int(m[1]), m[2]) for m in CRC_LINE.finditer(self.log)]

    def rollouts(self) -> list[tuple[int, int]]:
        return [(int(m[1]), int(m[2])) for m in ROLLOUT_LINE.finditer(self.log)]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


@contextlib.contextmanager
def cluster(
    tmp_path: Path,
    zip_path: Path,
    count: int,
    total: int,
    *argv: str,
    per_worker: dict | None = None,
    n_steps: int = N_STEPS,
) -> Iterator[list[Worker]]:
    """``count`` PPO workers of one run; every one still running at the end is killed (by PID)."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    first_id = free_worker_id(count)
    workers: list[Worker] = []
    try:
        for rank in range(count):
            folder = tmp_path / f"worker-{rank}"
            folder.mkdir(exist_ok=True)
            runs = folder / "runs"
            if runs.exists():  # a restart: the new start writes a new run folder, keep the old one aside
                runs.rename(folder / f"runs-before-{time.monotonic_ns()}")
            tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}
            settings = ["--zip_env_name", str(zip_path), "--build_folder", str(folder / "build")]
            settings += ["--runs_dir", str(runs), "--project_file", ""]
            settings += ["--checkpoint_dir", str(folder / "checkpoints")]
            settings += ["--worker_id", str(first_id + rank), "--n_steps", str(n_steps)]
            settings += ["--total_timesteps", str(total), "--checkpoint_frequency", "100000000"]
            log_path = folder / f"log-{time.monotonic_ns()}.txt"
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, str(SRC / "ppo_trainer.py"), "--local", *settings, *argv,
                     *(per_worker or {}).get(rank, [])],
                    env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            workers.append(Worker(rank, folder, process, log_path))
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
        for worker in workers:
            worker.process.wait()


def wait_all(workers: list[Worker], timeout: float = RUN_SECONDS) -> None:
    """Every worker exits 0 within ``timeout`` (else the test fails with the logs' tails)."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {worker.rank} still running after {timeout} s:\n{tails(workers)}")
    codes = [worker.process.returncode for worker in workers]
    assert codes == [0] * len(workers), f"exit codes {codes}:\n{tails(workers)}"


def tails(workers: list[Worker]) -> str:
    return "\n".join(f"--- worker {w.rank}\n{w.log[-3000:]}" for w in workers)


def metric_steps(worker: Worker) -> list[int]:
    records = (worker.run_dir() / "output" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in records]


@pytest.mark.parametrize("count", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_workers_train_one_run_with_equal_weights_and_one_writer(sim_build_zip, tmp_path, count):
    updates = 3
    with cluster(tmp_path, sim_build_zip, count, updates * count * PER_WORKER) as workers:
        wait_all(workers)
    chief, others = workers[0], workers[1:]
    expected = [count * PER_WORKER * (u + 1) for u in range(updates)]

    # The weights are equal on every worker after every update: each checked the CRC of the others'.
    assert [step for step, _ in chief.crcs()] == expected
    assert all(other.crcs() == chief.crcs() for other in others)
    assert len({crc for _, crc in chief.crcs()}) == updates  # and they changed every update

    # The run's step count is the sum of the workers' steps.
    for worker in workers:
        assert worker.rollouts() == [(PER_WORKER, count * PER_WORKER)] * updates
    assert metric_steps(chief) == expected
    summary = json.loads((chief.run_dir() / "output" / "summary.json").read_text())
    assert summary["total_steps"] == expected[-1]

    # Only the chief writes checkpoints, the model and metrics.
    assert [p.name for p in chief.checkpoints.iterdir()] == [f"checkpoint-{expected[-1]:012d}"]
    assert (chief.run_dir() / "model" / "1" / "saved_model.pb").is_file()
    assert (chief.run_dir() / "model" / "3DBall.onnx").is_file()
    for other in others:
        assert not other.checkpoints.exists() or not list(other.checkpoints.iterdir())
        assert not (other.run_dir() / "model").exists()
        written = {p.name for p in (other.run_dir() / "output").iterdir()}
        assert written == {"unity_logs"}, written  # no metrics.jsonl, TensorBoard, curve or summary

    # Seeds differ per worker: the trainer's random stream and the players' seeds.
    assert "random stream seeded 0, Unity instances seeded 0..0" in chief.log
    for other in others:
        seeds = f"random stream seeded [0, {other.rank}], Unity instances seeded {other.rank}..{other.rank}"
        assert seeds in other.log
    for worker in workers:
        (player_log,) = (worker.run_dir() / "output" / "unity_logs").glob("*/Player-*.log")
        assert f"seed {worker.rank} from the handshake" in player_log.read_text()


@pytest.mark.slow
def test_two_workers_learn_to_balance_at_a_fixed_seed(sim_build_zip, sim_executable, tmp_path):
    """60k steps over two workers (the single-instance test's budget, its default settings)."""
    with cluster(tmp_path, sim_build_zip, 2, 60_000, "--seed", "1", n_steps=256) as workers:
        wait_all(workers, 600)
    chief = workers[0]
    random_return = mean_return(sim_executable, None, 20, [])
    learned_return = mean_return(sim_executable, serve(chief.run_dir() / "model"), 10, [])
    print(f"random {random_return:.2f}, DD-PPO (2 workers) after 61,440 steps {learned_return:.2f}")
    assert metric_steps(chief)[-1] == 61_440
    assert learned_return > max(10.0, 5 * random_return)


def wait_for(condition, workers: list[Worker], timeout: float = RUN_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or any(w.process.poll() is not None for w in workers):
            pytest.fail(f"gave up waiting after {timeout} s (or a worker exited):\n{tails(workers)}")
        time.sleep(0.2)


def test_sigterm_to_the_cluster_then_a_restart_resumes_every_worker_from_the_chiefs_checkpoint(
    sim_build_zip, tmp_path
):
    with cluster(tmp_path, sim_build_zip, 2, 10_000_000) as workers:
        wait_for(lambda: all(len(w.crcs()) >= 2 for w in workers), workers)
        for worker in workers:  # what SageMaker does to every instance on a stop or a spot interruption
            worker.process.send_signal(signal.SIGTERM)
        wait_all(workers, 120)
    chief, other = workers
    (saved,) = chief.checkpoints.iterdir()
    stopped_at = int(saved.name.split("-")[1])
    assert stopped_at == chief.crcs()[-1][0] == other.crcs()[-1][0]  # both stopped after the same update
    assert not other.checkpoints.exists() or not list(other.checkpoints.iterdir())

    budget = stopped_at + 2 * 2 * PER_WORKER  # two more updates
    with cluster(tmp_path, sim_build_zip, 2, budget) as workers:
        wait_all(workers)
    chief, other = workers
    assert f"resuming from {saved} at step {stopped_at}" in chief.log
    assert f"resuming at step {stopped_at} from the chief's checkpoint ({saved})" in other.log
    expected = [stopped_at + 2 * PER_WORKER, budget]
    assert [step for step, _ in chief.crcs()] == expected and chief.crcs() == other.crcs()
    summary = json.loads((chief.run_dir() / "output" / "summary.json").read_text())
    assert summary["resumed_from"] == stopped_at and summary["total_steps"] == budget
    assert sorted(p.name for p in chief.checkpoints.iterdir()) == [saved.name, f"checkpoint-{budget:012d}"]
    assert metric_steps(chief) == expected


def test_preemption_threshold_stops_the_straggler_early_and_the_steps_still_add_up(sim_build_zip, tmp_path):
    """DD-PPO's preemption: worker 1's build takes 30 ms more per decision (a slow machine); with
    threshold 0.5 the chief finishing its rollout stops the straggler's, after at least
    min_rollout_fraction (0.25) of n_steps."""
    updates = 3
    slow = {1: ["--additional_args", "--decision-delay 0.03"]}
    with cluster(
        tmp_path, sim_build_zip, 2, updates * 2 * PER_WORKER - 1, "--preemption_threshold", "0.5",
        per_worker=slow,
    ) as workers:  # fmt: skip
        wait_all(workers)
    chief, other = workers
    chief_rollouts, other_rollouts = chief.rollouts(), other.rollouts()
    assert len(chief_rollouts) == len(other_rollouts) >= updates
    steps = 0
    for (mine, total), (theirs, same_total) in zip(chief_rollouts, other_rollouts, strict=True):
        assert total == same_total == mine + theirs
        assert mine == PER_WORKER and AGENTS * N_STEPS // 4 <= theirs < PER_WORKER  # cut short
        steps += total
    assert metric_steps(chief)[-1] == steps and [s for s, _ in chief.crcs()] == metric_steps(chief)
    assert chief.crcs() == other.crcs()
