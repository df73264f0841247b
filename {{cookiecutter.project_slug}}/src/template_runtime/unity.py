"""Gym-style views of a running ``UnityEnvironment`` that honour the template's observation options.

Support code for ``trainer.py`` (kept apart so it stays readable). Two views:

* one agent: the gym wrapper ML-Agents ships (``gym_unity`` up to 0.28, ``mlagents_envs.envs`` from
  0.29), given the options it still has, plus a one-line observation filter only where today's
  wrapper cannot express ``use_visual`` / ``allow_multiple_visual_obs`` by itself;
* several agents (``multiagent=True``, which the gym wrapper refuses): ``MultiAgentUnityEnv`` over
  the low-level API, with lists of observations, rewards and dones like the original template's.

``RunningPlayer`` closes a started player and makes sure its process (group) is gone.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import types
import warnings
from contextlib import contextmanager

from template_runtime import fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split
import gym
import mlagents_envs
import numpy as np
from gym import spaces
from mlagents_envs.base_env import ActionTuple, BaseEnv, BehaviorSpec
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import UnityEnvironmentException
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel


class UnityEnvOptionError(ValueError):
    """The config asks for something this Unity build does not offer (say which option)."""


# ----------------------------------------------------------------------------------------------
# Finding the gym wrapper


def gym_wrapper_class() -> type:
    """``UnityToGymWrapper`` from wherever the installed ML-Agents keeps it."""
    version = tuple(int(part) for part in mlagents_envs.__version__.split(".")[:2] if part.isdigit())
    if version >= (0, 29):
        return import_skipping_package_init("mlagents_envs.envs", "unity_gym_env").UnityToGymWrapper
    from gym_unity.envs import UnityToGymWrapper

    return UnityToGymWrapper


def import_skipping_package_init(package: str, module: str) -> types.ModuleType:
    """Import ``package.module`` without running ``package/__init__.py``.

    From 0.29 on, ``mlagents_envs/envs/__init__.py`` imports pettingzoo and downloads a registry
    manifest from the internet with no error handling, so offline (a SageMaker job in a VPC, CI)
    importing the gym wrapper hangs or fails. A stub package with the real ``__path__`` lets the
    submodule import normally.
    """
    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{package} is not an installed package")
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        sys.modules[package] = stub
        parent, _, child = package.rpartition(".")
        if parent:
            setattr(importlib.import_module(parent), child, stub)
    return importlib.import_module(f"{package}.{module}")


# ----------------------------------------------------------------------------------------------
# Observation layout and option checks


def only_behavior(unity_env: BaseEnv) -> tuple[str, BehaviorSpec]:
    if not unity_env.behavior_specs:
        unity_env.step()
    names = list(unity_env.behavior_specs)
    if len(names) != 1:
        raise UnityEnvOptionError(
            f"the build has {len(names)} behaviours {names}; the gym and multiagent envs need exactly one "
            "(use Trainer.get_unity_env for the low-level API)"
        )
    return names[0], unity_env.behavior_specs[names[0]]


def observation_layout(spec: BehaviorSpec) -> tuple[list[int], list[int]]:
    """Indices of the visual (rank 3) and vector (rank 1) observations in ``spec``."""
    visual = [i for i, obs in enumerate(spec.observation_specs) if len(obs.shape) == 3]
    vector = [i for i, obs in enumerate(spec.observation_specs) if len(obs.shape) == 1]
    return visual, vector


def check_observation_options(spec: BehaviorSpec, use_visual: bool, uint8: bool, multiple: bool) -> None:
    """Refuse what cannot be done; warn about options that have no effect with this choice."""
    visual, vector = observation_layout(spec)
    shapes = [tuple(spec.observation_specs[i].shape) for i in visual + vector]
    if use_visual and not visual:
        raise UnityEnvOptionError(
            f"use_visual=True but the build has no visual observation (observation shapes {shapes}): "
            "set use_visual=False, or add a camera sensor to the agent"
        )
    if not use_visual and not vector:
        raise UnityEnvOptionError(
            f"use_visual=False but the build has no vector observation (observation shapes {shapes}): "
            "set use_visual=True"
        )
    log = logging.getLogger("trainer")
    if not use_visual and (uint8 or multiple):
        log.warning("use_uint8_visual / allow_multiple_visual_obs have no effect with use_visual=False")


@contextmanager
def _quiet(logger_name: str):
    """Hide the wrapper's warnings about options we chose on purpose (they would mislead)."""
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # gym's note about the wrapper's own Box(-1, 1) bounds
            warnings.filterwarnings("ignore", message=".*Box bound precision lowered")
            yield
    finally:
        log.setLevel(level)


