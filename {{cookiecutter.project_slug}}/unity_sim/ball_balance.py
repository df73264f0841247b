"""The simulated build's task: Unity's "3DBall" (Ball3DAgent), vectorised over agents with NumPy.

What Unity's scene does (ML-Agents' Project/Assets/ML-Agents/Examples/3DBall: Ball3DAgent.cs, the
3DBall prefab and scene), and what this module reproduces:

- Each agent is a 5 x 5 x 5 cube (a static box collider, rotated about its centre) with a ball of
  diameter ``scale`` (1) on top. Physics runs at a fixed time step of 0.02 s; the agent acts at every
  physics step and decides every 5 steps (DecisionRequester, period 5, actions repeated between
  decisions), so one decision is 0.1 s of simulated time.
- Actions (continuous, 2): ``Rotate(z, 2 * clamp(a0, -1, 1))`` then ``Rotate(x, 2 * clamp(a1, -1, 1))``
  degrees in the cube's own frame at every physics step (up to 10 degrees per decision), each only
  while the rotation quaternion's z (x) component is below 0.25 in the direction of the action (about
  29 degrees).
- Episode start: rotation identity, then ``Rotate(x, U(-10, 10))``, ``Rotate(z, U(-10, 10))`` degrees;
  the ball at rest at (U(-1.5, 1.5), 4, U(-1.5, 1.5)) from the cube's centre, so it first drops about
  one unit onto the cube. Its spin is kept from the previous episode (Unity resets only the velocity).
- Reward: 0.1 for every decision, -1 and the end of the episode as soon as (checked at every physics
  step, in world axes) the ball is more than 3 from the cube's centre along x or z, or more than 2
  below it. An episode that lasts ``max_steps`` decisions (Unity: MaxStep 5000 physics steps = 1000
  decisions) ends with ``max_step_reached``, so the best return is 100.
- Observations (8): rotation quaternion z and x, ball position minus cube position (x, y, z), ball
  velocity (x, y, z), all in world axes.
- Environment parameters: ``gravity`` (ProjectSettingsOverrides' callback sets Physics.gravity at
  once), ``mass`` and ``scale`` (set on the ball when an episode begins). As in PhysX, the mass of a
  ball rolling on a static collider changes nothing.

The ball's physics approximates PhysX: semi-implicit Euler, gravity, one contact with the cube
(closest point on the box, so faces, edges and corners all work), no bounce, the contact's
penetration removed by moving the ball, Coulomb friction (0.6) that makes the solid ball roll
(``5/7 g sin(tilt)`` down a slope) and a little angular drag (0.01). The cube is moved by setting
its transform, so like a static collider in PhysX it carries no velocity: a tilting cube pushes the
ball out along the face normal but does not drag it along.

Random actions drop the ball within about 20 decisions; :func:`balancing_controller` keeps it up
for whole episodes. Measured figures are in the tests and benchmarks/bench_mlagents_learn.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIXED_DELTA_TIME = 0.02
"""Unity's fixed time step in the 3DBall scene (ProjectSettingsOverrides.fixedDeltaTime)."""
DECISION_PERIOD = 5
"""Physics steps per decision (DecisionRequester.DecisionPeriod)."""
DECISION_SECONDS = FIXED_DELTA_TIME * DECISION_PERIOD
"""Simulated time per decision: 0.1 s."""
DEGREES_PER_STEP = 2.0
"""Rotation per physics step at action 1.0 (``2f * Mathf.Clamp(action, -1f, 1f)`` degrees)."""
ROTATION_LIMIT = 0.25
"""Rotation stops growing once the quaternion's z (x) component passes this (about 29 degrees)."""
MAX_TILT = 2.0 * np.arcsin(ROTATION_LIMIT)
"""The tilt (radians) at which the rotation limit cuts in for a rotation about one axis."""
PLATFORM_HALF_SIZE = 2.5
"""Half the cube's edge (the Agent's box collider: size 1, scale 5)."""
FALL_HALF_WIDTH = 3.0
"""The episode ends when the ball is further than this from the cube's centre along x or z."""
FALL_DEPTH = -2.0
"""... or when the ball is lower than this below the cube's centre."""
START_HEIGHT = 4.0
START_HALF_RANGE = 1.5
START_TILT_DEGREES = 10.0
FRICTION = 0.6
"""PhysX's default friction (average of the two materials)."""
ANGULAR_DRAG = 0.01
"""The ball Rigidbody's angular drag (its linear drag is 0)."""
CONTACT_OFFSET = 0.01
"""Unity's default contact offset: contacts start this far before touching."""
ALIVE_REWARD = 0.1
FALL_REWARD = -1.0
OBSERVATION_SIZE = 8
"""Rotation z, x; ball position relative to the cube x, y, z; ball velocity x, y, z."""
ROLLING = 5.0 / 7.0
"""Acceleration factor of a solid sphere rolling without slipping down a slope."""
PHYSICS_MODES = ("physx", "none")
"""``none`` skips the ball's physics (it hangs where it started) and ends each episode at random, on
average after as many decisions as random actions last in 3DBall, so the build sends the same kind
of traffic: the protocol's own cost, a reference for benchmarks only."""
NONE_EPISODE_DECISIONS = 22.0

