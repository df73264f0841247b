"""Throughput of the PPO example against the simulated build's ceiling and against Stable-Baselines3.

    python benchmarks/bench_trainers.py [--steps 50000] [--repeats 3] [--no-sb3]

Prints, for one agent per Unity instance and SB3's PPO defaults (n_steps 2048, batch 64, 10 epochs):

* random-action steps/s with 1 and 2 instances (the ceiling: nothing but Unity's round trip);
* ppo_trainer.py steps/s with 1 instance, and with 2 instances stepped in parallel;
* Stable-Baselines3 PPO steps/s on the same build through the same wrapper (plus a small Gymnasium
  adapter, since SB3 2.x speaks Gymnasium), torch on one thread;
* the return each PPO reaches after ``--steps``: the deterministic policy over 5 episodes (best 100);
* CPU milliseconds per step over every process (trainer, env workers, players): on a shared machine
  the steps/s of parallel instances depend on free cores, this does not.

Random-action figures are medians of ``--repeats`` runs taken between the others, so a busy machine
shifts them alike. SB3 and torch come from requirements/bench.txt (benchmark-only).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT)]

import template_runtime.fastpath  # noqa: E402,F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split

import numpy as np  # noqa: E402
from mlagents_envs.environment import UnityEnvironment  # noqa: E402

from template_runtime import build as unity_build  # noqa: E402
from template_runtime.unity import make_single_agent_env  # noqa: E402
from trainer import LocalTrainer  # noqa: E402
from unity_sim.package_build import package_build  # noqa: E402

BASE_PORT = 5805
"""Away from UnityEnvironment's defaults (5004/5005) so a running trainer is not disturbed."""
SB3_DEFAULTS = {"n_steps": 2048, "batch_size": 64, "n_epochs": 10}
GYM_OPTIONS = {"use_visual": False, "use_uint8_visual": False, "allow_multiple_visual_obs": False}


def prepare_build(workdir: Path) -> tuple[Path, str]:
    """The packaged simulated build (zip) and the path of its extracted executable."""
    zip_path = package_build("3DBall", workdir)
    return zip_path, str(unity_build.build_from_zip(zip_path, workdir / "build", "3DBall").with_suffix(""))


@contextlib.contextmanager
def gym_env(executable: str, worker_id: int = 0, args: tuple[str, ...] = ()):
    unity = UnityEnvironment(
        executable,
        base_port=BASE_PORT,
        worker_id=worker_id,
        no_graphics=True,
        additional_args=list(args),
        log_folder=tempfile.gettempdir(),  # the player's log, not our output
    )
    try:
        yield make_single_agent_env(unity, flatten_branched=False, seed=0, **GYM_OPTIONS)
    finally:
        unity.close()


class RandomActions(LocalTrainer):
    """Random actions through the same env plumbing the trainers use (template_runtime.vec_env)."""

    def run(self, num_envs: int, steps: int = 3000) -> float:
        with self.make_vec_env(num_envs=num_envs) as envs:
            envs.reset()
            for count in range(100 + steps):
                if count == 100:
                    start = time.perf_counter()
                envs.step(self.rng.uniform(-1, 1, (envs.num_agents, 2)).astype(np.float32))
            return steps * envs.num_agents / (time.perf_counter() - start)


def random_steps_per_second(zip_path: Path, workdir: Path, num_envs: int) -> float:
    settings = {"zip_env_name": str(zip_path), "build_folder": str(workdir / "random"), "project_file": ""}
    settings.update(runs_dir=str(workdir / "runs"), worker_id=650)
    return RandomActions(settings, argv=[]).run(num_envs)


def evaluate(executable: str, policy) -> float:
    """Mean return of a deterministic policy (obs batch -> actions) over 5 whole episodes (best 100)."""
    returns = []
    with gym_env(executable) as env:
        for _ in range(5):
            obs, done, total = env.reset(), False, 0.0
            while not done:
                obs, reward, done, _ = env.step(policy(obs[None])[0])
                total += reward
            returns.append(total)
    return float(np.mean(returns))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (env workers, Unity players)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ours(zip_path: Path, executable: str, workdir: Path, steps: int, num_envs: int) -> tuple[float, ...]:
    """ppo_trainer.py with one agent per instance: steps/s over the training loop, the evaluated
    return, and CPU milliseconds per step over all processes (what a busy machine cannot hide)."""
    import tensorflow as tf

    from ppo_trainer import PPOTrainer, config

    settings = {
        **config,
        **SB3_DEFAULTS,
        "zip_env_name": str(zip_path),
        "build_folder": str(workdir / f"ours-{num_envs}"),
        "runs_dir": str(workdir / "runs"),
        "project_file": "",
        "multiagent": False,
        "additional_args": [],
        "num_envs": num_envs,
        "total_timesteps": steps,
        "worker_id": 600,
    }
    trainer = PPOTrainer(settings, argv=[])
    cpu = cpu_seconds()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.run()
    cpu = cpu_seconds() - cpu
    records = [json.loads(line) for line in (trainer.output_dir / "metrics.jsonl").read_text().splitlines()]
    serve = tf.saved_model.load(str(trainer.model_dir / "1")).signatures["serving_default"]
    policy = lambda obs: serve(observations=tf.constant(obs))["actions"].numpy()  # noqa: E731
    return records[-1]["fps"], evaluate(executable, policy), 1000 * cpu / records[-1]["step"]