# ----------------------------------------------------------------------------------------------
# One agent: the gym wrapper


class _LastObservation(gym.ObservationWrapper):
    """The wrapper returns [visual..., vector]; keep the vector (``use_visual=False``)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = env.observation_space.spaces[-1]

    def observation(self, observation):
        return observation[-1]


class _VisualObservations(gym.ObservationWrapper):
    """The wrapper returns [visual..., vector]; keep the visual ones (``allow_multiple_visual_obs``)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Tuple(env.observation_space.spaces[:-1])

    def observation(self, observation):
        return observation[:-1]


def make_single_agent_env(
    unity_env: BaseEnv,
    *,
    use_visual: bool,
    use_uint8_visual: bool,
    allow_multiple_visual_obs: bool,
    flatten_branched: bool,
    seed: int,
) -> gym.Env:
    """A gym env for a one-agent build; a filter is added only when the wrapper alone can't comply."""
    _, spec = only_behavior(unity_env)
    check_observation_options(spec, use_visual, use_uint8_visual, allow_multiple_visual_obs)
    visual, vector = observation_layout(spec)
    wrapper = gym_wrapper_class()
    multiple = (not use_visual and bool(visual)) or (use_visual and allow_multiple_visual_obs)
    with _quiet(wrapper.__module__):
        env = wrapper(
            unity_env,
            uint8_visual=use_visual and use_uint8_visual,
            flatten_branched=flatten_branched,
            allow_multiple_obs=multiple,
            action_space_seed=seed,
        )
    if not use_visual and visual:
        return _LastObservation(env)
    if use_visual and allow_multiple_visual_obs and vector:
        return _VisualObservations(env)
    return env


# ----------------------------------------------------------------------------------------------
# Several agents: the low-level API


