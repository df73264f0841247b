"""The Unity side of the conversation: agents, sensors, actions and side channels (no networking).

Named after Unity's ``Academy``, which does the same job in a real build: it answers each command
from Python (RESET or STEP, plus side-channel messages) with the agents' new state. It behaves like
ML-Agents 2.0 (communication API 1.5.0) where a trainer can tell:

- an agent whose episode ends sends a terminal ``AgentInfo`` (``done``; ``max_step_reached`` when it
  hit the step limit) and, in the same message, a decision request for its next episode under a
  NEW agent id (Unity gives each episode its own id);
- RESET restarts every agent, also under new ids, and sends a decision request for each;
- discrete actions can carry action masks; environment parameters apply as in 3DBall (gravity at
  once, mass and scale when an agent's episode begins);
- with ``stats``, it reports custom stats through the StatsSideChannel (as a game calls
  ``Academy.Instance.StatsRecorder.Add``), one of each aggregation method (see ``STATS``);
- once the trainer sets time_scale (EngineConfigurationChannel), decisions are paced like a real
  build's (see ``clock.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from mlagents_envs.communicator_objects.brain_parameters_pb2 import ActionSpecProto, BrainParametersProto
from mlagents_envs.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from mlagents_envs.communicator_objects.command_pb2 import RESET, STEP
from mlagents_envs.communicator_objects.unity_output_pb2 import UnityOutputProto
from mlagents_envs.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto

from unity_sim import ball_balance, wire
from unity_sim.ball_balance import BallBalance
from unity_sim.clock import GameClock

ENGINE_TIME_SCALE, ENGINE_TARGET_FRAME_RATE, ENGINE_CAPTURE_FRAME_RATE = 2, 3, 4
"""EngineConfigurationChannel message types that change how fast the build runs."""
COMMUNICATION_VERSION = "1.5.0"
"""The ML-Agents communication API that mlagents-envs 0.28 .. 1.1 speak."""
PACKAGE_VERSION = "2.0.1"
"""A com.unity.ml-agents release that speaks API 1.5.0 (only logged by the trainer)."""
ACTION_TYPES = ("continuous", "discrete", "branched")
SENSOR_KINDS = ("vector", "visual", "gray")
STATS = {
    "3DBall/ball_distance": wire.STATS_AVERAGE,
    "3DBall/tilt_degrees": wire.STATS_MOST_RECENT,
    "3DBall/falls": wire.STATS_SUM,
    "3DBall/episode_length": wire.STATS_HISTOGRAM,
    "3DBall/time_scale": wire.STATS_MOST_RECENT,
}
"""The custom stats and their aggregation. Every decision: the balls' mean horizontal distance from
their cube's centre, the first cube's tilt in degrees, the number of balls that fell; at each episode
end its length in decisions; once the trainer set it, Time.timeScale."""

log = logging.getLogger("unity_sim")


@dataclass(frozen=True)
class AcademySettings:
    """Everything fixed for the life of the process (the trainer learns the spec at the handshake)."""

    behavior_name: str = "3DBall?team=0"
    agents: int = 12
    max_steps: int = 1000
    seed: int = 0
    action_type: str = "continuous"
    sensors: tuple[str, ...] = ("vector",)
    image_size: int = 32
    compressed_images: bool = True
    action_masks: bool = False
    physics: str = "physx"
    stats: bool = False


class Sensor:
    """One observation of every agent, encoded as ``observations`` field bytes per agent."""

    def __init__(self, kind: str, index: int, settings: AcademySettings) -> None:
        """``index`` counts earlier sensors of the same kind, to keep sensor names unique."""
        self.kind = kind
        self.size = settings.image_size
        self.compressed = settings.compressed_images and kind != "vector"
        self.encoder = wire.ObservationEncoder(self._layout(index))

    def _layout(self, index: int) -> wire.ObservationLayout:
        """Shape, name and dimension properties as Unity's VectorSensor / CameraSensor send them."""
        suffix = f"_{index}" if index else ""
        if self.kind == "vector":
            size = ball_balance.OBSERVATION_SIZE
            return wire.ObservationLayout((size,), f"VectorSensor_size{size}", dimension_properties=(1,))
        channels = 3 if self.kind == "visual" else 1
        # A one-channel image still travels as an RGB PNG; the mapping says to average it back.
        mapping = (0, 0, 0) if self.compressed and channels == 1 else ()
        return wire.ObservationLayout(
            (self.size, self.size, channels),
            f"TopDownCamera{'Gray' if channels == 1 else ''}{suffix}",
            compressed=self.compressed,
            channel_mapping=mapping,
            dimension_properties=(2, 2, 1),  # translational equivariance over H and W
        )

    def encode(self, env: BallBalance, agents: np.ndarray, terminal: bool = False) -> list[bytes]:
        """Encoded observation of each agent in ``agents`` (an index array); ``terminal``: as each
        agent's episode ended."""
        if self.kind == "vector":
            values = env.terminal_observations() if terminal else env.observations()
            return self.encoder.encode_floats(values[agents])
        images = ball_balance.render_top_down(env, self.size, agents, terminal)
        if self.kind == "gray":
            grey = images.mean(axis=3, keepdims=True).astype(np.uint8)
            images = np.repeat(grey, 3, axis=3) if self.compressed else grey
        if self.compressed:
            return [self.encoder.encode_compressed(wire.encode_png(image)) for image in images]
        return self.encoder.encode_floats(images.astype(np.float32) / 255.0)


