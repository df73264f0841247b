"""The Unity player never outlives the trainer: normal end, exception, SIGTERM, SIGINT (checked by PID)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sim_fixtures import process_is_gone

from trainer import LocalTrainer

pytestmark = pytest.mark.usefixtures("no_internet")

SRC = Path(__file__).resolve().parents[2] / "src"


def alive(pid: int) -> bool:
    return not process_is_gone(pid)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("localhost", port))
            return True
        except OSError:
            return False


def free_worker_id() -> int:
    for worker_id in range(60, 600):
        if port_free(5005 + worker_id):
            return worker_id
    pytest.skip("no free port in 5065-5605")


def config(tmp_path: Path, **extra) -> dict:
    return {
        "runs_dir": str(tmp_path / "runs"),
        "project_file": "",
        "worker_id": free_worker_id(),
        "timeout_wait": 30,
        "additional_args": ["--agents", "1"],  # the gym env drives one agent (the build has 12 by default)
        **extra,
    }


class OneEpisode(LocalTrainer):
    def run(self):
        env = self.get_gym_env(self.config["player"])
        self.pids = list(self.unity_pids)
        env.reset()
        env.step(env.action_space.sample())
        if self.config["fail"]:
            raise ValueError("bug in the training loop")


# ---- in this process ---------------------------------------------------------------------------------


def test_normal_end_of_run_closes_the_player_and_frees_its_port(sim_executable, tmp_path):
    trainer = OneEpisode(config(tmp_path, player=str(sim_executable), fail=False), argv=[])
    trainer.run()
    assert trainer.pids and not any(alive(pid) for pid in trainer.pids)
    assert port_free(5005 + trainer.worker_id) and trainer.unity_pids == []


def test_exception_in_run_closes_the_player(sim_executable, tmp_path):
    trainer = OneEpisode(config(tmp_path, player=str(sim_executable), fail=True), argv=[])
    with pytest.raises(ValueError, match="bug in the training loop"):
        trainer.run()
    assert trainer.pids and not any(alive(pid) for pid in trainer.pids)


def test_close_env_after_the_user_closed_it_is_harmless(sim_executable, tmp_path):
    trainer = OneEpisode(config(tmp_path), argv=[])
    env = trainer.get_gym_env(sim_executable)
    (pid,) = trainer.unity_pids
    env.close()
    trainer.close_env()
    assert not alive(pid) and trainer.unity_pids == []


def test_trainer_as_context_manager_closes_outside_run(sim_executable, tmp_path):
    with OneEpisode(config(tmp_path), argv=[]) as trainer:
        trainer.get_unity_env(sim_executable)
        (pid,) = trainer.unity_pids
    assert not alive(pid)


# ---- signals, in a child process ---------------------------------------------------------------------

SCRIPT = """
import json, sys
sys.path.insert(0, {src!r})
from trainer import LocalTrainer

class Loop(LocalTrainer):
    checks_stop_requested = {checks!r}

    def run(self):
        self.on_stop(lambda signum: (self.output_dir / "on_stop").write_text(str(signum)))
        env = self.get_gym_env({player!r})
        env.reset()
        ready = {{"pids": self.unity_pids, "output": str(self.output_dir), "port": 5005 + self.worker_id}}
        print("READY " + json.dumps(ready), flush=True)
        while not self.stop_requested:
            if env.step(env.action_space.sample())[2]:
                env.reset()
        (self.output_dir / "returned").write_text("yes")

Loop({config!r}, argv=[]).run()
"""


def wait_until_ready(process: subprocess.Popen) -> dict:
    """The READY line the child prints once its player runs (polled with a deadline)."""
    deadline, seen = time.monotonic() + 60, b""
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
        if ready:
            seen += os.read(process.stdout.fileno(), 65536)  # unbuffered, so select stays truthful
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith("READY ") and seen.endswith(b"\n"):
                    return json.loads(line[len("READY ") :])
    pytest.fail(f"the trainer did not start its player (exit code {process.poll()})")


@pytest.fixture
def loop(tmp_path, sim_executable):
    """start(checks) -> (process, info) for a child trainer; one still running at the end gets
    SIGTERM (so it closes its player), then SIGKILL if it does not exit."""
    started: list[subprocess.Popen] = []

    def start(checks: bool):
        script = tmp_path / "loop.py"
        source = SCRIPT.format(src=str(SRC), checks=checks, player=sim_executable, config=config(tmp_path))
        script.write_text(textwrap.dedent(source))
        process = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(process)
        return process, wait_until_ready(process)

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_sigterm_closes_the_player_and_exits_143(loop):
    process, info = loop(checks=False)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1].decode(errors="replace")
    assert process.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr
    assert not any(alive(pid) for pid in info["pids"]) and port_free(info["port"])
    assert (Path(info["output"]) / "on_stop").read_text() == str(int(signal.SIGTERM))


def test_sigterm_lets_a_trainer_that_checks_stop_requested_return(loop):
    process, info = loop(checks=True)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1].decode(errors="replace")
    assert process.returncode == 0, stderr[-2000:]
    assert (Path(info["output"]) / "returned").exists()
    assert not any(alive(pid) for pid in info["pids"])


def test_sigint_closes_the_player_and_raises_keyboard_interrupt(loop):
    process, info = loop(checks=False)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=60)[1].decode(errors="replace")
    assert process.returncode in (-signal.SIGINT, 128 + signal.SIGINT), stderr[-2000:]
    assert "KeyboardInterrupt" in stderr
    assert not any(alive(pid) for pid in info["pids"])


def test_second_signal_during_shutdown_still_kills_the_player(loop):
    process, info = loop(checks=True)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert not any(alive(pid) for pid in info["pids"])
