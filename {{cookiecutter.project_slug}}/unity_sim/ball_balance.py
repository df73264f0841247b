"""The simulated build's task: a simplified Unity "3DBall", vectorised over agents with NumPy.

Each agent owns a square platform (5 x 5 units) with a ball on it. Per decision step (0.1 s, like
3DBall's decision period of 5 physics steps) an agent changes the platform's tilt about z and x by
``action * TILT_RATE`` (actions in [-1, 1], tilt clamped to +-25 degrees). The ball rolls down the
slope with acceleration ``5/7 * gravity * sin(tilt)`` (a solid sphere rolling without slipping),
slowed by a little rolling drag. Reward is +0.1 for each step the ball stays on and -1 (with
``done``) when its centre leaves the platform; an episode that lasts ``max_steps`` steps ends with
``max_step_reached``. The best return is therefore ``0.1 * max_steps`` (100 for 1000 steps), which
:func:`balancing_controller` reaches from every start; uniform random actions drop the ball after 27
steps on average (mean return 1.56 over 2000 episodes; 1.34 for random discrete actions; doing
nothing scores 2.3).

Tilt is an integral of the action and position a double integral of tilt, so "push against the
ball" is not enough: a policy must also damp the ball's velocity, as in Unity's 3DBall. The state
is eight numbers and the dynamics are smooth, so a small MLP learns it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECISION_SECONDS = 0.1
"""Simulated time per decision (3DBall: decision period 5 x 0.02 s fixed time step)."""
TILT_RATE = 0.08
"""Radians of tilt change per step at action 1.0 (about 4.6 degrees)."""
MAX_TILT = np.deg2rad(25.0)
"""3DBall's tilt limit."""
PLATFORM_HALF_SIZE = 2.5
"""The ball falls when its centre is further than this from the platform centre along x or z."""
START_HALF_RANGE = 1.5
"""The ball starts at rest within +-this of the centre (3DBall: +-1.5)."""
START_TILT = np.deg2rad(10.0)
"""Each episode starts with a random tilt within +-this about each axis (3DBall: +-10 degrees)."""
ROLLING = 5.0 / 7.0
"""Acceleration factor of a solid sphere rolling without slipping down a slope."""
DRAG_PER_MASS = 0.5
"""Velocity damping (1/s) for a ball of mass 1; heavier balls are damped less."""
ALIVE_REWARD = 0.1
FALL_REWARD = -1.0
_HEIGHT_SIGN = np.array([1.0, -1.0])
OBSERVATION_SIZE = 8
"""Tilt z, x; ball position relative to the platform x, y, z; ball velocity x, y, z."""

DISCRETE_TILTS = np.array([(z, x) for z in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)], np.float32)
"""Discrete action ``i`` of the single 9-way branch tilts by ``DISCRETE_TILTS[i]`` (4 = keep still)."""
BRANCH_TILTS = np.array([-1.0, 0.0, 1.0], np.float32)
"""Branched actions: one 3-way branch per axis, value ``j`` means ``BRANCH_TILTS[j]``."""


@dataclass
class PhysicsParameters:
    """The values Unity's 3DBall reads from the EnvironmentParametersChannel, applied at reset."""

    gravity: float = 9.81
    mass: float = 1.0
    scale: float = 1.0
    """Ball diameter; the ball's radius shows in its height above the platform and in images."""

    def validated(self) -> PhysicsParameters:
        """Return self, or raise naming the value, since a zero mass or scale breaks the physics."""
        for name in ("gravity", "mass", "scale"):
            value = getattr(self, name)
            if not np.isfinite(value) or (name != "gravity" and value <= 0):
                raise ValueError(
                    f"ball-balance parameter {name}={value!r} is not allowed; use a positive number"
                )
        return self


@dataclass
class StepOutcome:
    """Per-agent results of one step; arrays are reused between steps, copy them to keep them."""

    reward: np.ndarray
    fell: np.ndarray
    reached_max_step: np.ndarray

    @property
    def ended(self) -> np.ndarray:
        """Agents whose episode ended at this step, whatever the reason."""
        return self.fell | self.reached_max_step