class Academy:
    """Answers RESET and STEP commands for one behaviour of ``settings.agents`` agents."""

    def __init__(self, settings: AcademySettings) -> None:
        _check_settings(settings)
        self.settings = settings
        self.env = BallBalance(settings.agents, settings.max_steps, settings.seed, settings.physics)
        self.clock = GameClock()
        self.sensors = [
            Sensor(kind, settings.sensors[:i].count(kind), settings)
            for i, kind in enumerate(settings.sensors)
        ]
        self.agent_ids = np.arange(settings.agents)
        self._next_agent_id = settings.agents
        self._all_agents = np.arange(settings.agents)
        self._warned_about: set[str] = set()

    # ---- handshake ---------------------------------------------------------------------------
    def initialization_output(self, log_path: str) -> UnityOutputProto:
        """The first message: who we are, the behaviour's spec, and one AgentInfo per agent."""
        output = UnityOutputProto()
        init = output.rl_initialization_output
        init.name = "AcademySingleton"
        init.communication_version = COMMUNICATION_VERSION
        init.package_version = PACKAGE_VERSION
        init.log_path = log_path
        init.capabilities.CopyFrom(_capabilities())
        init.brain_parameters.append(self.brain_parameters())
        output.rl_output.ParseFromString(self._rl_output(self._decision_infos(np.zeros(self.env.num_agents))))
        return output

    def brain_parameters(self) -> BrainParametersProto:
        """The behaviour's name and action spec (observation specs travel in the AgentInfos)."""
        spec = ActionSpecProto()
        if self.settings.action_type == "continuous":
            spec.num_continuous_actions = 2
        else:
            branches = [9] if self.settings.action_type == "discrete" else [3, 3]
            spec.num_discrete_actions = len(branches)
            spec.discrete_branch_sizes.extend(branches)
        return BrainParametersProto(
            brain_name=self.settings.behavior_name, is_training=True, action_spec=spec
        )

    def seed(self, seed: int) -> None:
        """Restart the random stream (after the handshake, with the seed Python or --seed gave)."""
        self.env.reseed(seed)

    # ---- commands ----------------------------------------------------------------------------
    def handle(self, rl_input: UnityRLInputProto) -> bytes:
        """Answer one command with the ``UnityRLOutputProto`` bytes Python expects next."""
        self._read_side_channel(rl_input.side_channel)
        if rl_input.command == RESET:
            return self.reset()
        if rl_input.command == STEP:
            return self.step(self._tilt_changes(rl_input))
        raise ValueError(
            f"command {rl_input.command} is neither STEP nor RESET; QUIT is handled by the player"
        )

    def reset(self) -> bytes:
        """Restart every agent under a new id (Unity's environment reset)."""
        everyone = np.ones(self.env.num_agents, bool)
        self._new_episodes(everyone)
        return self._rl_output(self._decision_infos(np.zeros(self.env.num_agents)))

    def step(self, tilt_changes: np.ndarray) -> bytes:
        """Advance all agents one decision; ended episodes report, then restart as new agents."""
        self.clock.advance(ball_balance.DECISION_SECONDS)
        outcome = self.env.step(tilt_changes)
        rewards = outcome.reward.copy()
        ended = outcome.ended.copy()
        infos: list[bytes] = []
        stats = self._stats(outcome) if self.settings.stats else b""
        if ended.any():
            infos += self._terminal_infos(np.flatnonzero(ended), rewards, outcome.reached_max_step)
            self._new_episodes(ended)
            rewards[ended] = 0.0
        infos += self._decision_infos(rewards)
        return self._rl_output(infos, stats)

    def _stats(self, outcome: ball_balance.StepOutcome) -> bytes:
        """This decision's StatsSideChannel messages (see ``STATS``)."""
        env = self.env
        position = env.position
        distance = float(np.sqrt(position[:, 0] ** 2 + position[:, 2] ** 2).mean())
        messages = [
            wire.encode_stat("3DBall/ball_distance", distance, STATS["3DBall/ball_distance"]),
            wire.encode_stat(
                "3DBall/tilt_degrees", float(env.tilt_degrees()[0]), STATS["3DBall/tilt_degrees"]
            ),
            wire.encode_stat("3DBall/falls", float(outcome.fell.sum()), STATS["3DBall/falls"]),
        ]
        for length in env.steps[outcome.ended].tolist():
            messages.append(wire.encode_stat("3DBall/episode_length", length, STATS["3DBall/episode_length"]))
        if self.clock.configured:
            time_scale = float(self.clock.time_scale)
            messages.append(wire.encode_stat("3DBall/time_scale", time_scale, STATS["3DBall/time_scale"]))
        return b"".join(messages)

    # ---- helpers -----------------------------------------------------------------------------
    def _new_episodes(self, agents: np.ndarray) -> None:
        """Restart the masked agents and give each a fresh id."""
        count = int(agents.sum())
        self.agent_ids[agents] = np.arange(self._next_agent_id, self._next_agent_id + count)
        self._next_agent_id += count
        self.env.restart(agents)

    def _terminal_infos(self, agents: np.ndarray, rewards: np.ndarray, max_step: np.ndarray) -> list[bytes]:
        """Final AgentInfos of the ended agents (their last observation, reward and why they ended)."""
        observations = self._observations(agents, terminal=True)
        return [
            wire.encode_agent_info(
                float(rewards[a]), int(self.agent_ids[a]), obs, done=True, max_step_reached=bool(max_step[a])
            )
            for a, obs in zip(agents, observations, strict=True)
        ]

    def _decision_infos(self, rewards: np.ndarray) -> list[bytes]:
        """A decision request from every agent, in agent order (the order actions come back in)."""
        observations = self._observations(self._all_agents)
        masks = self._action_masks()
        ids = self.agent_ids.tolist()
        return [
            wire.encode_agent_info(reward, agent_id, obs, action_mask=mask)
            for reward, agent_id, obs, mask in zip(rewards.tolist(), ids, observations, masks, strict=True)
        ]

    def _observations(self, agents: np.ndarray, terminal: bool = False) -> list[bytes]:
        """Concatenated observation fields of all sensors, per agent."""
        per_sensor = [sensor.encode(self.env, agents, terminal) for sensor in self.sensors]
        if len(per_sensor) == 1:
            return per_sensor[0]
        return [b"".join(parts) for parts in zip(*per_sensor, strict=True)]

    def _action_masks(self) -> list[bytes]:
        """Per-agent action_mask fields: tilting further at the tilt limit is masked out."""
        if not self.settings.action_masks or self.settings.action_type == "continuous":
            return [b""] * self.env.num_agents
        allowed = self.env.allowed_tilts()  # [n, axis, direction]
        if self.settings.action_type == "branched":
            masked = ~allowed.reshape(self.env.num_agents, 6)
        else:
            z_ok = allowed[:, 0, :, None]
            x_ok = allowed[:, 1, None, :]
            masked = ~(z_ok & x_ok).reshape(self.env.num_agents, 9)
        return [wire.encode_action_mask(row) for row in masked]

    def _rl_output(self, infos: list[bytes], side_channel: bytes = b"") -> bytes:
        return wire.encode_rl_output(self.settings.behavior_name, infos, side_channel)

    def _tilt_changes(self, rl_input: UnityRLInputProto) -> np.ndarray:
        """Actions for the agents in decision order, as tilt changes [n, 2] in [-1, 1]."""
        n = self.env.num_agents
        name = self.settings.behavior_name
        if name not in rl_input.agent_actions:
            return np.zeros((n, 2), np.float32)  # Unity keeps agents still when no action came
        actions = rl_input.agent_actions[name].value
        if len(actions) != n:
            raise ValueError(f"received {len(actions)} actions for {name!r} but {n} agents asked for one")
        if self.settings.action_type == "continuous":
            return np.array([list(a.continuous_actions) for a in actions], np.float32).reshape(n, 2)
        branches = 1 if self.settings.action_type == "discrete" else 2
        chosen = np.array([list(a.discrete_actions) for a in actions], np.int64).reshape(n, branches)
        if branches == 1:
            return ball_balance.discrete_to_tilt(np.clip(chosen, 0, 8))
        return ball_balance.branched_to_tilt(np.clip(chosen, 0, 2))

    def _read_side_channel(self, data: bytes) -> None:
        """Apply environment parameters; accept engine configuration; skip unknown channels."""
        for channel_id, payload in wire.split_side_channel(data):
            if channel_id == wire.ENVIRONMENT_PARAMETERS_CHANNEL:
                self._apply_environment_parameter(payload)
            elif channel_id == wire.ENGINE_CONFIGURATION_CHANNEL:
                self._apply_engine_configuration(wire.read_engine_configuration(payload))
            elif channel_id == wire.TRAINING_ANALYTICS_CHANNEL:
                pass  # mlagents-envs always sends it; Unity forwards it to its analytics only
            else:
                self._warn_once(f"side channel {channel_id}", "ignored: no handler for this id (as in Unity)")

    def _apply_engine_configuration(self, config: tuple[int, tuple[float, ...]] | None) -> None:
        """Time scale, target and capture frame rate pace the decisions; the rest has nothing to act on."""
        if config is None:
            self._warn_once("engine configuration", "ignored: a malformed EngineConfigurationChannel message")
            return
        kind, arguments = config
        setter = {
            ENGINE_TIME_SCALE: self.clock.set_time_scale,
            ENGINE_TARGET_FRAME_RATE: self.clock.set_target_frame_rate,
            ENGINE_CAPTURE_FRAME_RATE: self.clock.set_capture_frame_rate,
        }.get(kind)
        if setter is None:
            log.info(
                "engine configuration %s %s accepted (a simulated build renders nothing)", kind, arguments
            )
            return
        setter(arguments[0])
        rate = self.clock.rate()
        log.info(
            "engine configuration: time_scale %s, target frame rate %d, capture frame rate %d: %s",
            self.clock.time_scale,
            self.clock.target_frame_rate,
            self.clock.capture_frame_rate,
            "as fast as possible" if rate is None else f"at most {rate:g}x real time",
        )

    def _apply_environment_parameter(self, payload: bytes) -> None:
        parameter = wire.read_environment_parameter(payload)
        if parameter is None:
            self._warn_once("sampler", "ignored an environment parameter that is a sampler or malformed")
            return
        key, value = parameter
        try:
            known = self.env.set_parameter(key, value)
        except ValueError as error:
            log.error("environment parameter %s ignored: %s", key, error)
            return
        if known:
            when = "now" if key == "gravity" else "from each agent's next episode"
            log.info("environment parameter %s=%s applies %s", key, value, when)
        else:
            self._warn_once(f"parameter {key}", "ignored: 3DBall reads gravity, mass, scale (and max_steps)")

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned_about:
            self._warned_about.add(topic)
            log.warning("%s %s", topic, message)


