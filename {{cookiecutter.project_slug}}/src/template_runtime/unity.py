"""Starting one Unity player and viewing its agents the way the template's options ask.

* ``EnvSettings``: what starting and viewing one Unity instance needs, read from a trainer's config;
* ``start_player``: ``UnityEnvironment`` on the first free worker_id, with the side channels
  (environment parameters, engine configuration, stats); ``RunningPlayer`` closes it again and makes
  sure its process (group) is gone;
* ``make_single_agent_env``: the one-agent gym view (the gym wrapper ML-Agents ships, ``gym_unity``
  up to 0.28, ``mlagents_envs.envs`` from 0.29, plus a one-line observation filter where the wrapper
  cannot express ``use_visual`` / ``allow_multiple_visual_obs`` by itself): ``Trainer.get_gym_env``;
* ``AgentBatch``: every agent of one instance as rows of NumPy arrays over the low-level API, what
  ``vec_env.UnityVecEnv`` stacks across instances (the env API every trainer uses).
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
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from template_runtime import fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split
import gym
import mlagents_envs
import numpy as np
from gym import spaces
from mlagents_envs.base_env import ActionTuple, BaseEnv, BehaviorSpec
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.exception import UnityEnvironmentException, UnityException, UnityWorkerInUseException
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from mlagents_envs.side_channel.stats_side_channel import StatsAggregationMethod, StatsSideChannel

from template_runtime.config import MAX_WORKER_ID


class UnityEnvOptionError(ValueError):
    """The config asks for something this Unity build does not offer (say which option)."""


class UnityStartError(RuntimeError):
    """The Unity player could not be started or did not connect; the message names the build and log."""


MLAGENTS_CAPTURE_FRAME_RATE = 60
"""What mlagents-learn sends (its --capture-frame-rate default)."""

WORKER_ID_ATTEMPTS = 32
"""How many worker ids (ports 5005 + id) to try when the configured one is busy."""


@dataclass(frozen=True)
class EnvSettings:
    """What starting and viewing one Unity instance needs: the env keys of a trainer's config.

    Built from the config by ``from_config``; ``for_instance(i)`` is the settings of the i-th of
    several parallel instances (seed + i, worker_id + i: the same seed would play the same episodes).
    Plain data, so it can be sent to a worker process.
    """

    worker_id: int = 0
    seed: int = 0
    no_graphics: bool = True
    timeout_wait: int = 60
    additional_args: tuple[str, ...] = ()
    env_parameters: tuple[tuple[str, float], ...] = ()
    time_scale: float = 20.0
    use_visual: bool = False
    use_uint8_visual: bool = False
    allow_multiple_visual_obs: bool = False
    flatten_branched: bool = False
    multiagent: bool = False
    log_folder: str = ""

    @classmethod
    def from_config(cls, config: Mapping, log_folder: str | os.PathLike = "") -> EnvSettings:
        return cls(
            worker_id=int(config["worker_id"]),
            seed=int(config["seed"]),
            no_graphics=bool(config["no_graphics"]),
            timeout_wait=int(config["timeout_wait"]),
            additional_args=tuple(str(arg) for arg in config["additional_args"]),
            env_parameters=tuple((str(k), float(v)) for k, v in dict(config["env_parameters"]).items()),
            time_scale=float(config["time_scale"]),
            use_visual=bool(config["use_visual"]),
            use_uint8_visual=bool(config["use_uint8_visual"]),
            allow_multiple_visual_obs=bool(config["allow_multiple_visual_obs"]),
            flatten_branched=bool(config["flatten_branched"]),
            multiagent=bool(config["multiagent"]),
            log_folder=str(log_folder),
        )

    def for_instance(self, index: int) -> EnvSettings:
        return replace(self, seed=self.seed + index, worker_id=self.worker_id + index)

    @property
    def view_options(self) -> dict:
        """The keyword arguments of ``make_single_agent_env`` and ``AgentBatch``."""
        return {
            "use_visual": self.use_visual,
            "use_uint8_visual": self.use_uint8_visual,
            "allow_multiple_visual_obs": self.allow_multiple_visual_obs,
            "flatten_branched": self.flatten_branched,
            "seed": self.seed,
        }


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
# Every agent of one instance, as rows of arrays


class AgentBatch:
    """Every agent of one Unity instance's single behaviour, one row per agent, over the low-level API.

    ``reset() -> obs`` and ``step(actions) -> (obs, rewards, terminated, truncated, final_obs)``, with
    NumPy arrays of one row per agent (``actions`` too). Unity restarts an agent's episode by itself
    and gives it a new id; each agent keeps its row across episodes. When an agent's episode ends,
    its row of ``obs`` is already the first observation of its next episode and the last one of the
    finished episode is ``final_obs[row]``; ``truncated`` means Unity's max step was reached
    (``interrupted``), ``terminated`` that the episode really ended. An agent that is not asking for a
    decision this step keeps its last observation and its action is ignored. With
    ``multiagent=False`` the build must have exactly one agent (the seed's meaning of the option).
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
        multiagent: bool = True,
    ):
        self.unity_env, self.multiagent = unity_env, multiagent
        self.behavior_name, self.behavior_spec = only_behavior(unity_env)
        check_observation_options(self.behavior_spec, use_visual, use_uint8_visual, allow_multiple_visual_obs)
        if use_visual and allow_multiple_visual_obs:
            raise UnityEnvOptionError(
                "allow_multiple_visual_obs=True gives several images per observation, which the batched "
                "env does not stack: set allow_multiple_visual_obs=False (the first camera is used), or use "
                "Trainer.get_gym_env for a one-agent gym env with a tuple of images"
            )
        self._pick, self.observation_space = _observation_picker(
            self.behavior_spec, use_visual, use_uint8_visual, False
        )
        self._to_actions, self.action_space = _action_converter(self.behavior_spec, flatten_branched)
        self.action_space.seed(seed)
        self.num_agents = 0
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._steady_ids: np.ndarray | None = None
        self._rows = np.zeros(0, dtype=np.int64)
        self._obs = np.zeros(0)

    def reset(self) -> np.ndarray:
        self.unity_env.reset()
        decision, _ = self.unity_env.get_steps(self.behavior_name)
        if len(decision) == 0:
            raise UnityEnvOptionError(f"no agent of {self.behavior_name!r} asked for a decision on reset()")
        if len(decision) > 1 and not self.multiagent:
            raise UnityEnvOptionError(
                f"the build has {len(decision)} agents of {self.behavior_name!r} and multiagent=False: set "
                "multiagent=True to drive them all (each agent is one row of the batch)"
            )
        self.num_agents = len(decision)
        self._slot_of = {int(agent): slot for slot, agent in enumerate(decision.agent_id)}
        self._free = []
        self._steady_ids = decision.agent_id.copy()
        self._rows = np.arange(self.num_agents)
        self._obs = np.array(self._pick(decision.obs))
        return self._obs

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
        if (
            not len(terminal)
            and self._steady_ids is not None
            and np.array_equal(decision.agent_id, self._steady_ids)
        ):
            # The fast path: every agent, same order. Arrays handed out are never changed afterwards
            # (the slow path works on a copy), so no copy is needed here.
            self._obs = np.asarray(self._pick(decision.obs))
            none = np.zeros(self.num_agents, dtype=bool)
            return self._obs, decision.reward.astype(np.float32), none, none.copy(), {}
        return self._slow_step(decision, terminal)

    def _slow_step(self, decision, terminal):
        n, obs = self.num_agents, self._obs.copy()
        rewards = np.zeros(n, dtype=np.float32)
        ended, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        final_obs: dict[int, np.ndarray] = {}
        last = self._pick(terminal.obs) if len(terminal) else None
        released: dict[int, int] = {}
        for k, agent in enumerate(terminal.agent_id):
            slot = released[int(agent)] = self._release(int(agent))
            rewards[slot], ended[slot], truncated[slot] = terminal.reward[k], True, terminal.interrupted[k]
            obs[slot] = final_obs[slot] = last[k]
        rows = [self._assign(int(agent), released) for agent in decision.agent_id]
        if rows:
            current = self._pick(decision.obs)
            for k, slot in enumerate(rows):
                if not ended[slot]:
                    rewards[slot] = decision.reward[k]
                obs[slot] = current[k]
        self._obs = obs
        self._rows = np.asarray(rows, dtype=np.int64)
        steady = len(rows) == n and rows == list(range(n)) and not self._free
        self._steady_ids = decision.agent_id.copy() if steady else None
        return obs, rewards, ended & ~truncated, truncated, final_obs

    def _release(self, agent: int) -> int:
        if agent not in self._slot_of:
            raise RuntimeError(
                f"agent id {agent} ended an episode it never started: agents must not be added mid-run"
            )
        slot = self._slot_of.pop(agent)
        self._free.append(slot)
        return slot

    def _assign(self, agent: int, released: dict[int, int]) -> int:
        """The agent's row; a new id takes a freed row (its own, if it kept its id across episodes)."""
        if agent in self._slot_of:
            return self._slot_of[agent]
        if agent in released and released[agent] in self._free:
            self._free.remove(released[agent])
            self._slot_of[agent] = released[agent]
            return released[agent]
        if not self._free:
            raise RuntimeError(
                f"a new agent (id {agent}) appeared while all {self.num_agents} rows are in use: the number "
                "of agents must stay fixed"
            )
        slot = self._free.pop(0)
        self._slot_of[agent] = slot
        return slot

    def close(self) -> None:
        self.unity_env.close()


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
    """A started UnityEnvironment, its process, its worker id and stats channel."""

    def __init__(
        self,
        env: UnityEnvironment,
        process: subprocess.Popen | None,
        worker_id: int = 0,
        stats: StatsSideChannel | None = None,
    ):
        self.env, self.process, self.worker_id, self.stats = env, process, worker_id, stats
        self.views: list = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def pop_stats(self) -> dict[str, list[tuple[float, StatsAggregationMethod]]]:
        """What the build reported through the StatsSideChannel since the last call."""
        return dict(self.stats.get_and_reset_stats()) if self.stats is not None else {}

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


