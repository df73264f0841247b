"""Throughput of the simulated Unity build: the ceiling any trainer's speed is measured against.

    python benchmarks/bench_unity_sim.py [--steps 2000] [--repeats 3] [--agents 12 16 64]

Prints random-action steps per second through gym-unity's UnityToGymWrapper (1 agent), then
agent-steps per second through the low-level UnityEnvironment API with several agents per build
(one decision for every agent per step). Each figure is the median of ``--repeats`` runs after a
short warm-up. Every figure is measured twice, runs alternating: with the build's 3DBall physics,
and with ``--physics none`` (the same player and protocol with the balls hanging still: the
least a player speaking this protocol costs). The ratio is what the physics costs; the goal is at
least 0.8x. On a shared machine wall-clock rates swing with others' load, so each run also counts
CPU seconds (this process + the player process): with trainer and player strictly taking turns,
steps per CPU second is near what an idle machine gives, and its ratio is steadier.
The build is packaged fresh into a temporary folder unless ``--build`` names one.
Run it with the interpreter (and protobuf) you train with: protobuf 3.20 is several times slower.
"""

from __future__ import annotations

import argparse
import os
import socket
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
from google.protobuf.internal import api_implementation  # noqa: E402
from gym_unity.envs import UnityToGymWrapper  # noqa: E402
from mlagents_envs.environment import UnityEnvironment  # noqa: E402

from template_runtime import build as unity_build  # noqa: E402
from unity_sim.package_build import package_build  # noqa: E402

WARMUP_STEPS = 100


def free_port() -> int:
    """A TCP port free now (away from UnityEnvironment's defaults, so a running trainer is not disturbed)."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def prepare_build(build: str | None, workdir: Path) -> str:
    """The executable path of ``build`` (a folder), or of a freshly packaged and extracted build."""
    if build:
        return str(Path(build) / "3DBall")
    zip_path = package_build("3DBall", workdir)
    return str(unity_build.build_from_zip(zip_path, workdir / "build", "3DBall").with_suffix(""))


PHYSICS_GOAL = 0.8
"""The build with physics must keep at least this share of the speed without."""


def gym_steps_per_second(executable: str, steps: int, physics: str = "physx") -> float:
    """Random actions through the gym wrapper, resetting after each episode like a trainer does."""
    env = UnityToGymWrapper(
        UnityEnvironment(
            executable,
            base_port=free_port(),
            no_graphics=True,
            additional_args=["--agents", "1", "--physics", physics],
        ),
        action_space_seed=0,
    )
    try:
        env.reset()
        for count in range(WARMUP_STEPS + steps):
            if count == WARMUP_STEPS:
                start = _clocks(env)
            if env.step(env.action_space.sample())[2]:
                env.reset()
        return _rates(steps, start, _clocks(env))
    finally:
        env.close()


def agent_steps_per_second(executable: str, agents: int, steps: int, physics: str = "physx") -> float:
    """Random actions for every agent through the low-level API; agents restart on their own."""
    env = UnityEnvironment(
        executable,
        base_port=free_port(),
        no_graphics=True,
        additional_args=["--agents", str(agents), "--physics", physics],
    )
    try:
        env.reset()
        name = next(iter(env.behavior_specs))
        action_spec = env.behavior_specs[name].action_spec
        decisions = 0
        for count in range(WARMUP_STEPS + steps):
            if count == WARMUP_STEPS:
                start, decisions = _clocks(env), 0
            decision_steps, _ = env.get_steps(name)
            decisions += len(decision_steps)
            env.set_actions(name, action_spec.random_action(len(decision_steps)))
            env.step()
        return _rates(decisions, start, _clocks(env))
    finally:
        env.close()


def _clocks(env) -> tuple[float, float]:
    """(wall time, CPU seconds of this process plus the player process) now."""
    unity = getattr(env, "_env", env)  # UnityToGymWrapper keeps the UnityEnvironment in _env
    fields = Path(f"/proc/{unity._process.pid}/stat").read_text().rpartition(")")[2].split()
    player = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return time.perf_counter(), time.process_time() + player


def _rates(count: int, start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """(per wall second, per CPU second) rates of ``count`` steps."""
    return count / (end[0] - start[0]), count / (end[1] - start[1])


def median_of(repeats: int, measure) -> tuple[float, list[float]]:
    runs = [measure() for _ in range(repeats)]
    return statistics.median(runs), runs


def side_by_side(repeats: int, measure) -> dict[str, dict[str, tuple[float, list[float]]]]:
    """``measure(physics)`` for physx and none, alternating, so load changes hit both alike.

    Returns {"wall" | "cpu": {"physx" | "none": (median, runs)}}.
    """
    runs: dict[str, list[tuple[float, float]]] = {"physx": [], "none": []}
    for _ in range(repeats):
        for physics in runs:
            runs[physics].append(measure(physics))
    return {
        clock: {
            physics: (statistics.median(r[index] for r in values), [r[index] for r in values])
            for physics, values in runs.items()
        }
        for index, clock in enumerate(("wall", "cpu"))
    }


def _line(label: str, unit: str, results: dict[str, dict[str, tuple[float, list[float]]]]) -> str:
    lines = []
    for clock, per in (("wall", "s"), ("cpu", "CPU s")):
        physx, none = results[clock]["physx"], results[clock]["none"]
        ratio = physx[0] / none[0]
        verdict = "met" if ratio >= PHYSICS_GOAL else "MISSED"
        lines.append(
            f"{label}: {physx[0]:,.0f} {unit}/{per} with 3DBall physics, {none[0]:,.0f} without "
            f"({ratio:.2f}x, goal >= {PHYSICS_GOAL}x {verdict}; runs: {_fmt(physx[1])} / {_fmt(none[1])})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is shown")
    parser.add_argument(
        "--agents", type=int, nargs="*", default=[12, 16, 64], help="agent counts (default 12 16 64)"
    )
    parser.add_argument(
        "--build", help="an extracted build folder holding 3DBall.x86_64 (default: package one)"
    )
    arguments = parser.parse_args(argv)
    os.environ.setdefault("UNITY_SIM_PYTHON", sys.executable)

    import google.protobuf

    print(
        f"python {sys.version.split()[0]}, protobuf {google.protobuf.__version__} "
        f"({api_implementation.Type()}), numpy {np.__version__}, "
        f"player python {os.environ['UNITY_SIM_PYTHON']}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_unity_sim_") as workdir:
        executable = prepare_build(arguments.build, Path(workdir))
        results = side_by_side(
            arguments.repeats, lambda physics: gym_steps_per_second(executable, arguments.steps, physics)
        )
        print(_line("gym wrapper, 1 agent, random actions", "steps", results), flush=True)
        for agents in arguments.agents:
            results = side_by_side(
                arguments.repeats,
                lambda physics, n=agents: agent_steps_per_second(
                    executable, n, arguments.steps // 4, physics
                ),
            )
            print(_line(f"low-level API, {agents} agents", "agent-steps", results), flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


def _fmt(runs: list[float]) -> str:
    return ", ".join(f"{run:,.0f}" for run in runs)


if __name__ == "__main__":
    sys.exit(main())
