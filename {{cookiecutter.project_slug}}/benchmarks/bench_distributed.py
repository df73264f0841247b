"""Throughput of DD-PPO (ppo_trainer.py on several workers) on this machine, and the all-reduce's cost.

    python benchmarks/bench_distributed.py [--workers 1 2 3] [--updates 6] [--n_steps 256]

For each worker count, that many ``src/ppo_trainer.py --local`` processes train one run on loopback
(``TF_CONFIG`` with 127.0.0.1 ports; one worker: no cluster at all), each with its own simulated
build of 12 agents. Printed per count:

* agent-steps/s of the whole run, steady state: between its first and its last update (process
  start, build extraction and TensorFlow's first compilation left out);
* the mean episode reward at the end (the same number of updates per worker: more workers, more
  steps per update);
* the all-reduce: milliseconds per in-graph all-reduce of the PPO gradient (as the learner sends it,
  every minibatch), per NumPy collective (totals, statistics, the CRC check), and per update with
  the default settings (n_epochs x minibatches gradient all-reduces plus about ten collectives).

On a machine with fewer cores than workers x (trainer + player) the workers share the cores, so
the run's steps/s cannot grow with the count here: the figures say what a worker costs and what
the all-reduce adds, from which the scaling on instances with cores of their own follows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC = REPO_ROOT / "src"
AGENTS = 12  # the simulated build's default, as Unity's 3DBall scene
UNITY_BASE_PORT = 5005  # UnityEnvironment's base port for builds: worker_id w listens on 5005 + w
GRADIENT_SIZE = 9669 + 1  # the default PPO agent's trainable values (64x64 actor and critic), + the count
ALLREDUCE_CALLS = 200


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def tf_configs(count: int) -> list[str | None]:
    """One TF_CONFIG per worker (None for a single worker: the one-instance path)."""
    if count == 1:
        return [None]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}})
        for rank in range(count)
    ]


@contextlib.contextmanager
def processes(commands: list[tuple[list[str], dict]], logs: Path):
    """Start every command (stdout and stderr to a file each); kill any still running at the end."""
    started = []
    try:
        for index, (command, env) in enumerate(commands):
            with (logs / f"process-{index}.log").open("w") as log:
                started.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
        for process in started:
            process.wait()


def wait_ok(started: list[subprocess.Popen], logs: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for index, process in enumerate(started):
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        if code != 0:
            tail = (logs / f"process-{index}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"process {index} exited {code}:\n{tail}")


def train(count: int, zip_path: Path, workdir: Path, updates: int, n_steps: int) -> dict:
    """One run of ``count`` workers; its steady-state agent-steps/s and final mean reward."""
    folder = workdir / f"train-{count}"
    folder.mkdir()
    total = updates * count * AGENTS * n_steps
    commands = []
    for rank, tf_config in enumerate(tf_configs(count)):
        worker = folder / f"worker-{rank}"
        argv = [sys.executable, str(SRC / "ppo_trainer.py"), "--local", "--project_file", ""]
        argv += ["--zip_env_name", str(zip_path), "--build_folder", str(worker / "build")]
        argv += ["--runs_dir", str(worker / "runs"), "--checkpoint_dir", str(worker / "checkpoints")]
        argv += ["--worker_id", str(free_ports(1)[0] - UNITY_BASE_PORT), "--n_steps", str(n_steps)]
        argv += ["--total_timesteps", str(total), "--checkpoint_frequency", "100000000"]
        env = {**os.environ, "UNITY_SIM_PYTHON": os.environ.get("UNITY_SIM_PYTHON", sys.executable)}
        env.pop("TF_CONFIG", None)
        if tf_config:
            env["TF_CONFIG"] = tf_config
        commands.append((argv, env))
    with processes(commands, folder) as started:
        wait_ok(started, folder, timeout=1800)
    (run,) = (folder / "worker-0" / "runs").iterdir()
    records = [json.loads(line) for line in (run / "output" / "metrics.jsonl").read_text().splitlines()]
    first, last = records[0], records[-1]
    elapsed = last["step"] / last["fps"] - first["step"] / first["fps"]  # fps: steps since the loop began
    return {
        "workers": count,
        "steps": last["step"],
        "agent_steps_per_s": (last["step"] - first["step"]) / elapsed if elapsed > 0 else float("nan"),
        "episode_reward_mean": last["episode_reward_mean"],
    }


def allreduce_worker() -> None:
    """One worker of the all-reduce measurement (TF_CONFIG names the cluster): prints JSON."""
    sys.path.insert(0, str(SRC))
    import numpy as np
    import tensorflow as tf

    from template_runtime.distributed import Workers, find_cluster

    workers = Workers(find_cluster(in_job=False))
    gradient = tf.constant(np.ones(GRADIENT_SIZE, np.float32))

    @tf.function
    def many(value):  # like the learner's epoch: a loop of all-reduces inside one graph
        total = tf.zeros_like(value)
        for _ in tf.range(ALLREDUCE_CALLS):
            total += workers.sum(value)
        return total

    many(gradient)  # trace and warm up
    started = time.perf_counter()
    many(gradient).numpy()
    graph_ms = (time.perf_counter() - started) * 1000 / ALLREDUCE_CALLS
    workers.total(1.0)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        workers.total(1.0)
        timings.append((time.perf_counter() - started) * 1000)
    workers.finish()
    workers.close()
    print(json.dumps({"graph_ms": graph_ms, "numpy_ms": statistics.median(timings)}))


def allreduce(count: int, workdir: Path, n_steps: int) -> dict:
    """Median over the workers of the all-reduce timings, and what an update with the defaults costs."""
    folder = workdir / f"allreduce-{count}"
    folder.mkdir()
    command = [sys.executable, str(Path(__file__).resolve()), "--allreduce-worker"]
    commands = [(command, {**os.environ, "TF_CONFIG": config}) for config in tf_configs(count)]
    with processes(commands, folder) as started:
        wait_ok(started, folder, timeout=600)
    results = []
    for index in range(count):
        lines = (folder / f"process-{index}.log").read_text().splitlines()
        results.append(json.loads(next(line for line in reversed(lines) if line.startswith("{"))))
    graph = statistics.median(r["graph_ms"] for r in results)
    numpy_ms = statistics.median(r["numpy_ms"] for r in results)
    minibatches = AGENTS * n_steps // 256  # the default batch_size
    per_update = 10 * minibatches * graph + 12 * numpy_ms  # n_epochs 10; + statistics, CRC, steps, episodes
    return {"graph_ms": graph, "numpy_ms": numpy_ms, "per_update_ms": per_update}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--updates", type=int, default=6, help="updates per run (default 6)")
    parser.add_argument("--n_steps", type=int, default=256, help="rollout length per agent (default 256)")
    parser.add_argument("--allreduce-worker", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.allreduce_worker:
        allreduce_worker()
        return
    sys.path[:0] = [str(SRC), str(REPO_ROOT)]
    from unity_sim.package_build import package_build

    print(f"{os.cpu_count()} cores; {AGENTS} agents per worker, n_steps {options.n_steps}, "
          f"{options.updates} updates per run")  # fmt: skip
    print(f"{'workers':>7} {'agent-steps/s':>14} {'steps':>8} {'reward':>7} "
          f"{'all-reduce ms':>14} {'collective ms':>14} {'per update ms':>14}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        workdir = Path(tmp)
        zip_path = package_build("3DBall", workdir)
        for count in options.workers:
            run = train(count, zip_path, workdir, options.updates, options.n_steps)
            cost = allreduce(count, workdir, options.n_steps) if count > 1 else None
            cells = ("-", "-", "-") if cost is None else (
                f"{cost['graph_ms']:.2f}", f"{cost['numpy_ms']:.2f}", f"{cost['per_update_ms']:.0f}"
            )  # fmt: skip
            print(f"{count:>7} {run['agent_steps_per_s']:>14.0f} {run['steps']:>8} "
                  f"{run['episode_reward_mean']:>7.2f} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