def _capabilities() -> UnityRLCapabilitiesProto:
    """What ML-Agents 2.0 announces; the trainer only warns if baseRLCapabilities is missing."""
    return UnityRLCapabilitiesProto(
        baseRLCapabilities=True,
        concatenatedPngObservations=True,
        compressedChannelMapping=True,
        hybridActions=True,
        trainingAnalytics=True,
        variableLengthObservation=True,
        multiAgentGroups=True,
    )


def _check_settings(settings: AcademySettings) -> None:
    """Refuse settings the trainer could not use, naming the value and the allowed ones."""
    if settings.action_type not in ACTION_TYPES:
        raise ValueError(f"action type {settings.action_type!r} is not one of {', '.join(ACTION_TYPES)}")
    unknown = [kind for kind in settings.sensors if kind not in SENSOR_KINDS]
    if unknown or not settings.sensors:
        raise ValueError(
            f"observations {'+'.join(settings.sensors)!r} must be one or more of {', '.join(SENSOR_KINDS)} "
            "joined by '+', e.g. vector+visual"
        )
    if not 8 <= settings.image_size <= 256:
        raise ValueError(f"image size {settings.image_size} must be between 8 and 256 pixels")
    if settings.agents < 1:
        raise ValueError(f"agents={settings.agents} must be at least 1")
    if settings.max_steps < 1:
        raise ValueError(f"max steps {settings.max_steps} must be at least 1")
    if settings.physics not in ball_balance.PHYSICS_MODES:
        raise ValueError(
            f"physics {settings.physics!r} is not one of {', '.join(ball_balance.PHYSICS_MODES)}"
        )
