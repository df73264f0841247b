#!/opt/venv/bin/python3 -I
"""PID 1 of the training image: get SageMaker's SIGTERM to the trainer, and wait for it.

SageMaker stops a job (StopTrainingJob, a spot interruption, MaxRuntime) with SIGTERM to the
container's first process and SIGKILL 120 s later. Without this program that first process is
sagemaker-training's `train` (SDK v2) or `/bin/bash -c ... sm_train.sh` (SDK v3): the kernel drops
signals that PID 1 has no handler for, neither program has one, and the trainer, two or three
processes further down, never hears of the stop: no checkpoint, killed after 120 s. (Found by
tests/image/test_container.py, which runs `docker stop -t 120` against a real job.)

So this program runs the job's command as its child, in a process group of its own, with SIGTERM
ignored: the drivers in between (`train`, bash, sm_train.sh's Python driver) inherit that and keep
running, while a process that installs its own SIGTERM handler (the Trainer does, to checkpoint and
close Unity) replaces it. On SIGTERM or SIGINT it signals the whole group; the trainer saves, exits,
the drivers see it end and exit with its status, and so does this program. It also reaps orphans
(PID 1's other duty); once the command has exited, what is left (a background Xvfb, a leaked
player) gets a few seconds and is then killed.

    ENTRYPOINT ["/opt/unity-rl/init", "/opt/unity-rl/entrypoint.sh"]          (SDK v2: ... train)
    BASH_ENV=/opt/unity-rl/bash_env.sh: bash as PID 1 (SDK v3) re-runs its command under this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT)
LEFTOVER_SECONDS = 5  # after the command exited, before whatever it left behind is killed


def main(argv: list[str]) -> int:
    if not argv:
        print("init: usage: init COMMAND [ARGS...]", file=sys.stderr)
        return 2
    # The child's SIGTERM is ignored from the start (set before fork, so there is no gap).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        try:
            os.execvp(argv[0], argv)
        except OSError as error:
            print(f"init: cannot run {argv[0]}: {error}", file=sys.stderr)
            os._exit(127)
    with contextlib.suppress(OSError):  # the child did it first, or has already exited
        os.setpgid(child, child)

    def forward(signum, _frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)

    status = 0
    while True:  # reap everything until the command itself has exited
        try:
            pid, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        if pid == child:
            code = os.waitstatus_to_exitcode(raw)
            status = 128 - code if code < 0 else code
            break
    deadline = time.monotonic() + LEFTOVER_SECONDS
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            time.sleep(0.1)
    if os.getpid() == 1:
        os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of the container
    else:  # run outside a container (a test): only the command's own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child, signal.SIGKILL)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