class BallBalance:
    """``num_agents`` independent platforms stepped together; all state is arrays of that length."""

    def __init__(self, num_agents: int, max_steps: int, seed: int) -> None:
        if num_agents < 1:
            raise ValueError(f"num_agents={num_agents} must be at least 1")
        self.num_agents = num_agents
        self.max_steps = _checked_max_steps(max_steps)
        self.parameters = PhysicsParameters()
        self._pending_parameters = PhysicsParameters()
        self._rng = np.random.default_rng(seed)
        self.tilt = np.zeros((num_agents, 2))  # about z, about x
        self.position = np.zeros((num_agents, 2))  # along x, z on the platform
        self.velocity = np.zeros((num_agents, 2))
        self.steps = np.zeros(num_agents, np.int64)
        self._slope = np.zeros((num_agents, 2))  # sin(tilt), kept up to date by step and restart
        self._observations = np.zeros((num_agents, OBSERVATION_SIZE), np.float32)
        self._outcome = StepOutcome(
            np.zeros(num_agents, np.float32), np.zeros(num_agents, bool), np.zeros(num_agents, bool)
        )
        self.restart(np.ones(num_agents, bool))

    def reseed(self, seed: int) -> None:
        """Start the random number stream again, so the same seed gives the same episodes."""
        self._rng = np.random.default_rng(seed)

    def set_parameter(self, key: str, value: float) -> bool:
        """Queue an environment parameter for the next (re)start; False if this task has no such key.

        Like 3DBall, ``gravity``, ``mass`` and ``scale`` take effect when an episode begins.
        ``max_steps`` (an extension) changes the episode length from the next episode on.
        """
        if key == "max_steps":
            self.max_steps = _checked_max_steps(int(value))
            return True
        if key not in ("gravity", "mass", "scale"):
            return False
        candidate = PhysicsParameters(**{**vars(self._pending_parameters), key: float(value)})
        self._pending_parameters = candidate.validated()
        return True

    def restart(self, agents: np.ndarray) -> None:
        """Begin a new episode for the agents where ``agents`` is True (3DBall's OnEpisodeBegin)."""
        count = int(np.count_nonzero(agents))
        if count == 0:
            return
        self._use_parameters(self._pending_parameters)
        self.tilt[agents] = self._rng.uniform(-START_TILT, START_TILT, (count, 2))
        self.position[agents] = self._rng.uniform(-START_HALF_RANGE, START_HALF_RANGE, (count, 2))
        self.velocity[agents] = 0.0
        self.steps[agents] = 0
        np.sin(self.tilt, out=self._slope)

    def _use_parameters(self, parameters: PhysicsParameters) -> None:
        """Precompute the per-step factors of the physics from gravity and mass."""
        self.parameters = parameters
        self._velocity_kept = 1.0 - DRAG_PER_MASS / parameters.mass * DECISION_SECONDS
        # Tilting about z accelerates the ball towards -x; tilting about x towards +z.
        self._slope_to_velocity = ROLLING * parameters.gravity * DECISION_SECONDS * np.array([-1.0, 1.0])

    def step(self, tilt_change: np.ndarray) -> StepOutcome:
        """Apply one action per agent (shape [num_agents, 2], clipped to [-1, 1]) and advance 0.1 s.

        Semi-implicit Euler: ``v += (slope_acceleration - drag * v) * dt; x += v * dt``. Written with
        in-place operations because it runs once per step for every trainer using the build.
        """
        tilt, velocity = self.tilt, self.velocity
        tilt += np.clip(tilt_change, -1.0, 1.0) * TILT_RATE
        np.clip(tilt, -MAX_TILT, MAX_TILT, out=tilt)
        np.sin(tilt, out=self._slope)
        velocity *= self._velocity_kept
        velocity += self._slope * self._slope_to_velocity
        self.position += velocity * DECISION_SECONDS
        self.steps += 1

        outcome = self._outcome
        np.greater(np.abs(self.position).max(axis=1), PLATFORM_HALF_SIZE, out=outcome.fell)
        np.greater_equal(self.steps, self.max_steps, out=outcome.reached_max_step)
        outcome.reached_max_step &= ~outcome.fell
        outcome.reward.fill(ALIVE_REWARD)
        outcome.reward[outcome.fell] = FALL_REWARD
        return outcome

    def observations(self) -> np.ndarray:
        """The 8 vector observations of every agent, shape [num_agents, 8] (a reused buffer).

        Height and vertical speed are those of the ball above the platform's centre in world
        axes: the slope lifts the +x side (tilt about z) and lowers the +z side (tilt about x).
        """
        obs = self._observations
        lift = self._slope * _HEIGHT_SIGN
        obs[:, 0:2] = self.tilt
        obs[:, 2:5:2] = self.position
        obs[:, 3] = (self.position * lift).sum(axis=1)
        obs[:, 3] += self.ball_radius
        obs[:, 5:8:2] = self.velocity
        obs[:, 6] = (self.velocity * lift).sum(axis=1)
        return obs

    @property
    def ball_radius(self) -> float:
        """Half the ball's scale (3DBall's ball is a unit sphere scaled by ``scale``)."""
        return 0.5 * self.parameters.scale

    def allowed_tilts(self) -> np.ndarray:
        """Which tilt directions still change anything, shape [num_agents, 2 axes, 3 (-1, 0, +1)].

        Used for discrete action masks: at the tilt limit, tilting further is masked out.
        """
        allowed = np.ones((self.num_agents, 2, 3), bool)
        allowed[:, :, 0] = self.tilt > -MAX_TILT + 1e-9
        allowed[:, :, 2] = self.tilt < MAX_TILT - 1e-9
        return allowed


