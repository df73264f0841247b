"""Unity's own trainer (mlagents-learn, ML-Agents 1.1.0) on the simulated 3DBall, beside the real scene.

    python benchmarks/bench_mlagents_learn.py --mlagents-venv .venv-mlagents-learn      # ~3-5 min
    make bench-mlagents-learn                                    # the same (creates the venv first)

Runs ``mlagents-learn`` with ML-Agents' own ``config/ppo/3DBall.yaml`` (verbatim, below) against the
simulated build (packaged fresh, 12 agents like the real scene's 12 platforms), reads the mean reward
it prints every 12,000 steps, and prints it next to a published mlagents-learn log of the real 3DBall
scene with the same config. It stops mlagents-learn once the mean reward has reached 100 (the best:
1000 decisions x 0.1) after ``--steps`` steps, or at ``--limit``. Before that it measures the episode
length and return of random actions on the build: uniform in [-1, 1], and like mlagents-learn's
untrained policy (a unit Gaussian, clipped to [-3, 3] and divided by 3).

mlagents-learn needs a venv of its own: ML-Agents 1.1 declares Python <= 3.10.12 and pins grpcio
<= 1.48.2 (no wheel for 3.11), so it is forced in (``make .venv-mlagents-learn/.installed`` does it):

    python3.11 -m venv .venv-mlagents-learn && P=.venv-mlagents-learn/bin/pip
    $P install torch==2.13.0
    $P download --ignore-requires-python --no-deps -d wheels mlagents==1.1.0 mlagents-envs==1.1.0
    $P install --ignore-requires-python --no-deps wheels/mlagents-1.1.0-*.whl wheels/mlagents_envs-1.1.0-*.whl
    $P install grpcio==1.49.1 numpy==1.23.5 protobuf==3.20.3 onnx==1.15.0 h5py Pillow pyyaml tensorboard \\
        six attrs huggingface-hub 'cattrs>=1.1.0,<1.7' cloudpickle 'gym>=0.21.0' filelock 'setuptools<81'
    $P install --ignore-requires-python --no-deps pettingzoo==1.15.0

Run this script with the training venv's Python (it packages the build and measures random actions
through mlagents-envs); the simulated player runs on that Python too (UNITY_SIM_PYTHON). Not a CI test:
it takes minutes and its figures vary from run to run (PPO is stochastic; set --seed).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT)]

CONFIG_3DBALL = """\
# ML-Agents' config/ppo/3DBall.yaml (Unity-Technologies/ml-agents, release 20 / ML-Agents 1.1.0), verbatim.
behaviors:
  3DBall:
    trainer_type: ppo
    hyperparameters:
      batch_size: 64
      buffer_size: 12000
      learning_rate: 0.0003
      beta: 0.001
      epsilon: 0.2
      lambd: 0.99
      num_epoch: 3
      learning_rate_schedule: linear
    network_settings:
      normalize: true
      hidden_units: 128
      num_layers: 2
      vis_encode_type: simple
    reward_signals:
      extrinsic:
        gamma: 0.99
        strength: 1.0
    keep_checkpoints: 5
    max_steps: 500000
    time_horizon: 1000
    summary_freq: 12000
"""
PUBLISHED = {
    12_000: 1.22,
    24_000: 1.35,
    36_000: 1.67,
    48_000: 2.30,
    60_000: 3.98,
    72_000: 7.6,
    84_000: 16.5,
    96_000: 35.9,
    108_000: 67.4,
    132_000: 100.0,
}
"""Mean reward of a published mlagents-learn log of the real 3DBall scene with this config (quoted in
issue 20; 500k steps in 421 s; other published runs: 1.14-1.19 at 12k, 1.38 at 24k). The real
scene's first episodes last about 22 decisions."""
PUBLISHED_FIRST_100 = 132_000
SUMMARY_LINE = re.compile(r"Step: (\d+)\. Time Elapsed: (\d+(?:\.\d+)?) s\. Mean Reward: (-?\d+(?:\.\d+)?)")
BEST_RETURN = 100.0


def package(workdir: Path) -> str:
    """Package and extract the simulated build; return its executable path without suffix."""
    from template_runtime import build as unity_build
    from unity_sim.package_build import package_build

    zip_path = package_build("3DBall", workdir)
    return str(unity_build.build_from_zip(zip_path, workdir / "build", "3DBall").with_suffix(""))


def random_episodes(executable: str, agents: int, decisions: int, seed: int) -> dict[str, tuple]:
    """Mean episode length (decisions) and return of random actions, per kind of random."""
    import numpy as np
    from mlagents_envs.base_env import ActionTuple
    from mlagents_envs.environment import UnityEnvironment

    import template_runtime.fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

    policies = {
        "uniform in [-1, 1]": lambda rng, n: rng.uniform(-1, 1, (n, 2)),
        "mlagents-learn's untrained policy": lambda rng, n: np.clip(rng.normal(0, 1, (n, 2)), -3, 3) / 3,
    }
    results = {}
    for name, policy in policies.items():
        env = UnityEnvironment(
            executable,
            base_port=free_port(),
            no_graphics=True,
            seed=seed,
            timeout_wait=60,
            additional_args=["--agents", str(agents), "-logFile", os.devnull],
        )
        rng = np.random.default_rng(seed)
        lengths, returns, running, steps = [], [], {}, {}
        try:
            env.reset()
            behavior = next(iter(env.behavior_specs))
            for _ in range(decisions):
                decision, terminal = env.get_steps(behavior)
                for agent, reward in zip(terminal.agent_id.tolist(), terminal.reward.tolist(), strict=True):
                    returns.append(running.pop(agent, 0.0) + reward)
                    lengths.append(steps.pop(agent, 0) + 1)
                for agent, reward in zip(decision.agent_id.tolist(), decision.reward.tolist(), strict=True):
                    if agent in steps:
                        running[agent] += reward
                        steps[agent] += 1
                    else:
                        running[agent], steps[agent] = 0.0, 0
                actions = policy(rng, len(decision)).astype(np.float32)
                env.set_actions(behavior, ActionTuple(continuous=actions))
                env.step()
        finally:
            env.close()
        results[name] = (float(np.mean(lengths)), float(np.mean(returns)), len(lengths))
    return results


