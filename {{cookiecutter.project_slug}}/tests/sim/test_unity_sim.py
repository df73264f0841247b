"""The simulated Unity player: its task, its wire bytes, its packaging, and the real protocol end to end.

End-to-end tests start the packaged build through mlagents-envs' own ``UnityEnvironment`` (and
gym-unity's ``UnityToGymWrapper``), exactly as a trainer starts a real Unity build.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import template_runtime.fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split

import numpy as np
import pytest
from gym import spaces
from gym_unity.envs import UnityToGymWrapper
from mlagents_envs.base_env import ActionTuple
from mlagents_envs.communicator_objects.command_pb2 import RESET, STEP
from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
from mlagents_envs.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from mlagents_envs.side_channel.side_channel import OutgoingMessage, SideChannel
from mlagents_envs.side_channel.stats_side_channel import StatsAggregationMethod, StatsSideChannel
from PIL import Image
from sim_fixtures import SIM_BUILD_NAME, free_base_port, open_sim_env, wait_until_gone

from unity_sim import ball_balance, wire
from unity_sim.academy import STATS, Academy, AcademySettings
from unity_sim.ball_balance import BallBalance, balancing_controller
from unity_sim.clock import GameClock
from unity_sim.package_build import build_files, package_build

BEHAVIOR = "3DBall?team=0"
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---- helpers ---------------------------------------------------------------------------------


def play_task(env: BallBalance, policy, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Run one episode per agent directly on the task; returns (returns, lengths)."""
    returns = np.zeros(env.num_agents)
    lengths = np.zeros(env.num_agents, int)
    finished = np.zeros(env.num_agents, bool)
    while not finished.all():
        outcome = env.step(policy(env.observations(), rng))
        returns += np.where(finished, 0.0, outcome.reward)
        lengths += ~finished
        finished |= outcome.ended
    return returns, lengths


def random_policy(observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, (len(observations), 2))