class MultiAgentUnityEnv:
    """Every agent of the build's one behaviour, as lists with one entry per agent.

    ``reset() -> observations``; ``step(actions) -> (observations, rewards, dones, info)`` where
    ``actions`` has one row per agent. Unity restarts an agent's episode by itself and gives it a
    new id, so each agent keeps a fixed slot (its list index) across episodes. When an agent ends an
    episode its ``done`` is True, its reward is the final one, and its observation is already the
    first of its next episode when Unity sent it (the final one is in
    ``info["terminal_observations"][slot]``). An agent that is not asking for a decision this step
    keeps its last observation and its action is ignored. ``info`` also has ``interrupted`` (hit the
    step limit) and the raw ``decision_steps`` / ``terminal_steps``.
    """

    def __init__(
        self,
        unity_env: BaseEnv,
        *,
        use_visual: bool,
        use_uint8_visual: bool,
        allow_multiple_visual_obs: bool,
        flatten_branched: bool,
        seed: int,
    ):
        self.unity_env = unity_env
        self.behavior_name, spec = only_behavior(unity_env)
        check_observation_options(spec, use_visual, use_uint8_visual, allow_multiple_visual_obs)
        self._pick, self.observation_space = _observation_picker(
            spec, use_visual, use_uint8_visual, allow_multiple_visual_obs
        )
        self._to_actions, self.action_space = _action_converter(spec, flatten_branched)
        self.action_space.seed(seed)
        self.num_agents = 0
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._steady_ids: np.ndarray | None = None
        self._rows = np.zeros(0, dtype=np.int64)
        self._obs: list = []

    def reset(self) -> list:
        self.unity_env.reset()
        decision, _ = self.unity_env.get_steps(self.behavior_name)
        if len(decision) == 0:
            raise RuntimeError(f"no agent of {self.behavior_name!r} asked for a decision after reset()")
        self.num_agents = len(decision)
        self._slot_of = {int(agent): slot for slot, agent in enumerate(decision.agent_id)}
        self._free = []
        self._steady_ids = decision.agent_id.copy()
        self._rows = np.arange(self.num_agents)
        self._obs = self._per_agent(decision.obs, self.num_agents)
        return list(self._obs)

    def step(self, actions):
        if not self.num_agents:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if len(actions) != self.num_agents:
            raise ValueError(f"step() needs one action per agent ({self.num_agents}), got {actions.shape}")
        if len(self._rows):
            steady = len(self._rows) == self.num_agents and self._steady_ids is not None
            self.unity_env.set_actions(
                self.behavior_name, self._to_actions(actions if steady else actions[self._rows])
            )
        self.unity_env.step()
        decision, terminal = self.unity_env.get_steps(self.behavior_name)
        info = {"terminal_observations": {}, "decision_steps": decision, "terminal_steps": terminal}
        if (
            not len(terminal)
            and self._steady_ids is not None
            and np.array_equal(decision.agent_id, self._steady_ids)
        ):
            self._obs = self._per_agent(decision.obs, len(decision))  # fast path: every agent, same order
            info["interrupted"] = [False] * self.num_agents
            return list(self._obs), decision.reward.tolist(), [False] * self.num_agents, info
        return self._slow_step(decision, terminal, info)

    def _slow_step(self, decision, terminal, info):
        n = self.num_agents
        rewards, dones, interrupted = [0.0] * n, [False] * n, [False] * n
        final = self._per_agent(terminal.obs, len(terminal)) if len(terminal) else []
        ended: dict[int, int] = {}
        for k, agent in enumerate(terminal.agent_id):
            slot = ended[int(agent)] = self._release(int(agent))
            rewards[slot], dones[slot] = float(terminal.reward[k]), True
            interrupted[slot] = bool(terminal.interrupted[k])
            self._obs[slot] = info["terminal_observations"][slot] = final[k]
        rows = [self._assign(int(agent), ended) for agent in decision.agent_id]
        current = self._per_agent(decision.obs, len(decision))
        for k, slot in enumerate(rows):
            if not dones[slot]:
                rewards[slot] = float(decision.reward[k])
            self._obs[slot] = current[k]
        self._rows = np.asarray(rows, dtype=np.int64)
        steady = len(rows) == n and rows == list(range(n)) and not self._free
        self._steady_ids = decision.agent_id.copy() if steady else None
        info["interrupted"] = interrupted
        return list(self._obs), rewards, dones, info

    def _release(self, agent: int) -> int:
        if agent not in self._slot_of:
            raise RuntimeError(
                f"agent id {agent} ended an episode it never started: agents must not be added mid-run"
            )
        slot = self._slot_of.pop(agent)
        self._free.append(slot)
        return slot

    def _assign(self, agent: int, ended: dict[int, int]) -> int:
        """The agent's slot; a new id takes a freed slot (its own, if it kept its id across episodes)."""
        if agent in self._slot_of:
            return self._slot_of[agent]
        if agent in ended and ended[agent] in self._free:
            self._free.remove(ended[agent])
            self._slot_of[agent] = ended[agent]
            return ended[agent]
        if not self._free:
            raise RuntimeError(
                f"a new agent (id {agent}) appeared while all {self.num_agents} slots are in use: "
                "multiagent needs the number of agents to stay fixed"
            )
        slot = self._free.pop(0)
        self._slot_of[agent] = slot
        return slot

    def _per_agent(self, observations, count: int) -> list:
        picked = self._pick(observations)
        if isinstance(picked, list):
            return [[part[i] for part in picked] for i in range(count)]
        return list(picked)

    def close(self) -> None:
        self.unity_env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _observation_picker(spec: BehaviorSpec, use_visual: bool, uint8: bool, multiple: bool):
    """A function from the batch observation list to what the options ask for, and its per-agent space."""
    visual, vector = observation_layout(spec)
    if not use_visual:
        size = sum(spec.observation_specs[i].shape[0] for i in vector)
        space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        if len(vector) == 1:
            only = vector[0]
            return (lambda obs: obs[only]), space
        return (lambda obs: np.concatenate([obs[i] for i in vector], axis=1)), space

    def convert(batch):
        return (255.0 * batch).astype(np.uint8) if uint8 else batch

    boxes = [
        spaces.Box(0, 255, shape=spec.observation_specs[i].shape, dtype=np.uint8)
        if uint8
        else spaces.Box(0, 1, shape=spec.observation_specs[i].shape, dtype=np.float32)
        for i in visual
    ]
    if multiple:
        return (lambda obs: [convert(obs[i]) for i in visual]), spaces.Tuple(boxes)
    first = visual[0]
    return (lambda obs: convert(obs[first])), boxes[0]