def render_top_down(env: BallBalance, size: int, agents: np.ndarray | None = None) -> np.ndarray:
    """A top-down camera image per agent, [n, size, size, 3] uint8, for visual observations.

    The view spans the platform plus a margin. Platform pixels encode the tilt (red: about z,
    green: about x, 128 = level), the ball is a white disc of its radius, the rest is black. One
    frame shows position and tilt but not velocity, as a single camera frame in Unity would.
    """
    index = np.arange(env.num_agents) if agents is None else agents
    extent = PLATFORM_HALF_SIZE + 0.5
    centres = (np.arange(size) + 0.5) / size * 2 * extent - extent
    on_platform = np.abs(centres) <= PLATFORM_HALF_SIZE
    platform = on_platform[:, None] & on_platform[None, :]  # rows are z (far to near), columns x

    tilt_colour = np.clip(128 + 127 * env.tilt[index] / MAX_TILT, 0, 255)
    images = np.zeros((len(index), size, size, 3), np.uint8)
    images[:, platform, 0] = tilt_colour[:, 0, None]
    images[:, platform, 1] = tilt_colour[:, 1, None]
    images[:, platform, 2] = 64

    dx = centres[None, None, :] - env.position[index, 0, None, None]
    dz = -centres[None, :, None] - env.position[index, 1, None, None]
    images[dx * dx + dz * dz <= env.ball_radius**2] = 255
    return images


def balancing_controller(observations: np.ndarray, gain: float = 1.0, damping: float = 1.6) -> np.ndarray:
    """A hand-written proportional controller on the vector observation that never drops the ball.

    It picks the tilt whose slope pulls the ball back with acceleration ``-gain * position -
    damping * velocity`` and moves the platform towards that tilt as fast as the action allows.
    Works for any number of agents: ``observations`` has shape [n, 8]; returns actions [n, 2].
    """
    position = observations[:, [2, 4]].astype(np.float64)
    velocity = observations[:, [5, 7]].astype(np.float64)
    wanted = -(gain * position + damping * velocity) / (ROLLING * 9.81)
    target = np.arcsin(np.clip(wanted, -np.sin(MAX_TILT), np.sin(MAX_TILT)))
    target[:, 0] = -target[:, 0]  # tilt about z accelerates the ball towards -x
    return np.clip((target - observations[:, 0:2]) / TILT_RATE, -1.0, 1.0).astype(np.float32)


def discrete_to_tilt(actions: np.ndarray) -> np.ndarray:
    """Map the single 9-way branch, shape [n, 1], to tilt changes [n, 2]."""
    return DISCRETE_TILTS[actions[:, 0]]


def branched_to_tilt(actions: np.ndarray) -> np.ndarray:
    """Map two 3-way branches (z, x), shape [n, 2], to tilt changes [n, 2]."""
    return BRANCH_TILTS[actions]


def _checked_max_steps(max_steps: int) -> int:
    """Episode length must be positive: Unity's MaxStep 0 means endless, which a smoke test never wants."""
    if max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be at least 1 (episode length in decisions)")
    return max_steps