def untrained_mlagents_policy(observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What mlagents-learn's untrained PPO sends: a unit Gaussian, clipped to [-3, 3], divided by 3."""
    return np.clip(rng.normal(0.0, 1.0, (len(observations), 2)), -3.0, 3.0) / 3.0


def gym_episode(env: UnityToGymWrapper, choose) -> tuple[float, list[float], dict]:
    """One gym episode; ``choose(obs)`` gives the action. Returns (return, rewards, last info)."""
    obs, done, rewards, info = env.reset(), False, [], {}
    while not done:
        obs, reward, done, info = env.step(choose(obs))
        rewards.append(reward)
    return float(sum(rewards)), rewards, info


def observe(env: UnityEnvironment) -> tuple:
    """(decision steps, terminal steps) of the only behaviour."""
    return env.get_steps(BEHAVIOR)


def step_with(
    env: UnityEnvironment, continuous: np.ndarray | None = None, discrete: np.ndarray | None = None
):
    env.set_actions(BEHAVIOR, ActionTuple(continuous=continuous, discrete=discrete))
    env.step()
    return observe(env)


def run_player(
    executable: str, *args: str, python: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    """Run the build's launcher directly (no trainer listening) and collect its output."""
    env = {**os.environ, "UNITY_SIM_PYTHON": python or sys.executable}
    return subprocess.run(
        [executable + ".x86_64", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def roundtrip_bytes(data: bytes) -> bytes:
    """What protobuf itself serializes for the message these bytes decode to."""
    return UnityMessageProto.FromString(data).SerializeToString()


@pytest.fixture(scope="module")
def default_env(sim_executable: str):
    """One default build (1 agent, vector observations, continuous actions) shared by this module."""
    with open_sim_env(sim_executable) as env:
        pid = env._process.pid
        yield env
    assert wait_until_gone(pid, timeout=10)


# ---- the task ----------------------------------------------------------------------------------


def test_controller_keeps_ball_up_for_whole_episode():
    env = BallBalance(num_agents=200, max_steps=1000, seed=3)
    returns, lengths = play_task(env, lambda obs, rng: balancing_controller(obs), np.random.default_rng(0))
    assert lengths.min() == 1000
    assert returns.mean() == pytest.approx(100.0, abs=1e-3)


def test_random_actions_drop_ball_within_a_few_dozen_steps():
    env = BallBalance(num_agents=1000, max_steps=1000, seed=3)
    returns, lengths = play_task(env, random_policy, np.random.default_rng(0))
    assert lengths.mean() < 40
    assert returns.mean() < 3.0  # measured 0.97 (20.7 decisions); the controller scores 100


def test_untrained_policy_episodes_last_about_22_decisions_like_the_real_scene():
    """Real 3DBall under mlagents-learn: first episodes of about 22 decisions (issue 20)."""
    env = BallBalance(num_agents=2000, max_steps=1000, seed=3)
    rng = np.random.default_rng(0)
    play_task(env, untrained_mlagents_policy, rng)  # the second episode on: spin kept, as in Unity
    env.restart(np.ones(env.num_agents, bool))
    _, lengths = play_task(env, untrained_mlagents_policy, rng)
    assert lengths.mean() == pytest.approx(22, rel=0.2)  # measured 22.5


def test_episode_starts_like_ball3dagent():
    env = BallBalance(num_agents=500, max_steps=1000, seed=1)
    obs = env.observations()
    half_tilt = np.sin(np.deg2rad(ball_balance.START_TILT_DEGREES / 2))
    assert np.abs(obs[:, 0:2]).max() <= half_tilt + 1e-6  # quaternion z, x of +-10 degree turns
    assert np.abs(obs[:, [2, 4]]).max() <= 1.5 and np.all(obs[:, 3] == 4.0)  # above the cube, at rest
    assert not obs[:, 5:].any()


def test_cube_turns_two_degrees_per_physics_step_until_the_rotation_limit():
    env = BallBalance(num_agents=1, max_steps=1000, seed=1)
    env.rotation[:] = (1.0, 0.0, 0.0, 0.0)
    env.step(np.array([[1.0, 0.0]]))  # 5 physics steps of Rotate(z, 2 degrees)
    assert env.observations()[0, 0] == pytest.approx(np.sin(np.deg2rad(10.0) / 2))
    for _ in range(10):
        env.step(np.array([[1.0, -1.0]]))
    z, x = env.observations()[0, 0:2]
    one_turn = np.sin(np.deg2rad(1.0))  # a last Rotate may start just inside the limit
    assert 0.25 <= z <= 0.25 + one_turn and -0.25 - one_turn <= x <= -0.25


def _rotate_like_unity(q: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Ball3DAgent's 5 physics steps of Rotate(z) then Rotate(x), one agent at a time (w, x, y, z)."""
    q, out = q.copy(), []
    for _ in range(5):
        for axis, column in ((3, 0), (1, 1)):
            for i, angle in enumerate(degrees[:, column]):
                if (angle > 0 and q[i, axis] < 0.25) or (angle < 0 and q[i, axis] > -0.25):
                    turn = np.zeros(4)
                    turn[0], turn[axis] = np.cos(np.deg2rad(angle) / 2), np.sin(np.deg2rad(angle) / 2)
                    w1, x1, y1, z1 = q[i]
                    w2, x2, y2, z2 = turn
                    q[i] = (
                        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                    )
        out.append(q.copy())
    return np.array(out)


@pytest.mark.parametrize("spread", [0.02, 0.3], ids=["inside-the-limit", "at-the-limit"])
def test_batched_cube_turns_equal_unity_rotate_step_by_step(spread: float):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(40, 4)) * [1, spread, spread, spread]
    q /= np.linalg.norm(q, axis=1)[:, None]
    degrees = rng.uniform(-2, 2, (40, 2))
    degrees[0] = 0.0
    np.testing.assert_allclose(ball_balance._turn(q, degrees), _rotate_like_unity(q, degrees), atol=1e-12)


def test_ball_rolls_down_a_tilted_cube_at_five_sevenths_of_the_slope():
    env = BallBalance(num_agents=1, max_steps=1000, seed=1)
    angle = np.deg2rad(10.0)
    env.rotation[:] = (np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2))  # +x side up
    on_top = np.array([0.0, 2.5 + 0.5, 0.0])
    env.position[:] = on_top @ np.array(
        [[np.cos(angle), np.sin(angle), 0], [-np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    env.velocity[:], env.spin = 0.0, 0.0
    for _ in range(3):
        env.step(np.zeros((1, 2)))
    speed = np.linalg.norm(env.velocity[0])
    assert speed == pytest.approx(5 / 7 * 9.81 * np.sin(angle) * 0.3, rel=0.05)
    assert env.velocity[0, 0] < 0  # downhill: towards -x


def test_fall_is_reported_with_the_observation_when_it_happened():
    env = BallBalance(num_agents=200, max_steps=1000, seed=2)
    rng = np.random.default_rng(0)
    for _ in range(100):
        outcome = env.step(random_policy(env.observations(), rng))
        if outcome.fell.any():
            terminal = env.terminal_observations()[outcome.fell]
            beyond = (np.abs(terminal[:, [2, 4]]).max(axis=1) > 3.0) | (terminal[:, 3] < -2.0)
            assert beyond.all() and np.all(outcome.reward[outcome.fell] == -1.0)
            env.restart(outcome.ended)


def test_task_is_deterministic_for_a_seed():
    runs = [
        play_task(BallBalance(8, 200, seed=11), random_policy, np.random.default_rng(5)) for _ in range(2)
    ]
    other = play_task(BallBalance(8, 200, seed=12), random_policy, np.random.default_rng(5))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert not np.array_equal(runs[0][0], other[0])


def test_environment_parameter_waits_for_next_episode():
    env = BallBalance(num_agents=1, max_steps=100, seed=0)
    assert env.set_parameter("scale", 2.0)
    assert env.ball_radius == 0.5
    env.restart(np.ones(1, bool))
    assert env.ball_radius == 1.0


def test_gravity_applies_at_once_like_3dball_callback():
    env = BallBalance(num_agents=1, max_steps=100, seed=0)
    env.step(np.zeros((1, 2)))
    assert env.velocity[0, 1] == pytest.approx(-9.81 * 0.1)
    assert env.set_parameter("gravity", 0.0)
    before = env.velocity.copy()
    env.step(np.zeros((1, 2)))
    np.testing.assert_array_equal(env.velocity, before)  # still falling (no contact yet), not faster


def test_physics_none_leaves_the_ball_where_it_started():
    env = BallBalance(num_agents=3, max_steps=100, seed=0, physics="none")
    start = env.observations()[:, 2:].copy()
    for _ in range(10):
        env.step(np.ones((3, 2)))
    np.testing.assert_array_equal(env.observations()[:, 2:], start)


def test_environment_parameter_rejects_zero_mass():
    with pytest.raises(ValueError, match="mass=0.0"):
        BallBalance(num_agents=1, max_steps=100, seed=0).set_parameter("mass", 0.0)


# ---- bytes on the wire -------------------------------------------------------------------------

WIRE_CASES = {
    "vector-continuous": AcademySettings(agents=3, max_steps=3),
    "visual-gray-discrete-masks": AcademySettings(
        agents=2, max_steps=3, sensors=("vector", "visual", "gray"), action_type="discrete", action_masks=True
    ),
    "uncompressed-branched": AcademySettings(
        agents=2, max_steps=3, sensors=("visual", "gray"), compressed_images=False, action_type="branched"
    ),
}


@pytest.mark.parametrize("settings", WIRE_CASES.values(), ids=WIRE_CASES.keys())
def test_step_messages_are_byte_identical_to_protobuf(settings: AcademySettings):
    academy = Academy(settings)
    academy._next_agent_id = 300_000  # ids past the small-varint table
    command = UnityRLInputProto(command=RESET)
    for _ in range(6):  # crosses max_steps, so terminal infos with max_step_reached are included
        data = wire.encode_step_message(academy.handle(command))
        assert roundtrip_bytes(data) == data
        command = UnityRLInputProto(command=STEP)
        for _ in range(settings.agents):
            action = command.agent_actions[BEHAVIOR].value.add()
            action.continuous_actions.extend([1.0, -1.0])
            action.discrete_actions.extend([2] if settings.action_type == "discrete" else [2, 0])


def test_fall_message_is_byte_identical_to_protobuf():
    info = wire.encode_agent_info(-1.0, 2**31 - 1, b"", done=True)
    data = wire.encode_step_message(wire.encode_rl_output(BEHAVIOR, [info], side_channel=b"\x01\x02"))
    assert roundtrip_bytes(data) == data
    decoded = UnityMessageProto.FromString(data).unity_output.rl_output
    agent = decoded.agentInfos[BEHAVIOR].value[0]
    assert (agent.reward, agent.done, agent.max_step_reached, agent.id) == (-1.0, True, False, 2**31 - 1)


def test_png_encoder_output_decodes_with_pillow():
    image = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    import io

    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(wire.encode_png(image)))), image)


def test_side_channel_reader_extracts_float_parameter():
    message = OutgoingMessage()
    message.write_string("gravity")
    message.write_int32(0)
    message.write_float32(4.5)
    channel = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")
    data = channel.bytes_le + len(message.buffer).to_bytes(4, "little") + bytes(message.buffer)
    [(channel_id, payload)] = list(wire.split_side_channel(data))
    assert channel_id == wire.ENVIRONMENT_PARAMETERS_CHANNEL
    assert wire.read_environment_parameter(payload) == ("gravity", 4.5)


def test_side_channel_reader_stops_at_truncated_message():
    data = uuid.uuid4().bytes_le + (100).to_bytes(4, "little") + b"short"
    assert list(wire.split_side_channel(data)) == []


# ---- packaging ---------------------------------------------------------------------------------


def test_build_zip_has_unity_linux_player_layout(sim_build_zip: Path):
    names = set(zipfile.ZipFile(sim_build_zip).namelist())
    expected = {
        f"{SIM_BUILD_NAME}.x86_64",
        "UnityPlayer.so",
        f"{SIM_BUILD_NAME}_Data/app.info",
        f"{SIM_BUILD_NAME}_Data/Python/unity_sim/player.py",
        f"{SIM_BUILD_NAME}_Data/Python/mlagents_fastpath.py",
    }
    assert expected <= names


def test_launcher_mode_is_stored_in_zip(sim_build_zip: Path):
    info = zipfile.ZipFile(sim_build_zip).getinfo(f"{SIM_BUILD_NAME}.x86_64")
    assert (info.external_attr >> 16) & 0o777 == 0o755


def test_extracted_launcher_is_executable(sim_build_dir: Path):
    launcher = sim_build_dir / f"{SIM_BUILD_NAME}.x86_64"
    assert launcher.stat().st_mode & stat.S_IXUSR
    assert launcher.read_text().startswith("#!/bin/sh")


def test_package_build_is_reproducible(tmp_path: Path):
    first = package_build("Repeat", tmp_path / "a").read_bytes()
    assert package_build("Repeat", tmp_path / "b").read_bytes() == first


def test_package_build_rejects_name_unsafe_for_a_file_name(tmp_path: Path):
    with pytest.raises(ValueError, match="build name '../evil'"):
        package_build("../evil", tmp_path)


def test_package_build_cli_writes_named_zip(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "unity_sim.package_build", "--name", "Roller", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert Path(result.stdout.strip()) == tmp_path / "Roller.zip"
    assert "Roller.x86_64" in zipfile.ZipFile(tmp_path / "Roller.zip").namelist()


def test_build_uses_name_for_behavior_default():
    assert build_files("Roller")["Roller_Data/app.info"][0].decode().splitlines()[1] == "Roller"


def test_player_without_packages_names_them_and_unity_sim_python(sim_executable: str, tmp_path: Path):
    bare_python = tmp_path / "bare-python"  # this interpreter without site-packages
    bare_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare_python.chmod(0o755)
    result = run_player(sim_executable, "--mlagents-port", "1", python=str(bare_python))
    assert result.returncode == 1
    assert "grpcio" in result.stderr and "mlagents-envs" in result.stderr
    assert "UNITY_SIM_PYTHON" in result.stderr


def test_player_rejects_unknown_action_type_naming_choices(sim_executable: str):
    result = run_player(sim_executable, "--mlagents-port", "1", "--action-type", "sideways")
    assert result.returncode == 2
    assert "'sideways'" in result.stderr and "continuous, discrete, branched" in result.stderr


# ---- through UnityEnvironment: defaults ---------------------------------------------------------


def test_build_has_12_agents_by_default_like_the_real_scene(sim_executable: str):
    env = UnityEnvironment(sim_executable, base_port=free_base_port(), no_graphics=True, timeout_wait=30)
    try:
        env.reset()
        assert len(observe(env)[0]) == 12
    finally:
        env.close()


def test_default_build_registers_3dball_behavior(default_env: UnityEnvironment):
    spec = default_env.behavior_specs[BEHAVIOR]
    assert [obs.shape for obs in spec.observation_specs] == [(8,)]
    assert (spec.action_spec.continuous_size, spec.action_spec.discrete_branches) == (2, ())


def test_gym_wrapper_sees_box_spaces(default_env: UnityEnvironment):
    env = UnityToGymWrapper(default_env)
    assert env.observation_space.shape == (8,)
    assert isinstance(env.action_space, spaces.Box) and env.action_space.shape == (2,)
    assert (env.action_space.low.min(), env.action_space.high.max()) == (-1.0, 1.0)


def test_gym_random_episodes_end_with_fall_penalty(default_env: UnityEnvironment):
    env = UnityToGymWrapper(default_env, action_space_seed=0)
    returns = []
    for _ in range(25):
        episode_return, rewards, info = gym_episode(env, lambda obs: env.action_space.sample())
        assert rewards[-1] == pytest.approx(-1.0) and not info["step"].interrupted[0]
        assert np.allclose(rewards[:-1], 0.1)
        returns.append(episode_return)
    assert np.mean(returns) < 3.0


def test_fall_sends_terminal_and_new_agent_in_same_step(default_env: UnityEnvironment):
    default_env.reset()
    decision, _ = observe(default_env)
    first_id = decision.agent_id[0]
    terminal = observe(default_env)[1]
    while len(terminal) == 0:
        decision, terminal = step_with(default_env, continuous=np.ones((1, 2), np.float32))
    assert list(terminal.agent_id) == [first_id] and terminal.reward[0] == pytest.approx(-1.0)
    assert len(decision) == 1 and decision.agent_id[0] != first_id


def test_reset_gives_agent_a_new_id(default_env: UnityEnvironment):
    default_env.reset()
    before = observe(default_env)[0].agent_id[0]
    default_env.reset()
    assert observe(default_env)[0].agent_id[0] != before


def test_step_limit_sets_interrupted_with_alive_reward(unity_env_factory):
    env = UnityToGymWrapper(unity_env_factory(additional_args=["--max-steps", "150"]))
    episode_return, rewards, info = gym_episode(env, lambda obs: balancing_controller(obs[None])[0])
    assert len(rewards) == 150 and episode_return == pytest.approx(15.0, abs=1e-4)
    assert info["step"].interrupted[0]


# ---- options -------------------------------------------------------------------------------------


def test_discrete_build_offers_nine_actions(unity_env_factory):
    env = UnityToGymWrapper(
        unity_env_factory(additional_args=["--action-type", "discrete"]), action_space_seed=1
    )
    assert env.action_space == spaces.Discrete(9)
    _, rewards, _ = gym_episode(env, lambda obs: env.action_space.sample())
    assert rewards[-1] == pytest.approx(-1.0)


def test_branched_build_offers_two_branches_of_three(unity_env_factory):
    unity_env = unity_env_factory(additional_args=["--action-type", "branched"])
    assert UnityToGymWrapper(unity_env).action_space == spaces.MultiDiscrete([3, 3])
    flattened = UnityToGymWrapper(unity_env, flatten_branched=True)
    assert flattened.action_space == spaces.Discrete(9)
    assert flattened.step(4)[0].shape == (8,)


def test_action_mask_blocks_tilting_past_the_limit(unity_env_factory):
    parameters = EnvironmentParametersChannel()
    parameters.set_float_parameter("gravity", 0.0)  # the ball stays put, so no episode ends
    env = unity_env_factory(
        additional_args=["--action-type", "branched", "--action-masks"], side_channels=[parameters]
    )
    env.reset()
    for _ in range(12):  # more than enough to reach +25 degrees about z
        decision, _ = step_with(env, discrete=np.array([[2, 1]]))
    z_mask, x_mask = decision.action_mask
    assert z_mask.tolist() == [[False, False, True]]
    assert not x_mask.any()


def test_visual_observation_arrives_as_float_image(unity_env_factory):
    env = UnityToGymWrapper(unity_env_factory(additional_args=["--observations", "visual"]))
    obs = env.reset()
    assert env.observation_space.shape == (32, 32, 3) and obs.dtype == np.float32
    assert obs.min() == 0.0 and obs.max() == 1.0  # black border, white ball


def test_visual_observation_arrives_as_uint8_image(unity_env_factory):
    env = UnityToGymWrapper(
        unity_env_factory(additional_args=["--observations", "visual"]), uint8_visual=True
    )
    obs = env.reset()
    assert obs.dtype == np.uint8 and obs.max() == 255


def test_uncompressed_visual_equals_png_visual(unity_env_factory):
    base_port = free_base_port(2)
    png = unity_env_factory(
        base_port=base_port, worker_id=0, additional_args=["--observations", "visual+gray"]
    )
    raw = unity_env_factory(
        base_port=base_port,
        worker_id=1,
        additional_args=["--observations", "visual+gray", "--uncompressed-visual"],
    )
    for env in (png, raw):
        env.reset()
    for png_obs, raw_obs in zip(observe(png)[0].obs, observe(raw)[0].obs, strict=True):
        np.testing.assert_array_equal(png_obs, raw_obs)


def test_several_observations_reach_gym_as_tuple(unity_env_factory):
    unity_env = unity_env_factory(
        additional_args=["--observations", "vector+visual+gray", "--image-size", "24"]
    )
    env = UnityToGymWrapper(unity_env, allow_multiple_obs=True)
    assert [space.shape for space in env.observation_space.spaces] == [(24, 24, 3), (24, 24, 1), (8,)]
    assert [obs.shape for obs in env.reset()] == [(24, 24, 3), (24, 24, 1), (8,)]


def test_several_agents_each_get_decisions_and_new_ids(unity_env_factory):
    env = unity_env_factory(additional_args=["--agents", "16"])
    env.reset()
    decision, _ = observe(env)
    seen = set(decision.agent_id.tolist())
    assert len(seen) == 16
    ended = 0
    rng = np.random.default_rng(0)
    for _ in range(30):
        decision, terminal = step_with(env, continuous=rng.uniform(-1, 1, (16, 2)).astype(np.float32))
        assert len(decision) == 16
        assert set(terminal.agent_id.tolist()) <= seen
        ended += len(terminal)
        seen |= set(decision.agent_id.tolist())
    assert ended > 0 and len(seen) == 16 + ended


def test_environment_parameters_apply_at_next_reset(unity_env_factory):
    parameters = EnvironmentParametersChannel()
    env = unity_env_factory(
        side_channels=[parameters], additional_args=["--observations", "visual", "--image-size", "60"]
    )
    env.reset()
    parameters.set_float_parameter("scale", 3.0)  # ball diameter 3, sent with the next command
    decision, _ = step_with(env, continuous=np.zeros((1, 2), np.float32))
    small = _ball_pixels(decision.obs[0][0])
    env.reset()
    large = _ball_pixels(observe(env)[0].obs[0][0])
    assert small == pytest.approx(np.pi * 5**2, rel=0.2)  # 10 pixels per unit, radius 0.5
    assert large == pytest.approx(9 * small, rel=0.2)


def _ball_pixels(image: np.ndarray) -> int:
    """Pixels of the white disc the top-down camera draws for the ball."""
    return int((image == 1.0).all(axis=2).sum())


def test_gravity_parameter_applies_at_once(unity_env_factory):
    parameters = EnvironmentParametersChannel()
    env = unity_env_factory(side_channels=[parameters])
    env.reset()
    parameters.set_float_parameter("gravity", 0.0)  # sent with the next command
    decision, _ = step_with(env, continuous=np.zeros((1, 2), np.float32))
    assert decision.obs[0][0][3] == pytest.approx(4.0) and decision.obs[0][0][6] == 0.0  # hangs at rest


def test_build_reports_stats_with_each_aggregation_method(unity_env_factory):
    stats, engine = StatsSideChannel(), EngineConfigurationChannel()
    env = unity_env_factory(additional_args=["--agents", "4", "--stats"], side_channels=[stats, engine])
    engine.set_configuration_parameters(time_scale=100.0)
    env.reset()
    received = {}
    rng = np.random.default_rng(0)
    for _ in range(60):  # long enough for some balls to fall
        step_with(env, continuous=rng.uniform(-1, 1, (4, 2)).astype(np.float32))
        for key, values in stats.get_and_reset_stats().items():
            received.setdefault(key, []).extend(values)
    assert set(received) == set(STATS)
    for key, values in received.items():
        assert {method for _, method in values} == {StatsAggregationMethod(STATS[key])}, key
    assert sum(value for value, _ in received["3DBall/falls"]) == len(received["3DBall/episode_length"]) > 0
    assert all(0 <= value <= 4.5 for value, _ in received["3DBall/ball_distance"])
    assert {value for value, _ in received["3DBall/time_scale"]} == {100.0}
    assert len(received["3DBall/ball_distance"]) == 60


def test_build_sends_no_stats_unless_asked(unity_env_factory):
    stats = StatsSideChannel()
    env = unity_env_factory(side_channels=[stats])
    env.reset()
    step_with(env, continuous=np.zeros((1, 2), np.float32))
    assert not stats.get_and_reset_stats()


def test_time_scale_1_runs_in_real_time(unity_env_factory):
    stats, engine = StatsSideChannel(), EngineConfigurationChannel()
    env = unity_env_factory(additional_args=["--stats"], side_channels=[stats, engine])
    engine.set_configuration_parameters(time_scale=1.0)  # sent with reset; capture frame rate stays 0
    env.reset()
    start = time.monotonic()
    for _ in range(8):  # 8 decisions = 40 physics steps of 0.02 s: 0.8 s at time scale 1
        step_with(env, continuous=np.zeros((1, 2), np.float32))
    elapsed = time.monotonic() - start
    assert elapsed >= 0.75  # the build waits: a lower bound, whatever the machine's load
    assert {value for value, _ in stats.get_and_reset_stats()["3DBall/time_scale"]} == {1.0}


def test_clock_rates_follow_unity_time_settings():
    clock = GameClock()
    assert clock.rate() is None  # never configured: as fast as possible
    clock.set_time_scale(20.0)
    assert clock.rate() == 20.0  # capture frame rate 0: real-time frames, 20x
    clock.set_time_scale(1000.0)
    assert clock.time_scale == 100.0  # Unity clamps to [1, 100]
    clock.set_time_scale(0.5)
    assert clock.rate() == 1.0
    clock.set_time_scale(20.0)
    clock.set_target_frame_rate(30)
    assert clock.rate() == 10.0  # 30 frames/s x at most 1/3 s of game time each
    clock.set_capture_frame_rate(60)
    assert clock.rate() == pytest.approx(10.0)  # 30 frames/s x 20/60 s
    clock.set_target_frame_rate(-1)
    assert clock.rate() is None  # mlagents-learn's defaults: capture 60, unlimited frames


def test_clock_waits_ahead_and_catches_up_behind():
    now = [100.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    clock = GameClock(now=lambda: now[0], sleep=sleep)
    clock.set_time_scale(2.0)
    for _ in range(4):
        clock.advance(0.1)
    assert slept == pytest.approx([0.05] * 4)  # 0.1 s of game time at 2x: 0.05 s each
    now[0] += 10.0  # the trainer thought for 10 s: Unity does not replay all of it
    slept.clear()
    for _ in range(5):  # the game is 1/3 s behind: about 3 decisions run at once, then pacing again
        clock.advance(0.1)
    assert slept == pytest.approx([4 * 0.05 - (1 / 3) / 2])


class _UnknownChannel(SideChannel):
    """A side channel the player has never heard of."""

    def __init__(self) -> None:
        super().__init__(uuid.UUID("0badc0de-0000-4000-8000-000000000001"))

    def on_message_received(self, msg) -> None:  # the player never answers
        raise AssertionError("the simulated player sent a message on an unknown channel")


def test_engine_configuration_and_unknown_side_channels_are_accepted(unity_env_factory):
    engine, unknown = EngineConfigurationChannel(), _UnknownChannel()
    env = unity_env_factory(side_channels=[engine, unknown])
    engine.set_configuration_parameters(time_scale=20.0, width=84, height=84)
    message = OutgoingMessage()
    message.write_string("hello")
    unknown.queue_message_to_send(message)
    env.reset()
    decision, _ = step_with(env, continuous=np.zeros((1, 2), np.float32))
    assert len(decision) == 1


# ---- seeds ---------------------------------------------------------------------------------------


def _first_observations(env: UnityEnvironment, steps: int) -> np.ndarray:
    """Vector observations of the first ``steps`` decisions with fixed actions (episodes included)."""
    env.reset()
    rows = [observe(env)[0].obs[0][0].copy()]
    for _ in range(steps):
        rows.append(step_with(env, continuous=np.full((1, 2), 0.7, np.float32))[0].obs[0][0].copy())
    return np.array(rows)


def test_same_handshake_seed_gives_same_episodes(unity_env_factory):
    base_port = free_base_port(2)
    runs = [
        _first_observations(unity_env_factory(base_port=base_port, worker_id=w, seed=5), 60) for w in (0, 1)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_handshake_seed_is_used_without_seed_argument(unity_env_factory):
    base_port = free_base_port(2)
    runs = [
        _first_observations(unity_env_factory(base_port=base_port, worker_id=w, seed=w), 0) for w in (0, 1)
    ]
    assert not np.array_equal(runs[0], runs[1])


def test_seed_argument_overrides_handshake_seed(unity_env_factory):
    base_port = free_base_port(2)
    runs = [
        _first_observations(
            unity_env_factory(base_port=base_port, worker_id=w, seed=w, additional_args=["--seed", "9"]), 30
        )
        for w in (0, 1)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


# ---- processes, ports, logs ---------------------------------------------------------------------


def test_two_builds_run_at_once_on_neighbouring_worker_ids(unity_env_factory):
    base_port = free_base_port(2)
    envs = [
        unity_env_factory(base_port=base_port, worker_id=w, additional_args=["--seed", str(w)])
        for w in (0, 1)
    ]
    for env in envs:
        env.reset()
    for _ in range(20):
        for env in envs:
            assert len(step_with(env, continuous=np.zeros((1, 2), np.float32))[0]) == 1
    assert [env._port for env in envs] == [base_port, base_port + 1]
    assert not np.array_equal(observe(envs[0])[0].obs[0], observe(envs[1])[0].obs[0])


def test_close_leaves_no_player_process(unity_env_factory):
    env = unity_env_factory()
    pid = env._process.pid
    env.close()
    assert wait_until_gone(pid, timeout=10)


KILLED_TRAINER = """
import sys
sys.path.insert(0, sys.argv[2])
import template_runtime.fastpath
from mlagents_envs.environment import UnityEnvironment
env = UnityEnvironment(sys.argv[1], base_port=int(sys.argv[3]), no_graphics=True, timeout_wait=30)
env.reset()
print("PLAYER_PID", env._process.pid, flush=True)
sys.stdin.read()
"""


def _read_player_pid(trainer: subprocess.Popen, timeout: float) -> int:
    """The pid the trainer script prints (the player's own log lines may come first on stdout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([trainer.stdout], [], [], deadline - time.monotonic())
        line = trainer.stdout.readline() if ready else ""
        if line.startswith("PLAYER_PID"):
            return int(line.split()[1])
        if ready and not line:
            break  # the trainer script ended without a pid
    raise AssertionError(f"the trainer script reported no player pid within {timeout} s")


def test_player_exits_when_trainer_process_is_killed(sim_executable: str):
    trainer = subprocess.Popen(
        [sys.executable, "-c", KILLED_TRAINER, sim_executable, str(REPO_ROOT / "src"), str(free_base_port())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        player_pid = _read_player_pid(trainer, timeout=60)
    finally:
        trainer.kill()  # SIGKILL: no atexit, no close()
        trainer.wait()
    try:
        assert wait_until_gone(player_pid, timeout=10), "the player outlived its killed trainer"
    finally:
        if not wait_until_gone(player_pid, timeout=0):
            os.kill(player_pid, signal.SIGKILL)


def test_player_started_by_hand_connects_to_given_port(sim_executable: str):
    port = free_base_port()
    player = subprocess.Popen(
        [sim_executable + ".x86_64", "--mlagents-port", str(port)],
        env={**os.environ, "UNITY_SIM_PYTHON": sys.executable},
        stdout=subprocess.DEVNULL,
    )
    try:
        env = UnityEnvironment(file_name=None, base_port=port, timeout_wait=30)  # "Editor" mode: no launch
        assert BEHAVIOR in env.behavior_specs
        env.close()
        assert player.wait(timeout=10) == 0
    finally:
        if player.poll() is None:
            player.kill()
            player.wait()


def test_unknown_unity_flags_are_ignored_and_log_file_written(unity_env_factory, tmp_path: Path):
    log_file = tmp_path / "logs" / "player.log"
    env = unity_env_factory(
        additional_args=["-screen-fullscreen", "0", "-force-vulkan", "-logFile", str(log_file)]
    )
    env.reset()
    assert "connected to mlagents-envs" in log_file.read_text()
    assert "-screen-fullscreen" in log_file.read_text()


def test_log_folder_receives_player_log(unity_env_factory, tmp_path: Path):
    unity_env_factory(log_folder=str(tmp_path), worker_id=0).reset()
    assert (tmp_path / "Player-0.log").stat().st_size > 0