DISCRETE_TILTS = np.array([(z, x) for z in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)], np.float32)
"""Discrete action ``i`` of the single 9-way branch acts like continuous ``DISCRETE_TILTS[i]`` (4 = still)."""
BRANCH_TILTS = np.array([-1.0, 0.0, 1.0], np.float32)
"""Branched actions: one 3-way branch per axis, value ``j`` means ``BRANCH_TILTS[j]``."""

# Rotation matrix entries as linear combinations of the products q_i * q_j, q = (w, x, y, z):
# R = I + _QUAT_TO_MATRIX @ vec(q q^T) (the standard unit-quaternion formula, which Unity uses).
_QUAT_TO_MATRIX = np.zeros((16, 9))
for _row, _col, _terms in (
    (0, 0, ((2, 2, -2), (3, 3, -2))),
    (0, 1, ((1, 2, 2), (3, 0, -2))),
    (0, 2, ((1, 3, 2), (2, 0, 2))),
    (1, 0, ((1, 2, 2), (3, 0, 2))),
    (1, 1, ((1, 1, -2), (3, 3, -2))),
    (1, 2, ((2, 3, 2), (1, 0, -2))),
    (2, 0, ((1, 3, 2), (2, 0, -2))),
    (2, 1, ((2, 3, 2), (1, 0, 2))),
    (2, 2, ((1, 1, -2), (2, 2, -2))),
):
    for _i, _j, _factor in _terms:
        _QUAT_TO_MATRIX[4 * _i + _j, 3 * _row + _col] += _factor
_IDENTITY_FLAT = np.eye(3).reshape(9)


_SPIN_KEPT = np.array(1.0 / (1.0 + ANGULAR_DRAG * FIXED_DELTA_TIME))
_DT = np.array(FIXED_DELTA_TIME)
_PER_STEP = np.array(1.0 / FIXED_DELTA_TIME)
_ZERO = np.array(0.0)
_TINY = np.array(1e-12)
_SPIN_PER_FRICTION = np.array(2.5)
"""A friction impulse f at the contact changes r x spin by 5/2 n x f (solid ball)."""
_ROLL_SHARE = np.array(2.0 / 7.0)
"""Share of the contact point's slip a solid ball's friction takes from its velocity."""
_dot = getattr(np, "vecdot", None) or (lambda a, b: (a * b).sum(axis=-1))
"""Row-wise dot product (np.vecdot, NumPy >= 2.0, is about twice as fast as a multiply and a sum)."""
_HALF = np.array(0.5)
_DIAGONAL = (0, 1, 2, 3)
_TURN_SIGN = np.array([-1.0, 1.0, 1.0, -1.0])
_ONE = np.array(1.0)
_STEPS = np.arange(1.0, DECISION_PERIOD + 1.0)
_HAMILTON_INDEX = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
_HAMILTON_SIGN = np.array([[1.0, -1, -1, -1], [1, 1, -1, 1], [1, 1, 1, -1], [1, -1, 1, 1]])
"""q * r = (q[:, _HAMILTON_INDEX] * _HAMILTON_SIGN) @ r for quaternions (w, x, y, z)."""
_LEVI_CIVITA = np.zeros((3, 9))
"""``(n @ _LEVI_CIVITA).reshape(3, 3) @ u`` is the cross product n x u."""
for (_a, _b, _c), _sign in (
    ((0, 1, 2), 1),
    ((1, 2, 0), 1),
    ((2, 0, 1), 1),
    ((0, 2, 1), -1),
    ((2, 1, 0), -1),
    ((1, 0, 2), -1),
):
    # (n x u)_a = sum eps_abc n_b u_c: matrix entry [a, c] gets eps_abc * n_b
    _LEVI_CIVITA[_b, 3 * _a + _c] = _sign


