"""How fast the ML-Agents round trip is on the fast set vs the conservative set, side by side.

Each measurement runs in the Python of one venv (a subprocess), against the simulated 3DBall build
(unity_sim), whose player runs in that same venv: protobuf 6 through template_runtime.fastpath on both
ends, or protobuf 3.20.3 pure Python on both ends. It prints env steps/s and agent-steps/s through
UnityEnvironment (1, 16, 64 agents) and through gym-unity's UnityToGymWrapper (1 agent).

    python benchmarks/bench_protocol.py                      # .venv vs .venv-conservative
    python benchmarks/bench_protocol.py --fast-venv /tmp/a --conservative-venv /tmp/b --seconds 3

Random actions, no policy: this is the ceiling a trainer can reach, not what one reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from template_runtime import build as unity_build  # noqa: E402  (the trainer's own safe unzip; standard library only)

BUILD_NAME = "3DBall"
AGENT_COUNTS = (1, 16, 64)
GOALS = {("env", 1): 2.5, ("env", 16): 6.0}
"""Minimum fast/conservative ratios the fast path is expected to reach (issue: fast path)."""
WARMUP_STEPS = 20
STARTUP_TIMEOUT_S = 120
"""Allowance on top of the measured time for a child to start the player, connect and close."""


@dataclass(frozen=True)
class Case:
    """One measurement: which interface, how many agents in the build."""

    interface: str  # "env" (UnityEnvironment) or "gym" (UnityToGymWrapper)
    agents: int

    @property
    def label(self) -> str:
        noun = "agent" if self.agents == 1 else "agents"
        name = "UnityEnvironment" if self.interface == "env" else "UnityToGymWrapper"
        return f"{name}, {self.agents} {noun}"


CASES = [*(Case("env", n) for n in AGENT_COUNTS), Case("gym", 1)]


# --- Child side: runs inside the venv being measured ---------------------------------------------


def measure(executable: str, case: Case, seconds: float) -> dict[str, Any]:
    """Step the build for ``seconds`` with random actions; return steps/s and agent-steps/s."""
    sys.path.insert(0, str(REPO_ROOT / "src"))
    import template_runtime.fastpath as mlagents_fastpath

    mlagents_fastpath.install()  # already done by the import; explicit, as it must precede mlagents_envs
    from mlagents_envs.environment import UnityEnvironment

    env = UnityEnvironment(
        file_name=executable,
        base_port=free_port(),
        no_graphics=True,
        additional_args=["--agents", str(case.agents)],
        timeout_wait=60,
    )
    try:
        steps, agent_steps, elapsed = (_run_gym if case.interface == "gym" else _run_env)(env, seconds)
    finally:
        env.close()
    import google.protobuf

    return {
        "steps_per_s": steps / elapsed,
        "agent_steps_per_s": agent_steps / elapsed,
        "protobuf": google.protobuf.__version__,
        "hook_active": mlagents_fastpath.is_active(),
    }


def _run_env(env: Any, seconds: float) -> tuple[int, int, float]:
    """Drive UnityEnvironment directly: get_steps, set_actions, step; count agents that decided."""
    env.reset()
    behavior = next(iter(env.behavior_specs))
    action_spec = env.behavior_specs[behavior].action_spec
    actions_by_count: dict[int, Any] = {}  # one random action batch per agent count, made once

    def step() -> int:
        decision_steps, _ = env.get_steps(behavior)
        count = len(decision_steps)
        if count not in actions_by_count:
            actions_by_count[count] = action_spec.random_action(count)
        env.set_actions(behavior, actions_by_count[count])
        env.step()
        return count

    return _time_steps(step, seconds)


def _run_gym(env: Any, seconds: float) -> tuple[int, int, float]:
    """Drive the single-agent gym wrapper: step with sampled actions, reset when an episode ends."""
    gym_env = _gym_wrapper_class()(env)
    gym_env.reset()

    def step() -> int:
        _, _, done, _ = gym_env.step(gym_env.action_space.sample())
        if done:
            gym_env.reset()
        return 1

    return _time_steps(step, seconds)


def free_port() -> int:
    """A TCP port free right now on localhost; the player connects to it (worker_id 0)."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _time_steps(step: Callable[[], int], seconds: float) -> tuple[int, int, float]:
    """Warm up, then call ``step`` (which returns its agent count) until ``seconds`` have passed."""
    for _ in range(WARMUP_STEPS):
        step()
    steps = agent_steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent_steps += step()
        steps += 1
    return steps, agent_steps, time.perf_counter() - start


def _gym_wrapper_class() -> type:
    """gym-unity's wrapper (mlagents-envs 0.28), else the one inside mlagents-envs >= 0.29.

    mlagents_envs/envs/__init__.py of >= 0.29 imports pettingzoo and downloads a registry at import
    time; a stub package with the real ``__path__`` lets the wrapper module import offline.
    """
    try:
        from gym_unity.envs import UnityToGymWrapper
    except ImportError:
        import types

        import mlagents_envs

        stub = types.ModuleType("mlagents_envs.envs")
        stub.__path__ = [str(Path(mlagents_envs.__file__).parent / "envs")]
        sys.modules.setdefault("mlagents_envs.envs", stub)
        from mlagents_envs.envs.unity_gym_env import UnityToGymWrapper  # type: ignore[no-redef]
    return UnityToGymWrapper


