"""The eight options of the original template, each observable in the envs the trainer builds:
the one-agent gym env (get_gym_env) and the batched env every trainer uses (make_vec_env)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from gym import spaces

from template_runtime.build import UnityBuildError
from template_runtime.unity import UnityEnvOptionError, import_skipping_package_init
from template_runtime.vec_env import UnityVecEnv
from trainer import LocalTrainer

pytestmark = pytest.mark.usefixtures("no_internet")


class EnvTrainer(LocalTrainer):
    def run(self):
        pass


@pytest.fixture
def make_env(sim_executable, tmp_path):
    """make_env(**config) -> (trainer, env) on the simulated build; every player is closed afterwards."""
    trainers: list[EnvTrainer] = []

    def make(**config):
        base = {"runs_dir": str(tmp_path / "runs"), "project_file": "", "timeout_wait": 30}
        trainer = EnvTrainer({**base, **config}, argv=[])
        trainers.append(trainer)
        return trainer, trainer.get_gym_env(sim_executable)

    yield make
    for trainer in trainers:
        trainer.close_env()


@pytest.fixture
def make_vec(sim_executable, tmp_path):
    """make_vec(**config) -> (trainer, UnityVecEnv) on the simulated build, closed afterwards."""
    trainers: list[EnvTrainer] = []

    def make(**config):
        base = {"runs_dir": str(tmp_path / "runs"), "project_file": "", "timeout_wait": 30}
        trainer = EnvTrainer({**base, **config}, argv=[])
        trainers.append(trainer)
        return trainer, trainer.make_vec_env(sim_executable)

    yield make
    for trainer in trainers:
        trainer.close_env()


def player_cmdline(trainer) -> list[str]:
    (pid,) = trainer.unity_pids
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def player_args(*args: str) -> list[str]:
    """Options of the simulated player (see unity_sim/player.py), passed as additional_args."""
    return list(args)


# ---- observations ----------------------------------------------------------------------------------


def test_use_visual_false_gives_the_vector_even_when_a_camera_exists(make_env):
    _, env = make_env(use_visual=False, additional_args=player_args("--observations", "vector+visual"))
    obs = env.reset()
    assert env.observation_space.shape == (8,) and obs.shape == (8,) and obs.dtype == np.float32


def test_use_visual_true_gives_the_camera_image_as_floats(make_env):
    _, env = make_env(use_visual=True, additional_args=player_args("--observations", "vector+visual"))
    obs = env.reset()
    assert obs.shape == (32, 32, 3) and obs.dtype == np.float32 and obs.min() >= 0.0 and obs.max() <= 1.0


def test_use_uint8_visual_gives_bytes(make_env):
    _, env = make_env(
        use_visual=True, use_uint8_visual=True, additional_args=player_args("--observations", "visual")
    )
    obs = env.reset()
    assert obs.dtype == np.uint8 and env.observation_space.dtype == np.uint8 and obs.max() > 1


def test_allow_multiple_visual_obs_returns_every_camera_and_no_vector(make_env):
    _, env = make_env(
        use_visual=True,
        allow_multiple_visual_obs=True,
        additional_args=player_args("--observations", "vector+visual+gray"),
    )
    obs = env.reset()
    assert [o.shape for o in obs] == [(32, 32, 3), (32, 32, 1)]
    assert isinstance(env.observation_space, spaces.Tuple) and len(env.observation_space.spaces) == 2


def test_without_allow_multiple_visual_obs_only_the_first_camera(make_env):
    _, env = make_env(use_visual=True, additional_args=player_args("--observations", "visual+gray"))
    assert env.reset().shape == (32, 32, 3)


def test_use_visual_on_a_build_without_camera_is_refused_and_the_player_closed(make_env):
    with pytest.raises(UnityEnvOptionError, match="use_visual=True but the build has no visual observation"):
        make_env(use_visual=True)


# ---- actions ---------------------------------------------------------------------------------------


def test_flatten_branched_turns_branches_into_one_discrete(make_env):
    _, env = make_env(flatten_branched=True, additional_args=player_args("--action-type", "branched"))
    env.reset()
    assert env.action_space == spaces.Discrete(9)
    assert len(env.step(8)) == 4


def test_branched_actions_stay_multidiscrete_without_flatten(make_env):
    _, env = make_env(additional_args=player_args("--action-type", "branched"))
    assert env.action_space == spaces.MultiDiscrete([3, 3])


def test_continuous_actions_are_a_box(make_env):
    _, env = make_env()
    assert env.action_space.shape == (2,) and env.action_space.low.min() == -1.0


# ---- the player process ----------------------------------------------------------------------------


def test_no_graphics_starts_the_player_headless(make_env):
    trainer, _ = make_env(no_graphics=True)
    assert {"-nographics", "-batchmode"} <= set(player_cmdline(trainer))


def test_no_graphics_false_starts_the_player_with_graphics(make_env):
    trainer, _ = make_env(no_graphics=False)
    assert "-nographics" not in player_cmdline(trainer)


def _free_worker_pair() -> int:
    for worker_id in range(40, 400, 2):
        if all(_port_free(5005 + worker_id + k) for k in (0, 1)):
            return worker_id
    pytest.skip("no two free ports in 5045-5405")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("localhost", port))
            return True
        except OSError:
            return False


def test_worker_id_chooses_the_port(make_env):
    worker_id = _free_worker_pair()
    trainer, _ = make_env(worker_id=worker_id)
    cmdline = player_cmdline(trainer)
    assert cmdline[cmdline.index("--mlagents-port") + 1] == str(5005 + worker_id)


def test_worker_in_use_moves_to_the_next_id_and_says_so(make_env, caplog):
    worker_id = _free_worker_pair()
    with socket.socket() as busy:
        busy.bind(("localhost", 5005 + worker_id))
        busy.listen()
        with caplog.at_level(logging.WARNING, logger="trainer"):
            trainer, env = make_env(worker_id=worker_id)
    assert trainer.worker_id == worker_id + 1
    assert (
        f"using worker_id {worker_id + 1} (port {5006 + worker_id}): worker_id {worker_id} was in use"
        in caplog.text
    )
    assert env.reset().shape == (8,)


def test_env_parameters_reach_the_player(make_env):
    _, env = make_env(env_parameters={"max_steps": 3})
    env.reset()
    results = [env.step(np.zeros(2)) for _ in range(3)]
    assert [done for _, _, done, _ in results] == [False, False, True]
    assert results[-1][3]["step"].interrupted[0]


# ---- several agents: the batched env ------------------------------------------------------------


def test_one_agent_env_refuses_several_agents_and_points_to_the_batched_env(make_env):
    with pytest.raises(UnityEnvOptionError, match=r"make_vec_env\(\) with multiagent=True"):
        make_env(additional_args=player_args("--agents", "3"))


def test_get_gym_env_with_multiagent_points_to_make_vec_env(make_env):
    with pytest.raises(UnityEnvOptionError, match=r"with multiagent=True use self.make_vec_env\(\)"):
        make_env(multiagent=True, additional_args=player_args("--agents", "3"))


def test_batched_env_without_multiagent_refuses_several_agents(make_vec):
    trainer, envs = make_vec(additional_args=player_args("--agents", "3"))
    with pytest.raises(UnityEnvOptionError, match="has 3 agents .* set multiagent=True"):
        envs.reset()


def test_multiagent_gives_one_row_per_agent(make_vec):
    _, envs = make_vec(multiagent=True, additional_args=player_args("--agents", "3"))
    assert isinstance(envs, UnityVecEnv) and envs.num_envs == 1
    obs = envs.reset()
    assert envs.num_agents == 3 and obs.shape == (3, 8) and obs.dtype == np.float32
    obs, rewards, terminated, truncated, infos = envs.step(np.zeros((3, 2)))
    assert obs.shape == (3, 8) and rewards.shape == terminated.shape == truncated.shape == (3,)
    assert rewards.dtype == np.float32 and terminated.dtype == truncated.dtype == bool
    assert infos == [{}, {}, {}]


def test_episode_end_reports_truncated_with_the_final_observation_and_keeps_rows(make_vec):
    _, envs = make_vec(
        multiagent=True, additional_args=player_args("--agents", "3"), env_parameters={"max_steps": 4}
    )
    envs.reset()
    for _ in range(3):
        _, _, terminated, truncated, _ = envs.step(np.zeros((3, 2)))
        assert not (terminated | truncated).any()
    obs, rewards, terminated, truncated, infos = envs.step(np.zeros((3, 2)))
    assert truncated.all() and not terminated.any()
    for row in range(3):
        assert infos[row]["TimeLimit.truncated"] is True and infos[row]["episode"]["l"] == 4
        assert infos[row]["terminal_observation"].shape == (8,)
    finished = envs.pop_finished()
    assert [(e.length, e.truncated) for e in finished] == [(4, True)] * 3
    assert envs.pop_finished() == []
    _, _, terminated, truncated, _ = envs.step(np.zeros((3, 2)))  # new episodes in the same rows
    assert not (terminated | truncated).any()


def test_multiagent_flattened_branched_actions(make_vec):
    _, envs = make_vec(
        multiagent=True,
        flatten_branched=True,
        additional_args=player_args("--agents", "2", "--action-type", "branched"),
    )
    envs.reset()
    assert envs.action_space == spaces.Discrete(9)
    assert envs.step(np.array([0, 8]))[0].shape == (2, 8)


def test_multiagent_visual_uint8_observations(make_vec):
    _, envs = make_vec(
        multiagent=True,
        use_visual=True,
        use_uint8_visual=True,
        additional_args=player_args("--agents", "2", "--observations", "vector+visual"),
    )
    obs = envs.reset()
    assert (obs.shape, obs.dtype) == ((2, 32, 32, 3), np.uint8)


def test_batched_env_refuses_several_cameras_and_names_the_option(make_vec):
    with pytest.raises(UnityEnvOptionError, match="allow_multiple_visual_obs=True"):
        make_vec(
            use_visual=True,
            allow_multiple_visual_obs=True,
            additional_args=player_args("--observations", "visual+gray"),
        )


def test_multiagent_refuses_wrong_number_of_actions(make_vec):
    _, envs = make_vec(multiagent=True, additional_args=player_args("--agents", "2"))
    envs.reset()
    with pytest.raises(ValueError, match=r"one action per agent \(2\)"):
        envs.step(np.zeros((3, 2)))


def test_closing_the_batched_env_stops_its_player(make_vec):
    trainer, envs = make_vec(multiagent=True, additional_args=player_args("--agents", "2"))
    (pid,) = envs.unity_pids
    assert trainer.unity_pids == [pid]
    envs.close()
    envs.close()  # twice is harmless
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


# ---- mlagents-envs >= 0.29 import path ---------------------------------------------------------------


def test_wrapper_module_imports_without_running_its_package_init(tmp_path, monkeypatch):
    package = tmp_path / "fakeagents" / "envs"
    package.mkdir(parents=True)
    (tmp_path / "fakeagents" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("raise RuntimeError('would download a registry manifest')\n")
    (package / "unity_gym_env.py").write_text("class UnityToGymWrapper:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = import_skipping_package_init("fakeagents.envs", "unity_gym_env")
        assert module.UnityToGymWrapper.__name__ == "UnityToGymWrapper"
        assert os.path.dirname(module.__file__) == str(package)
    finally:
        for name in ("fakeagents.envs.unity_gym_env", "fakeagents.envs", "fakeagents"):
            sys.modules.pop(name, None)


def test_player_path_that_mlagents_would_mangle_is_refused_before_launch(tmp_path):
    trainer = EnvTrainer({"runs_dir": str(tmp_path / "runs"), "project_file": ""}, argv=[])
    with pytest.raises(UnityBuildError, match=r"removes '\.app' anywhere in the path"):
        trainer.get_unity_env(tmp_path / "my.application" / "3DBall.x86_64")
    assert trainer.unity_pids == []