def _turn(rotation: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """The cubes' rotations after each of a decision's physics steps, [5, n, 4] (w, x, y, z).

    Each step: ``Rotate(z, degrees[:, 0])`` then ``Rotate(x, degrees[:, 1])`` in the cube's frame,
    each only while the quaternion's z (x) component is inside the limit in the direction of turning
    (Ball3DAgent.OnActionReceived). Away from the limit a step is one fixed turn d = dz * dx, so the
    5 steps are q * d^k, k = 1..5, computed at once; an agent at the limit makes it go step by step.
    """
    half = np.deg2rad(degrees) * _HALF
    c, s = np.cos(half), np.sin(half)
    cz, sz, cx, sx = c[:, 0], s[:, 0], c[:, 1], s[:, 1]
    turn = np.stack([cz * cx, cz * sx, sz * sx, sz * cx], axis=1)  # (cz, 0, 0, sz) * (cx, sx, 0, 0)
    angle = np.arccos(np.minimum(turn[:, 0], _ONE))  # half the turn's angle
    sin_angle = np.sin(angle)
    multiples = angle[:, None] * _STEPS  # [n, 5]
    powers = np.empty((len(degrees), 4, DECISION_PERIOD))  # d^k = (cos k a, axis sin k a)
    powers[:, 0, :] = np.cos(multiples)
    ratio = np.sin(multiples) / np.where(sin_angle > _TINY, sin_angle, _ONE)[:, None]
    ratio[sin_angle <= _TINY] = 0.0
    powers[:, 1:, :] = turn[:, 1:, None] * ratio[:, None, :]
    left = rotation[:, _HAMILTON_INDEX] * _HAMILTON_SIGN  # q * r = left @ r
    rotations = (left @ powers).transpose(2, 0, 1)  # [5, n, 4]
    before = np.concatenate([rotation[None], rotations[:-1]])
    halfway_x = before[:, :, 1] * cz + before[:, :, 2] * sz  # x of (before * dz)
    sign = np.sign(degrees)
    inside = before[:, :, 3] * sign[:, 0] < ROTATION_LIMIT
    inside &= halfway_x * sign[:, 1] < ROTATION_LIMIT
    if not inside.all():  # agents at the limit: step by step (few: in plain Python, faster than NumPy)
        limited = np.flatnonzero(~inside.all(axis=0))
        if len(limited) <= 4:
            for agent in limited.tolist():
                rotations[:, agent] = _turn_one_agent(rotation[agent], c[agent], s[agent], sign[agent])
        else:
            rotations[:, limited] = _turn_step_by_step(
                rotation[limited], c[limited], s[limited], sign[limited]
            )
    return rotations


def _turn_one_agent(q: np.ndarray, c: np.ndarray, s: np.ndarray, sign: np.ndarray) -> list:
    """:func:`_turn_step_by_step` for one agent, with Python floats: [5][4]."""
    w, x, y, z = q.tolist()
    cz, cx = c.tolist()
    sz, sx = s.tolist()
    sign_z, sign_x = sign.tolist()
    out = []
    for _ in range(DECISION_PERIOD):
        if z * sign_z < ROTATION_LIMIT:  # q * (cz, 0, 0, sz)
            w, x, y, z = w * cz - z * sz, x * cz + y * sz, y * cz - x * sz, z * cz + w * sz
        if x * sign_x < ROTATION_LIMIT:  # q * (cx, sx, 0, 0)
            w, x, y, z = w * cx - x * sx, x * cx + w * sx, y * cx + z * sx, z * cx - y * sx
        out.append((w, x, y, z))
    return out


def _turn_step_by_step(rotation: np.ndarray, c: np.ndarray, s: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """:func:`_turn` one physics step at a time, checking the limit before every Rotate."""
    n = len(rotation)
    about_z, about_x = np.zeros((n, 4, 4)), np.zeros((n, 4, 4))  # q' = q @ M for a row q
    about_z[:, _DIAGONAL, _DIAGONAL] = c[:, 0:1]
    about_z[:, (3, 2, 0, 1), (0, 1, 3, 2)] = s[:, 0:1] * _TURN_SIGN  # q * (c, 0, 0, s)
    about_x[:, _DIAGONAL, _DIAGONAL] = c[:, 1:2]
    about_x[:, (1, 0, 3, 2), (0, 1, 2, 3)] = s[:, 1:2] * _TURN_SIGN  # q * (c, s, 0, 0)
    q = rotation.copy()
    out = np.empty((DECISION_PERIOD, n, 4))
    for k in range(DECISION_PERIOD):
        for matrix, component, axis in ((about_z, 3, 0), (about_x, 1, 1)):
            ok = q[:, component] * sign[:, axis] < ROTATION_LIMIT
            q = np.where(ok[:, None], (q[:, None, :] @ matrix)[:, 0, :], q)
        out[k] = q
    return out


def _rotation_matrices(rotations: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of unit quaternions [..., 4] (w, x, y, z), as Unity computes them."""
    shape = rotations.shape[:-1]
    products = (rotations[..., :, None] * rotations[..., None, :]).reshape(-1, 16)
    matrices = products @ _QUAT_TO_MATRIX
    matrices += _IDENTITY_FLAT
    return matrices.reshape(*shape, 3, 3)


@dataclass
class PhysicsParameters:
    """The values Unity's 3DBall reads from the EnvironmentParametersChannel."""

    gravity: float = 9.81
    mass: float = 1.0
    scale: float = 1.0
    """Ball diameter."""

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
    """Per-agent results of one decision; arrays are reused between steps, copy them to keep them."""

    reward: np.ndarray
    fell: np.ndarray
    reached_max_step: np.ndarray

    @property
    def ended(self) -> np.ndarray:
        """Agents whose episode ended at this step, whatever the reason."""
        return self.fell | self.reached_max_step


class BallBalance:
    """``num_agents`` independent cubes stepped together; all state is arrays of that length.

    State in world axes, relative to each cube's centre: ``rotation`` (quaternion w, x, y, z),
    ``position``, ``velocity`` and ``spin`` (angular velocity) of the ball.
    """

    def __init__(self, num_agents: int, max_steps: int, seed: int, physics: str = "physx") -> None:
        if num_agents < 1:
            raise ValueError(f"num_agents={num_agents} must be at least 1")
        if physics not in PHYSICS_MODES:
            raise ValueError(f"physics {physics!r} is not one of {', '.join(PHYSICS_MODES)}")
        n = num_agents
        self.num_agents = n
        self.max_steps = _checked_max_steps(max_steps)
        self.physics = physics
        self.gravity = PhysicsParameters.gravity
        self._gravity_step = np.array(self.gravity * FIXED_DELTA_TIME)
        self._pending_parameters = PhysicsParameters()
        self._rng = np.random.default_rng(seed)
        self.rotation = np.zeros((n, 4))
        self.rotation[:, 0] = 1.0
        self.position = np.zeros((n, 3))
        self.velocity = np.zeros((n, 3))
        self._rim = np.zeros((n, 3))  # radius x angular velocity: the rim's speed
        self.radius = np.full(n, 0.5)
        self.mass = np.ones(n)
        self.steps = np.zeros(n, np.int64)
        self._observations = np.zeros((n, OBSERVATION_SIZE), np.float32)
        self._terminal = np.zeros((n, OBSERVATION_SIZE), np.float32)
        self._terminal_state = (np.zeros((n, 4)), np.zeros((n, 3)), np.zeros(n))
        self._outcome = StepOutcome(np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))
        self.restart(np.ones(n, bool))

    # ---- episodes and parameters -----------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Start the random number stream again, so the same seed gives the same episodes."""
        self._rng = np.random.default_rng(seed)

    def set_parameter(self, key: str, value: float) -> bool:
        """Apply an environment parameter; False if this task has no such key.

        ``gravity`` applies at once (3DBall registers a callback that sets Physics.gravity);
        ``mass`` and ``scale`` when an agent's next episode begins (Ball3DAgent.SetResetParameters);
        ``max_steps`` (an extension) changes the episode length from the next decision on.
        """
        if key == "max_steps":
            self.max_steps = _checked_max_steps(int(value))
            return True
        if key not in ("gravity", "mass", "scale"):
            return False
        candidate = PhysicsParameters(**{**vars(self._pending_parameters), key: float(value)})
        self._pending_parameters = candidate.validated()
        if key == "gravity":
            self.gravity = candidate.gravity
            self._gravity_step = np.array(self.gravity * FIXED_DELTA_TIME)
        return True

    @property
    def parameters(self) -> PhysicsParameters:
        """The parameters the next episode starts with."""
        return self._pending_parameters

    def restart(self, agents: np.ndarray) -> None:
        """Begin a new episode for the agents where ``agents`` is True (Ball3DAgent.OnEpisodeBegin)."""
        count = int(np.count_nonzero(agents))
        if count == 0:
            return
        degrees = self._rng.uniform(-START_TILT_DEGREES, START_TILT_DEGREES, (count, 2))
        half = np.deg2rad(degrees) / 2
        cx, sx, cz, sz = np.cos(half[:, 0]), np.sin(half[:, 0]), np.cos(half[:, 1]), np.sin(half[:, 1])
        # identity, Rotate(x, a), Rotate(z, b): q = (cx, sx, 0, 0) * (cz, 0, 0, sz)
        self.rotation[agents] = np.stack([cx * cz, sx * cz, -sx * sz, cx * sz], axis=1)
        start = self._rng.uniform(-START_HALF_RANGE, START_HALF_RANGE, (count, 2))
        self.position[agents] = np.stack([start[:, 0], np.full(count, START_HEIGHT), start[:, 1]], axis=1)
        self.velocity[agents] = 0.0  # the spin is kept, as in Unity
        radius = 0.5 * self._pending_parameters.scale
        self._rim[agents] *= radius / self.radius[agents, None]  # the same spin on a new ball size
        self.radius[agents] = radius
        self.mass[agents] = self._pending_parameters.mass
        self.steps[agents] = 0

    # ---- stepping ------------------------------------------------------------------------------
    def step(self, tilt_change: np.ndarray) -> StepOutcome:
        """Apply one action per agent (shape [num_agents, 2], clipped to [-1, 1]) for one decision.

        Runs the 5 physics steps of a decision. An agent whose ball falls keeps its observation from
        that moment (:meth:`terminal_observations`); the caller restarts ended agents afterwards.
        Written as few, whole-array NumPy operations: it runs for every step of every trainer.
        """
        degrees = np.clip(np.asarray(tilt_change, np.float64), -1.0, 1.0) * DEGREES_PER_STEP
        # The cubes' rotations do not depend on the balls: work out all 5 physics steps at once.
        rotations = _turn(self.rotation, degrees)  # [5, n, 4]
        self.rotation[:] = rotations[-1]
        matrices = _rotation_matrices(rotations)  # [5, n, 3, 3]
        outcome = self._outcome
        fell = outcome.fell
        fell[:] = False
        for k in range(DECISION_PERIOD):
            p = self.position
            if abs(p[:, 0::2]).max() > FALL_HALF_WIDTH or p[:, 1].min() < FALL_DEPTH:  # rare: then who
                new = self._fallen() & ~fell
                if new.any():  # Ball3DAgent checks after turning the cube, before the physics step
                    self._keep_terminal(new, rotations[k])
                    fell |= new
            if self.physics == "physx":
                self._physics_step(matrices[k])
        if self.physics == "none":
            ends = self._rng.random(self.num_agents) < 1.0 / NONE_EPISODE_DECISIONS
            if ends.any():
                self._keep_terminal(ends, self.rotation)
                fell |= ends
        self.steps += 1
        np.greater_equal(self.steps, self.max_steps, out=outcome.reached_max_step)
        outcome.reached_max_step &= ~fell
        if outcome.reached_max_step.any():
            self._keep_terminal(outcome.reached_max_step, self.rotation)
        outcome.reward.fill(ALIVE_REWARD)
        outcome.reward[fell] = FALL_REWARD
        return outcome

    def _fallen(self) -> np.ndarray:
        """Ball3DAgent's end test, in world axes relative to the cube's centre."""
        p = self.position
        return (np.abs(p[:, 0::2]).max(axis=1) > FALL_HALF_WIDTH) | (p[:, 1] < FALL_DEPTH)

    def _physics_step(self, rotation: np.ndarray) -> None:
        """One PhysX-like step of every ball (``rotation``: the cubes' matrices [n, 3, 3]).

        Gravity; the contact with the closest point of the box (the face normal on the top, the edge
        or corner direction past it): close the gap at most, never pull, never bounce; friction that
        stops the contact point slipping (the ball rolls); penetration removed by moving the ball out
        (PhysX's velocity iterations take back the velocity its position correction adds; keeping
        that velocity instead made mlagents-learn learn faster still, further from the real scene).
        Constants are 0-d arrays: NumPy 2 multiplies by a Python float several times slower.
        """
        p, v, rim = self.position, self.velocity, self._rim
        v[:, 1] -= self._gravity_step
        local = (p[:, None, :] @ rotation)[:, 0, :]  # R^T p: the ball's centre in the cube's frame
        offset = local - local.clip(-PLATFORM_HALF_SIZE, PLATFORM_HALF_SIZE)
        distance = np.sqrt(_dot(offset, offset))
        distance += _TINY
        depth = self.radius - distance  # > 0: the ball is in the cube
        normal = (rotation @ (offset / distance[:, None])[:, :, None])[:, :, 0]
        normal_speed = _dot(v, normal)
        target = np.maximum(normal_speed, np.minimum(depth, _ZERO) * _PER_STEP)
        change = target - normal_speed
        v += change[:, None] * normal
        # Slip of the contact point (arm -r n): v + spin x (-r n) = v + n x (r spin), tangential part.
        # Removing it takes 2/7 of it from v and turns the ball by r n x f / I (solid ball: I = 2/5 r^2),
        # i.e. r spin by 5/2 n x f. (PhysX's friction cone, 0.6 x the normal impulse, is wide enough
        # for all but hard spins.)
        cross_normal = (normal @ _LEVI_CIVITA).reshape(-1, 3, 3)  # K u = n x u
        slip = v - target[:, None] * normal
        slip += (cross_normal @ rim[:, :, None])[:, :, 0]
        slip *= ((change > _ZERO) * _ROLL_SHARE)[:, None]  # the friction impulse
        v -= slip
        rim += (cross_normal @ (slip * _SPIN_PER_FRICTION)[:, :, None])[:, :, 0]
        rim *= _SPIN_KEPT
        p += normal * np.maximum(depth, _ZERO)[:, None]
        p += v * _DT

    @property
    def spin(self) -> np.ndarray:
        """The balls' angular velocity (world axes, radians per second); a copy."""
        return self._rim / self.radius[:, None]

    @spin.setter
    def spin(self, value) -> None:
        self._rim[:] = np.asarray(value) * self.radius[:, None]

    # ---- observations --------------------------------------------------------------------------
    def observations(self) -> np.ndarray:
        """The 8 vector observations of every agent, shape [num_agents, 8] (a reused buffer)."""
        return self._fill_observations(self._observations, slice(None))

    def terminal_observations(self) -> np.ndarray:
        """Each ended agent's observation at the moment its episode ended (rows of other agents are stale)."""
        return self._terminal

    def terminal_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rotation, position, radius) of each agent when its episode last ended, for cameras."""
        return self._terminal_state

    def _keep_terminal(self, agents: np.ndarray, rotations: np.ndarray) -> None:
        """Keep the ``agents``' observation (and camera state) now, with the cubes at ``rotations``."""
        rotation, position, radius = self._terminal_state
        rotation[agents], position[agents], radius[agents] = (
            rotations[agents],
            self.position[agents],
            self.radius[agents],
        )
        terminal = self._terminal
        terminal[agents, 0], terminal[agents, 1] = rotations[agents, 3], rotations[agents, 1]
        terminal[agents, 2:5], terminal[agents, 5:8] = self.position[agents], self.velocity[agents]

    def _fill_observations(self, out: np.ndarray, agents) -> np.ndarray:
        q = self.rotation[agents]
        block = np.concatenate([q[:, 3:4], q[:, 1:2], self.position[agents], self.velocity[agents]], axis=1)
        out[agents] = block
        return out

    @property
    def ball_radius(self) -> float:
        """The first agent's ball radius in its current episode (half of ``scale`` when it began)."""
        return float(self.radius[0])

    def tilt_degrees(self) -> np.ndarray:
        """Angle between each cube's up axis and the world's up axis, in degrees."""
        q = self.rotation
        up_y = 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 3] ** 2)
        return np.degrees(np.arccos(np.clip(up_y, -1.0, 1.0)))

    def allowed_tilts(self) -> np.ndarray:
        """Which rotations still change anything, shape [num_agents, 2 axes (z, x), 3 (-1, 0, +1)].

        Used for discrete action masks: past the rotation limit, rotating further is masked out.
        """
        allowed = np.ones((self.num_agents, 2, 3), bool)
        for axis, component in ((0, 3), (1, 1)):
            allowed[:, axis, 0] = self.rotation[:, component] > -ROTATION_LIMIT
            allowed[:, axis, 2] = self.rotation[:, component] < ROTATION_LIMIT
        return allowed