def _action_converter(spec: BehaviorSpec, flatten_branched: bool):
    """A function from a batch of actions to an ``ActionTuple``, and the per-agent action space."""
    action_spec = spec.action_spec
    if action_spec.continuous_size and action_spec.discrete_size:
        raise UnityEnvOptionError(
            "the build mixes continuous and discrete actions, which these envs do not support"
        )
    if action_spec.continuous_size:
        size = action_spec.continuous_size
        if flatten_branched:
            logging.getLogger("trainer").warning("flatten_branched has no effect: the actions are continuous")
        space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        return (
            lambda a: ActionTuple(continuous=np.asarray(a, dtype=np.float32).reshape(len(a), size))
        ), space
    branches = tuple(action_spec.discrete_branches)
    if len(branches) == 1:
        return (
            lambda a: ActionTuple(discrete=np.asarray(a, dtype=np.int32).reshape(len(a), 1))
        ), spaces.Discrete(branches[0])
    if not flatten_branched:
        space = spaces.MultiDiscrete(list(branches))
        return (
            lambda a: ActionTuple(discrete=np.asarray(a, dtype=np.int32).reshape(len(a), len(branches)))
        ), space
    table = np.array(list(itertools.product(*(range(b) for b in branches))), dtype=np.int32)
    return (
        lambda a: ActionTuple(discrete=table[np.asarray(a, dtype=np.int64).reshape(-1)])
    ), spaces.Discrete(len(table))


# ----------------------------------------------------------------------------------------------
# The player process


class RunningPlayer:
    """A started UnityEnvironment, its process, and the env objects built on it."""

    def __init__(self, env: UnityEnvironment, process: subprocess.Popen | None):
        self.env, self.process, self.views = env, process, []

    def close(self) -> None:
        """Ask the player to quit (mlagents waits timeout_wait for it), then kill whatever is left."""
        try:
            self.env.close()
        except UnityEnvironmentException:
            pass  # already closed by the user
        finally:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.kill()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    logging.getLogger("trainer").error(
                        "Unity player pid %d did not die after SIGKILL", self.process.pid
                    )
                # the player leads its own session: take anything it started with it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)


def port_in_use(port: int) -> bool:
    """The same test mlagents makes, done first so a busy port never half-builds a UnityEnvironment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("localhost", port))
        except OSError:
            return True
    return False


def side_channels(env_parameters: dict, time_scale: float) -> list:
    """Fresh channels for one UnityEnvironment, carrying the config's parameters and time scale."""
    parameters = EnvironmentParametersChannel()
    for name, value in env_parameters.items():
        parameters.set_float_parameter(name, float(value))
    engine = EngineConfigurationChannel()
    engine.set_configuration_parameters(time_scale=float(time_scale))
    return [parameters, engine]
