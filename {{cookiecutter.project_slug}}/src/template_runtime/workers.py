"""One Unity instance in a worker process: how ``UnityVecEnv`` steps several instances at once.

A step is mostly mlagents-envs' Python (protobuf, its gRPC server thread), which holds the GIL, so
threads would take turns (measured: two instances in threads gave 1.05x the steps of one) while
processes use every core. ``EnvWorker(unity_file, settings)`` spawns a fresh interpreter (gRPC and
TensorFlow are not fork-safe) that starts the player with ``unity.start_player``, views it as an
``AgentBatch`` and answers ``reset`` / ``step`` requests. It needs no ``Trainer`` and no
TensorFlow (the trainer's script is not re-imported in it), so workers start in about a second.
The worker closes its player when asked, on SIGTERM, and when its parent goes away (the pipe
breaks); Ctrl-C is for the parent, which then closes the workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys

from template_runtime.unity import AgentBatch, EnvSettings, RunningPlayer, start_player

WORKER_CLOSE_SECONDS = 90
"""How long close() waits for a worker to close its player (the player gets timeout_wait to quit)."""


class EnvWorker:
    """A worker process holding one Unity instance; ``wait_ready()`` before the first request."""

    def __init__(self, unity_file: str | os.PathLike, settings: EnvSettings, name: str = "unity-env"):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, str(unity_file), settings), name=name, daemon=True
        )
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.player_pid: int | None = None

    def wait_ready(self) -> None:
        """Wait until the player is connected; then the spaces and the behaviour are known."""
        ready = self.result()
        self.observation_space, self.action_space = ready["observation_space"], ready["action_space"]
        self.behavior_name, self.behavior_spec = ready["behavior_name"], ready["behavior_spec"]
        self.worker_id, self.player_pid = ready["worker_id"], ready["player_pid"]

    def request(self, command: str, data=None) -> None:
        """Send ``reset`` or ``step`` (with the actions); ``result()`` collects the answer."""
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
        if self.player_pid is not None:  # a worker killed before it closed its player
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.player_pid, signal.SIGKILL)


@contextlib.contextmanager
def _main_module_hidden():
    """Start a spawned worker without re-importing the trainer's script in it.

    A spawned child re-imports ``__main__`` (by its file or module name) before running its target;
    for a training script that is TensorFlow's import (seconds, hundreds of MB) in every worker,
    which needs nothing of it: the worker's code is this module. Without ``__file__`` and
    ``__spec__`` during ``start()``, multiprocessing leaves the main module alone.
    """
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        for name in saved:
            if name == "__file__":
                delattr(main, name)
            else:
                setattr(main, name, None)
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _worker_main(connection, unity_file: str, settings: EnvSettings) -> None:
    """Open the env, then answer (command, data) requests until closed or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the trainer, which then closes us

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)  # still close the player below
    player: RunningPlayer | None = None
    try:
        player = start_player(unity_file, settings)
        batch = AgentBatch(player.env, multiagent=settings.multiagent, **settings.view_options)
        connection.send(("ok", _ready(batch, player)))
        while True:
            command, data = connection.recv()
            if command == "close":
                break
            if command == "reset":
                connection.send(("ok", batch.reset()))
            else:
                connection.send(("ok", (*batch.step(data), player.pop_stats())))
    except (EOFError, BrokenPipeError, SystemExit):
        pass  # the trainer went away or asked us to stop
    except BaseException as error:  # report it to the trainer, which raises it
        try:
            connection.send(("error", error))
        except Exception:
            connection.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))
    finally:
        if player is not None:
            player.close()


def _ready(batch: AgentBatch, player: RunningPlayer) -> dict:
    return {
        "observation_space": batch.observation_space,
        "action_space": batch.action_space,
        "behavior_name": batch.behavior_name,
        "behavior_spec": batch.behavior_spec,
        "worker_id": player.worker_id,
        "player_pid": player.pid,
    }