def free_port(count: int = 1) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            base = probe.getsockname()[1]
        if base + count < 65536:
            return base
    raise RuntimeError("no free port")


def run_mlagents_learn(
    venv: Path, executable: str, workdir: Path, agents: int, steps: int, limit: int, seed: int
) -> tuple[list[tuple[int, float, float]], float]:
    """Train; return [(step, seconds, mean reward)] per summary and the wall time until stopped."""
    learn = venv / "bin" / "mlagents-learn"
    if not learn.exists():
        raise SystemExit(
            f"bench_mlagents_learn.py: no {learn}; create the venv (see this script's docstring)"
        )
    config = workdir / "3DBall.yaml"
    config.write_text(CONFIG_3DBALL)
    command = [
        str(learn),
        str(config),
        f"--env={executable}",
        "--no-graphics",
        "--run-id=bench",
        f"--results-dir={workdir / 'results'}",
        f"--base-port={free_port()}",
        f"--seed={seed}",
        "--env-args",
        "--agents",
        str(agents),
        "--stats",
    ]
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    summaries: list[tuple[int, float, float]] = []
    tail: list[str] = []
    try:
        for line in process.stdout:
            tail = (tail + [line])[-40:]
            match = SUMMARY_LINE.search(line)
            if not match:
                continue
            step, seconds, reward = int(match[1]), float(match[2]), float(match[3])
            summaries.append((step, seconds, reward))
            print(f"  step {step:>7,}  {seconds:7.1f} s  mean reward {reward:7.2f}", flush=True)
            if step >= limit or (step >= steps and reward >= BEST_RETURN - 1e-3):
                break
    finally:
        elapsed = time.monotonic() - started
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # no model export: the run is only measured
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if not summaries:
        raise SystemExit("bench_mlagents_learn.py: mlagents-learn printed no summary:\n" + "".join(tail))
    return summaries, elapsed


def report(
    summaries: list[tuple[int, float, float]], random_results: dict, agents: int, elapsed: float
) -> str:
    lines = ["", f"Random actions on the simulated build ({agents} agents):"]
    for name, (length, ret, count) in random_results.items():
        lines.append(
            f"  {name:36} episode length {length:5.1f} decisions, return {ret:5.2f} ({count} episodes)"
        )
    lines.append("  real 3DBall (published): first episodes about 22 decisions")
    lines += [
        "",
        "mlagents-learn, config/ppo/3DBall.yaml: mean reward per summary (12,000 steps)",
        f"  {'step':>8} {'simulated':>10} {'real (published)':>17} {'sim / real':>11}",
    ]
    for step, _, reward in summaries:
        real = PUBLISHED.get(step)
        ratio = f"{reward / real:10.2f}x" if real else ""
        lines.append(f"  {step:>8,} {reward:>10.2f} {real if real is not None else '':>17} {ratio}")
    first = next((step for step, _, reward in summaries if reward >= BEST_RETURN - 1e-3), None)
    lines.append(
        f"  first mean reward of 100: simulated at {first:,} steps"
        if first
        else f"  the simulated run did not reach a mean of 100 by {summaries[-1][0]:,} steps"
    )
    lines.append(f"  (real scene, published: {PUBLISHED_FIRST_100:,} steps)")
    lines.append(
        f"  mlagents-learn wall time until stopped: {elapsed:.0f} s (load average {os.getloadavg()[0]:.1f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlagents-venv", type=Path, default=REPO_ROOT / ".venv-mlagents-learn")
    parser.add_argument("--agents", type=int, default=12, help="agents in the build (real 3DBall: 12)")
    parser.add_argument("--steps", type=int, default=132_000, help="train at least this many steps")
    parser.add_argument("--limit", type=int, default=240_000, help="stop here even without a mean of 100")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-decisions", type=int, default=1000, help="decisions of random actions")
    parser.add_argument("--build", help="an extracted build folder holding 3DBall.x86_64 (default: package)")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("UNITY_SIM_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix="bench_mlagents_learn_") as scratch:
        workdir = Path(scratch)
        executable = str(Path(arguments.build) / "3DBall") if arguments.build else package(workdir)
        random_results = random_episodes(
            executable, arguments.agents, arguments.random_decisions, arguments.seed
        )
        summaries, elapsed = run_mlagents_learn(
            arguments.mlagents_venv.resolve(),
            executable,
            workdir,
            arguments.agents,
            arguments.steps,
            arguments.limit,
            arguments.seed,
        )
    print(report(summaries, random_results, arguments.agents, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
