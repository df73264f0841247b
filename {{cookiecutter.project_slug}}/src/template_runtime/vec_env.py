"""Several Unity instances (each with one agent, or with ``multiagent`` several) as one batch of envs.

``open_parallel_envs(trainer, unity_file, num_envs)`` is what the learning examples call instead of
``trainer.get_gym_env``. One instance runs in the trainer's process. Several run in worker processes,
one each, stepped at the same time: a step is mostly mlagents-envs' Python (protobuf, its gRPC
server thread, the gym wrapper), which holds the GIL, so threads would take turns (measured: 2
instances in threads gave 1.05x the steps of one) while processes use every core. Each worker opens
its env through a ``Trainer`` of its own built from the same config, so the player is started, logged
and closed exactly as ``Trainer.get_gym_env`` does it. No TensorFlow here: workers stay light.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from pathlib import Path

import numpy as np
from gym import spaces

from trainer import Trainer

WORKER_CLOSE_SECONDS = 90  # a worker waits for its player to quit (timeout_wait) before it exits


def open_parallel_envs(trainer: Trainer, unity_file: str, num_envs: int) -> ParallelEnvs:
    """``num_envs`` instances of ``unity_file``: instance ``i`` has seed ``seed + i`` (the same seed would
    play the same episodes) and worker_id ``worker_id + i`` (or the next free one)."""
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs} must be at least 1 (the number of Unity instances)")
    multiagent = bool(trainer.config["multiagent"])
    if num_envs == 1:
        return ParallelEnvs([_InProcess(trainer.get_gym_env(unity_file), multiagent)], multiagent)
    workers = []
    try:
        for offset in range(num_envs):
            workers.append(_Worker(trainer, unity_file, offset))
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        for worker in workers:
            worker.close()
        raise
    return ParallelEnvs(workers, multiagent)


class ParallelEnvs:
    """``reset() -> obs`` and ``step(actions) -> (obs, rewards, terminated, truncated, final_obs)`` with one
    row per agent over all instances (``num_envs`` = total agents).

    An agent whose episode ended is restarted at once: its row of ``obs`` is already the next
    episode's, and the last observation of the finished episode is ``final_obs[row]`` (to bootstrap
    a truncated episode). ``truncated``: Unity's max step was reached; ``terminated``: the episode
    really ended. ``pop_finished()`` gives (return, length) of the episodes ended since the last call.
    """

    def __init__(self, instances: list, multiagent: bool):
        self.instances, self.multiagent = instances, multiagent
        self.observation_space = instances[0].observation_space
        self.action_space = instances[0].action_space
        if isinstance(self.observation_space, spaces.Tuple):
            self.close()
            raise ValueError(
                "allow_multiple_visual_obs=True gives several images per observation, which these examples "
                "do not handle: set allow_multiple_visual_obs=False (the first camera is used)"
            )
        self.sizes: list[int] = []
        self.num_envs = 0
        self.finished: list[tuple[float, int]] = []

    def reset(self) -> np.ndarray:
        for instance in self.instances:
            instance.request("reset", None)
        observations = [instance.result() for instance in self.instances]
        self.sizes = [len(obs) for obs in observations]
        self.num_envs = sum(self.sizes)
        self._splits = np.cumsum(self.sizes)[:-1]
        self.episode_returns = np.zeros(self.num_envs)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        return np.concatenate(observations)

    def step(self, actions: np.ndarray):
        if len(self.instances) == 1:  # the common case, without splitting and joining
            self.instances[0].request("step", actions)
            obs, rewards, terminated, truncated, final_obs = self.instances[0].result()
        else:
            for instance, part in zip(
                self.instances, np.split(np.asarray(actions), self._splits), strict=True
            ):
                instance.request("step", part)  # all instances step at once
            results = [instance.result() for instance in self.instances]
            obs, rewards, terminated, truncated = (np.concatenate([r[i] for r in results]) for i in range(4))
            final_obs, start = {}, 0
            for size, result in zip(self.sizes, results, strict=True):
                final_obs.update({start + row: value for row, value in result[4].items()})
                start += size
        self.episode_returns += rewards
        self.episode_lengths += 1
        for row in np.flatnonzero(terminated | truncated):
            self.finished.append((float(self.episode_returns[row]), int(self.episode_lengths[row])))
            self.episode_returns[row], self.episode_lengths[row] = 0.0, 0
        return obs, rewards, terminated, truncated, final_obs

    def pop_finished(self) -> list[tuple[float, int]]:
        finished, self.finished = self.finished, []
        return finished

    def close(self) -> None:
        """Stop the worker processes (each closes its player); the trainer closes an in-process one."""
        for instance in self.instances:
            instance.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# One instance: in this process, or in a worker process


def _reset(env, multiagent: bool) -> np.ndarray:
    return np.stack(env.reset()) if multiagent else np.asarray(env.reset())[None]


def _step(env, actions: np.ndarray, multiagent: bool):
    """Step one instance; a gym-wrapper env (one agent) that finished its episode is reset here."""
    if multiagent:  # Unity restarts each agent by itself (see template_runtime.unity.MultiAgentUnityEnv)
        obs, rewards, dones, info = env.step(actions)
        dones, truncated = np.asarray(dones, bool), np.asarray(info["interrupted"], bool)
        rewards = np.asarray(rewards, np.float32)
        return np.stack(obs), rewards, dones & ~truncated, dones & truncated, info["terminal_observations"]
    obs, reward, done, info = env.step(actions[0])
    truncated = bool(done and info["step"].interrupted[0])
    final = {}
    if done:
        final[0], obs = obs, env.reset()
    rewards = np.array([reward], np.float32)
    return np.asarray(obs)[None], rewards, np.array([done and not truncated]), np.array([truncated]), final


class _InProcess:
    """An env opened by the trainer itself (which also closes it)."""

    def __init__(self, env, multiagent: bool):
        self.env, self.multiagent = env, multiagent
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def request(self, command: str, data) -> None:
        self._pending = (command, data)

    def result(self):
        command, data = self._pending
        return (
            _reset(self.env, self.multiagent)
            if command == "reset"
            else _step(self.env, data, self.multiagent)
        )

    def close(self) -> None:
        pass


class _Worker:
    """A worker process holding one instance; it exits (closing its player) on close() or when we die."""

    def __init__(self, trainer: Trainer, unity_file: str, offset: int):
        config = dict(
            trainer.config, seed=trainer.seed + offset, worker_id=trainer.config["worker_id"] + offset
        )
        config["project_file"] = ""  # the config is already complete: read nothing again
        output = {"local": trainer.local, "run_dir": str(trainer.run_dir) if trainer.local else None}
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: gRPC and TF are not fork-safe
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main,
            args=(child, config, output, unity_file, bool(trainer.config["multiagent"])),
            name=f"unity-env-{offset}",
            daemon=True,
        )
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        self.observation_space, self.action_space = self.result()

    def request(self, command: str, data) -> None:
        self.connection.send((command, data))

    def result(self):
        try:
            status, value = self.connection.recv()
        except EOFError:
            raise RuntimeError(
                f"the env worker {self.process.name} (pid {self.process.pid}) died; its player log is in "
                "the output folder's unity_logs"
            ) from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        if self.connection.closed:
            return
        if self.process.is_alive():
            with contextlib.suppress(OSError):  # it may be exiting already
                self.connection.send(("close", None))
            self.process.join(WORKER_CLOSE_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


class _EnvHost(Trainer):
    """The Trainer a worker process opens its env with (never run)."""

    def run(self):
        raise NotImplementedError("an env host only opens envs")


def _worker_main(connection, config: dict, output: dict, unity_file: str, multiagent: bool) -> None:
    """Open the env, then answer ("reset"|"step"|"close", data) requests until closed or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the trainer, which then closes us

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)  # still close the player below
    host = None
    try:
        host = _EnvHost(config, argv=[])
        host.local = output["local"]
        if output["run_dir"]:
            host._run_dir = Path(output["run_dir"])  # the trainer's run folder: player logs go there too
        env = host.get_gym_env(unity_file)
        connection.send(("ok", (env.observation_space, env.action_space)))
        while True:
            command, data = connection.recv()
            if command == "close":
                break
            answer = _reset(env, multiagent) if command == "reset" else _step(env, data, multiagent)
            connection.send(("ok", answer))
    except (EOFError, BrokenPipeError, SystemExit):
        pass  # the trainer went away or asked us to stop
    except BaseException as error:  # report it to the trainer, which raises it
        try:
            connection.send(("error", error))
        except Exception:
            connection.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))
    finally:
        if host is not None:
            host.close_env()