def start_player(unity_file: str | os.PathLike, settings: EnvSettings) -> RunningPlayer:
    """Start the build on ``settings.worker_id``, or the next free id if that port is busy."""
    unity_file = str(unity_file)
    check_launchable(unity_file)
    # The simulated build (unity_sim/) is a Python program; by default it runs on this interpreter,
    # which has its packages. A real Unity build ignores the variable.
    os.environ.setdefault("UNITY_SIM_PYTHON", sys.executable)
    log = logging.getLogger("trainer")
    first = settings.worker_id
    last = min(first + WORKER_ID_ATTEMPTS, MAX_WORKER_ID + 1)  # ports stop at 65535
    for worker_id in range(first, last):
        port = UnityEnvironment.BASE_ENVIRONMENT_PORT + worker_id
        channels = side_channels(dict(settings.env_parameters), settings.time_scale)
        try:
            if port_in_use(port):
                raise UnityWorkerInUseException(worker_id)
            env = UnityEnvironment(
                file_name=unity_file,
                worker_id=worker_id,
                seed=settings.seed,
                no_graphics=settings.no_graphics,
                timeout_wait=settings.timeout_wait,
                additional_args=list(settings.additional_args),
                side_channels=channels,
                log_folder=settings.log_folder or None,
            )
        except UnityWorkerInUseException:
            log.warning("worker_id %d (port %d) is in use; trying %d", worker_id, port, worker_id + 1)
            continue
        except UnityException as error:
            player_log = Path(settings.log_folder or ".") / f"Player-{worker_id}.log"
            raise UnityStartError(
                f"the Unity player {unity_file} did not start: {error} (its log, if any: {player_log})"
            ) from error
        if worker_id != first:
            log.warning("using worker_id %d (port %d): worker_id %d was in use", worker_id, port, first)
        stats = next(channel for channel in channels if isinstance(channel, StatsSideChannel))
        return RunningPlayer(env, getattr(env, "_process", None), worker_id, stats)
    raise UnityStartError(
        f"worker_id {first} to {last - 1} are all in use: stop other Unity players or set worker_id "
        "to another free range"
    )