# --- Parent side: builds the player, runs every case in each venv, prints the table ---------------


def venv_python(venv: Path) -> Path:
    """The venv's interpreter, or a clear error saying how to create the venv."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"bench_protocol.py: no Python at {python}. Create the venv first, e.g.\n"
            f"  python3.11 -m venv {venv} && PIP_CONSTRAINT=requirements/build-constraints.txt "
            f"{venv}/bin/pip install -r requirements/dev.txt  (dev-conservative.txt for the conservative one)"
        )
    return python


def package_player(out_dir: Path) -> Path:
    """Package the simulated 3DBall build and extract it; return the executable's path."""
    command = [sys.executable, "-m", "unity_sim.package_build", "--name", BUILD_NAME, "--out", str(out_dir)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"bench_protocol.py: packaging the simulated build failed:\n{result.stderr[-3000:]}")
    return unity_build.build_from_zip(out_dir / f"{BUILD_NAME}.zip", out_dir / BUILD_NAME, BUILD_NAME)


def run_case(python: Path, executable: Path, case: Case, seconds: float) -> dict[str, Any]:
    """Measure one case in a child process of ``python``; the player runs on the same Python."""
    env = {
        **os.environ,
        "UNITY_SIM_PYTHON": str(python),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]),
    }
    command = [str(python), __file__, "--child", str(executable), case.interface, str(case.agents)]
    command += ["--seconds", str(seconds)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=STARTUP_TIMEOUT_S + seconds
        )
    except subprocess.TimeoutExpired as timeout:
        raise SystemExit(
            f"bench_protocol.py: {case.label} in {python} hung; stopped after {timeout.timeout:g} s"
        ) from None
    if result.returncode != 0:
        raise SystemExit(f"bench_protocol.py: {case.label} failed in {python}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_all(
    pythons: dict[str, Path], executable: Path, seconds: float, repeats: int
) -> dict[str, dict[Case, dict[str, Any]]]:
    """Every case in every venv, ``repeats`` times; the venvs alternate so load changes hit both."""
    results: dict[str, dict[Case, dict[str, Any]]] = {name: {} for name in pythons}
    for case in CASES:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in pythons}
        for _ in range(repeats):
            for name, python in pythons.items():
                runs[name].append(run_case(python, executable, case, seconds))
        for name in pythons:
            results[name][case] = median_result(runs[name])
            rate = results[name][case]["agent_steps_per_s"]
            print(f"  {case.label:30} {name:12} {rate:>9,.0f} agent-steps/s", file=sys.stderr)
    return results


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each rate over repeated runs (the other fields are the same in every run)."""
    merged = dict(runs[0])
    for key in ("steps_per_s", "agent_steps_per_s"):
        merged[key] = statistics.median(run[key] for run in runs)
    return merged


def format_table(results: dict[str, dict[Case, dict[str, Any]]], repeats: int, seconds: float) -> str:
    """The side-by-side table, with the fast/conservative ratio and the goals it should reach."""
    fast, conservative = results["fast"], results["conservative"]
    any_case = CASES[0]
    lines = [
        f"ML-Agents round trip, simulated {BUILD_NAME}, random actions; median of {repeats} x {seconds:g} s",
        f"fast set: protobuf {fast[any_case]['protobuf']} (hook active: {fast[any_case]['hook_active']}); "
        f"conservative set: protobuf {conservative[any_case]['protobuf']}",
        "",
        f"{'':30} {'fast set':^22} {'conservative set':^22} {'ratio':>7}  goal",
        f"{'':30} {'steps/s':>10} {'agent-st/s':>11} {'steps/s':>10} {'agent-st/s':>11}",
    ]
    for case in CASES:
        ratio = fast[case]["agent_steps_per_s"] / conservative[case]["agent_steps_per_s"]
        goal = GOALS.get((case.interface, case.agents))
        verdict = "" if goal is None else f">= {goal:g}x {'met' if ratio >= goal else 'MISSED'}"
        lines.append(
            f"{case.label:30} {fast[case]['steps_per_s']:>10,.0f} {fast[case]['agent_steps_per_s']:>11,.0f} "
            f"{conservative[case]['steps_per_s']:>10,.0f} {conservative[case]['agent_steps_per_s']:>11,.0f} "
            f"{ratio:>6.1f}x  {verdict}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fast-venv", type=Path, default=REPO_ROOT / ".venv", help="venv of requirements/dev.txt"
    )
    parser.add_argument(
        "--conservative-venv",
        type=Path,
        default=REPO_ROOT / ".venv-conservative",
        help="venv of requirements/dev-conservative.txt",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per run, after warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the table shows medians")
    parser.add_argument(
        "--build", type=Path, help="an extracted 3DBall.x86_64 to use instead of packaging one"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("EXECUTABLE", "INTERFACE", "AGENTS"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        executable, interface, agents = args.child
        print(json.dumps(measure(executable, Case(interface, int(agents)), args.seconds)))
        return 0
    pythons = {"fast": venv_python(args.fast_venv), "conservative": venv_python(args.conservative_venv)}
    with tempfile.TemporaryDirectory(prefix="bench-protocol-") as scratch:
        executable = args.build.resolve() if args.build else package_player(Path(scratch))
        results = run_all(pythons, executable, args.seconds, args.repeats)
    print(format_table(results, args.repeats, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
