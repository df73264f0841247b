"""Gymnasium and Stable-Baselines3 views of a ``UnityVecEnv``: other people's RL code, unchanged.

* ``UnityGymnasiumEnv(envs)``: one agent as a ``gymnasium.Env`` (reset -> (obs, info), step ->
  (obs, reward, terminated, truncated, info)), for code written against a single Gymnasium env;
* ``UnityGymnasiumVectorEnv(envs)``: every agent as a ``gymnasium.vector.VectorEnv`` in Gymnasium's
  "same step" autoreset mode, which is what Unity does (an agent's next episode starts at once),
  with ``final_obs`` in the infos; Gymnasium's ``RecordEpisodeStatistics`` adds ``episode``:
  CleanRL-style loops;
* ``sb3_vec_env(envs)``: every agent as a Stable-Baselines3 ``VecEnv`` (``terminal_observation``,
  ``TimeLimit.truncated``), so ``PPO("MlpPolicy", sb3_vec_env(envs))`` trains on the build.

Inside a trainer: ``UnityGymnasiumVectorEnv(self.make_vec_env())``. The Unity build's seed is fixed
when the player starts (``seed`` in the config), so ``reset(seed=...)`` only seeds the spaces.
Gym 0.20's spaces (what gym-unity and the runtime use) are converted to Gymnasium's.
"""

from __future__ import annotations

import gym
import gymnasium
import numpy as np
from gymnasium.vector.utils import batch_space

from template_runtime.vec_env import UnityVecEnv


def to_gymnasium_space(space: gym.Space) -> gymnasium.Space:
    """The same space in Gymnasium's classes."""
    if isinstance(space, gym.spaces.Box):
        return gymnasium.spaces.Box(space.low, space.high, space.shape, space.dtype)
    if isinstance(space, gym.spaces.Discrete):
        return gymnasium.spaces.Discrete(int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        return gymnasium.spaces.MultiDiscrete(np.asarray(space.nvec))
    if isinstance(space, gym.spaces.Tuple):
        return gymnasium.spaces.Tuple([to_gymnasium_space(s) for s in space.spaces])
    raise TypeError(f"no Gymnasium equivalent for the space {space!r}")


class UnityGymnasiumEnv(gymnasium.Env):
    """One agent (a ``UnityVecEnv`` with ``num_agents == 1``) as a Gymnasium env.

    Unity starts the agent's next episode by itself; ``step`` returns the last observation of the
    finished one, and the following ``reset()`` returns the first of the episode Unity has started
    (no reset is sent to Unity, which would restart every agent of the scene).
    """

    metadata = {"render_modes": []}

    def __init__(self, envs: UnityVecEnv):
        self.envs = envs
        self.observation_space = to_gymnasium_space(envs.observation_space)
        self.action_space = to_gymnasium_space(envs.action_space)
        self._next_obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        if self._next_obs is None:
            obs = self.envs.reset()
            if self.envs.num_agents != 1:
                raise ValueError(
                    f"UnityGymnasiumEnv drives one agent and the build has {self.envs.num_agents}: use "
                    "UnityGymnasiumVectorEnv (every agent one env) or a build with one agent"
                )
        else:
            obs, self._next_obs = self._next_obs, None
        return obs[0], {}

    def step(self, action):
        obs, rewards, terminated, truncated, infos = self.envs.step(np.asarray(action)[None])
        if terminated[0] or truncated[0]:
            self._next_obs = obs
            info = {"episode": infos[0]["episode"]}
            final = infos[0]["terminal_observation"]
            return final, float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info
        return obs[0], float(rewards[0]), False, False, {}

    def close(self) -> None:
        self.envs.close()


class UnityGymnasiumVectorEnv(gymnasium.vector.VectorEnv):
    """Every agent of a ``UnityVecEnv`` as one Gymnasium vector env (autoreset mode SAME_STEP).

    ``infos`` follow Gymnasium's vector conventions: ``final_obs`` (an object array with the last
    observation of each agent whose episode ended this step) with its mask ``_final_obs``. Wrap it in
    ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` for ``episode`` returns and lengths.
    """

    metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}

    def __init__(self, envs: UnityVecEnv):
        self.envs = envs
        self._first_obs = envs.reset()  # the number of agents is known once Unity has sent them
        self.num_envs = envs.num_agents
        self.single_observation_space = to_gymnasium_space(envs.observation_space)
        self.single_action_space = to_gymnasium_space(envs.action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            self.action_space.seed(seed if isinstance(seed, int) else seed[0])
        obs = self._first_obs if self._first_obs is not None else self.envs.reset()
        self._first_obs = None
        return obs, {}

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.envs.step(np.asarray(actions))
        ended = terminated | truncated
        info: dict = {}
        if ended.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for row in np.flatnonzero(ended):
                final_obs[row] = infos[row]["terminal_observation"]
            info = {"final_obs": final_obs, "_final_obs": ended.copy()}
        return obs, rewards, terminated, truncated, info

    def close_extras(self, **kwargs) -> None:
        self.envs.close()


def sb3_vec_env(envs: UnityVecEnv):
    """Every agent of ``envs`` as a Stable-Baselines3 ``VecEnv`` (SB3 imported only here)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class UnitySB3VecEnv(VecEnv):
        """SB3's VecEnv over a UnityVecEnv: ``dones`` = terminated or truncated, with SB3's info keys."""

        def __init__(self):
            self.envs = envs
            self._first_obs = envs.reset()
            spaces = to_gymnasium_space(envs.observation_space), to_gymnasium_space(envs.action_space)
            super().__init__(envs.num_agents, *spaces)

        def reset(self):
            obs = self._first_obs if self._first_obs is not None else envs.reset()
            self._first_obs = None
            return obs

        def step_async(self, actions) -> None:
            self._actions = np.asarray(actions)

        def step_wait(self):
            obs, rewards, terminated, truncated, infos = envs.step(self._actions)
            return obs, rewards, terminated | truncated, infos

        def close(self) -> None:
            envs.close()

        def get_attr(self, attr_name, indices=None):
            value = None if attr_name == "render_mode" else getattr(self, attr_name)
            return [value] * len(self._indices(indices))

        def set_attr(self, attr_name, value, indices=None) -> None:
            raise NotImplementedError("the agents of a Unity build have no per-env attributes to set")

        def env_method(self, method_name, *args, indices=None, **kwargs):
            raise NotImplementedError("the agents of a Unity build have no per-env methods to call")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._indices(indices))

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            return [indices] if isinstance(indices, int) else list(indices)

    return UnitySB3VecEnv()