def check_launchable(unity_file: str) -> None:
    """mlagents-envs deletes '.app', '.exe' and '.x86' wherever they appear in the path it is given."""
    stem = unity_file.removesuffix(".x86_64").removesuffix(".x86")
    for fragment in (".app", ".exe", ".x86"):
        if fragment in stem:
            from template_runtime.build import UnityBuildError

            raise UnityBuildError(
                f"mlagents-envs cannot start {unity_file}: it removes {fragment!r} anywhere in the path. "
                f"Move the build (build_folder) to a folder whose path does not contain {fragment!r}"
            )


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
    """Fresh channels for one UnityEnvironment: the config's parameters and time scale, and the build's
    stats (``Academy.Instance.StatsRecorder.Add`` in C#)."""
    parameters = EnvironmentParametersChannel()
    for name, value in env_parameters.items():
        parameters.set_float_parameter(name, float(value))
    engine = EngineConfigurationChannel()
    # mlagents-learn's engine settings: with a capture frame rate Unity steps its clock by 1/60 s a
    # frame however fast frames come, so the build runs as fast as it can and physics stays stable
    # (time_scale alone would pace it at time_scale x real time).
    engine.set_configuration_parameters(
        time_scale=float(time_scale), target_frame_rate=-1, capture_frame_rate=MLAGENTS_CAPTURE_FRAME_RATE
    )
    return [parameters, engine, StatsSideChannel()]