def render_top_down(
    env: BallBalance, size: int, agents: np.ndarray | None = None, terminal: bool = False
) -> np.ndarray:
    """A top-down camera image per agent, [n, size, size, 3] uint8, for visual observations.

    The view spans the cube's top plus a margin, in world axes. Cube pixels encode the rotation
    (red: quaternion z, green: quaternion x, 128 = level), the ball is a white disc of its radius,
    the rest is black. One frame shows position and tilt but not velocity, as a single camera frame
    in Unity would. ``terminal``: draw the state at the end of each agent's last episode.
    """
    index = np.arange(env.num_agents) if agents is None else agents
    rotation, position, radius = (
        env.terminal_state() if terminal else (env.rotation, env.position, env.radius)
    )
    extent = PLATFORM_HALF_SIZE + 0.5
    centres = (np.arange(size) + 0.5) / size * 2 * extent - extent
    on_platform = np.abs(centres) <= PLATFORM_HALF_SIZE
    platform = on_platform[:, None] & on_platform[None, :]  # rows are z (far to near), columns x

    tilt = rotation[index][:, [3, 1]]
    tilt_colour = np.clip(128 + 127 * tilt / ROTATION_LIMIT, 0, 255)
    images = np.zeros((len(index), size, size, 3), np.uint8)
    images[:, platform, 0] = tilt_colour[:, 0, None]
    images[:, platform, 1] = tilt_colour[:, 1, None]
    images[:, platform, 2] = 64

    dx = centres[None, None, :] - position[index, 0, None, None]
    dz = -centres[None, :, None] - position[index, 2, None, None]
    images[dx * dx + dz * dz <= (radius[index] ** 2)[:, None, None]] = 255
    return images


def balancing_controller(observations: np.ndarray, gain: float = 1.2, damping: float = 1.6) -> np.ndarray:
    """A hand-written controller on the vector observation that keeps the ball up for whole episodes.

    It picks the tilt whose slope pulls the ball back with acceleration ``-gain * position -
    damping * velocity`` (``5/7 g sin(tilt)`` for a rolling ball) and turns the cube towards that
    tilt as fast as the action allows (10 degrees per decision). Works for any number of agents:
    ``observations`` has shape [n, 8]; returns actions [n, 2].
    """
    position = observations[:, [2, 4]].astype(np.float64)
    velocity = observations[:, [5, 7]].astype(np.float64)
    wanted = -(gain * position + damping * velocity) / (ROLLING * 9.81)
    limit = np.sin(np.deg2rad(20.0))
    target = np.arcsin(np.clip(wanted, -limit, limit))
    target[:, 0] = -target[:, 0]  # a positive rotation about z sends the ball towards -x
    current = 2.0 * np.arcsin(np.clip(observations[:, 0:2].astype(np.float64), -1.0, 1.0))
    step = np.deg2rad(DEGREES_PER_STEP * DECISION_PERIOD)
    return np.clip((target - current) / step, -1.0, 1.0).astype(np.float32)


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