class SB3Host(LocalTrainer):
    """Opens the env SB3 trains on: the runtime's batched env through its SB3 adapter."""

    def run(self):
        raise NotImplementedError


def stable_baselines(zip_path: Path, executable: str, workdir: Path, steps: int) -> tuple[float, float]:
    """SB3's PPO on the same build through template_runtime.gymnasium_env.sb3_vec_env:
    (steps/s over learn(), evaluated return)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from template_runtime.gymnasium_env import sb3_vec_env

    torch.set_num_threads(1)  # two cores: torch's second thread would fight the Unity player
    settings = {"zip_env_name": str(zip_path), "build_folder": str(workdir / "sb3"), "project_file": ""}
    host = SB3Host({**settings, "runs_dir": str(workdir / "runs"), "worker_id": 660}, argv=[])
    with host.make_vec_env() as envs:
        vec = VecMonitor(sb3_vec_env(envs))
        model = PPO("MlpPolicy", vec, seed=0, device="cpu", verbose=0, **SB3_DEFAULTS)
        start = time.perf_counter()
        model.learn(total_timesteps=steps)
        fps = model.num_timesteps / (time.perf_counter() - start)
    return fps, evaluate(executable, lambda obs: model.predict(obs, deterministic=True)[0])


def row(what: str, fps: float, ratio: float | None = None, score: float | None = None, note: str = ""):
    ratio_text = f"{ratio:5.2f}x" if ratio is not None else ""
    score_text = f"{score:7.2f}" if score is not None else ""
    print(f"{what:38} {fps:8.0f} {ratio_text:>6} {score_text:>7}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=50_000, help="training steps per PPO run (default 50000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="random-action runs; the median is shown")
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 (not installed)")
    arguments = parser.parse_args(argv)
    if not (REPO_ROOT / "src" / "ppo_trainer.py").is_file():
        print("src/ppo_trainer.py is not in this repository (PPO was not chosen): nothing to compare")
        return 0
    os.environ.setdefault("UNITY_SIM_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix="bench_trainers_") as tmp:
        workdir = Path(tmp)
        zip_path, executable = prepare_build(workdir)
        random_1 = [random_steps_per_second(zip_path, workdir, 1)]
        random_2 = [random_steps_per_second(zip_path, workdir, 2)]
        fps_1, return_1, cpu_1 = ours(zip_path, executable, workdir, arguments.steps, num_envs=1)
        fps_2, return_2, cpu_2 = ours(zip_path, executable, workdir, arguments.steps, num_envs=2)
        sb3 = None if arguments.no_sb3 else stable_baselines(zip_path, executable, workdir, arguments.steps)
        for _ in range(arguments.repeats - 1):
            random_1.append(random_steps_per_second(zip_path, workdir, 1))
            random_2.append(random_steps_per_second(zip_path, workdir, 2))
    r1, r2 = statistics.median(random_1), statistics.median(random_2)
    print(f"one agent per Unity instance, PPO with {SB3_DEFAULTS}, {arguments.steps} steps per run; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':38} {'steps/s':>8} {'ratio':>6} {'return':>7}")
    row("random actions, 1 instance", r1, note=f"median of {[round(r) for r in random_1]}")
    row(
        "random actions, 2 instances",
        r2,
        r2 / r1,
        note=f"/ 1 instance; median of {[round(r) for r in random_2]}",
    )
    row("ppo_trainer.py, 1 instance", fps_1, fps_1 / r1, return_1, f"/ random; {cpu_1:.2f} CPU ms/step")
    row(
        "ppo_trainer.py, 2 instances",
        fps_2,
        fps_2 / fps_1,
        return_2,
        f"/ 1 instance; {cpu_2:.2f} CPU ms/step",
    )
    if sb3:
        row("Stable-Baselines3 PPO, 1 instance", sb3[0], fps_1 / sb3[0], sb3[1], "ours / SB3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
