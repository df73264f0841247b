"""A stand-in for a Unity ML-Agents Linux player build, speaking the real gRPC protocol.

``mlagents_envs.environment.UnityEnvironment(file_name=...)`` starts the build's ``<Name>.x86_64``
launcher, which ``exec``s this file with the same arguments. Like a real player this process is the
gRPC *client* of ``UnityToExternalProto/Exchange`` on ``localhost:<--mlagents-port>``: it sends its
state and receives the next command (handshake, RESET, STEP, then status 400 to quit).

Arguments (unknown ones are ignored, as Unity ignores flags it does not know):
  --mlagents-port P        port of the trainer's server (UnityEnvironment passes base_port + worker_id)
  -logFile PATH            write the player log there ("-" = stdout; default stdout), like Unity
  -batchmode -nographics   accepted; images are still rendered (a real build renders them black)
  --agents N               agents, each on its own cube (default 12, as the real scene's 12)
  --max-steps N            episode length in decisions before max_step_reached (default 1000, as
                           Unity's MaxStep 5000 physics steps)
  --seed S                 seed; wins over the seed the handshake carries (UnityEnvironment(seed=...)),
                           which is used when --seed is absent
  --action-type T          continuous (2 actions) | discrete (one branch of 9) | branched (2 x 3)
  --action-masks           send discrete action masks (tilting past the limit is masked)
  --observations O         sensors joined by '+': vector (8 floats), visual (RGB image), gray
                           (1-channel image); e.g. vector+visual, visual+gray (default vector)
  --image-size N           image height and width (default 32)
  --uncompressed-visual    send images as float_data instead of PNG
  --behavior-name NAME     default "<product name in ../app.info>?team=0", else "3DBall?team=0"
  --stats                  report custom stats through the StatsSideChannel (see academy.STATS); the
                           trainer should then register mlagents_envs' StatsSideChannel, or
                           mlagents-envs logs a warning for each message it does not know
  --physics P              physx (default: Unity's 3DBall, see ball_balance.py) | none (the balls
                           hang still: a reference for benchmarks of the protocol alone)
  --decision-delay S       wait S more seconds of wall time on every command (default 0): a slow
                           machine, e.g. the straggler of a distributed test

Engine configuration (EngineConfigurationChannel): time_scale, target and capture frame rate pace the
decisions as in a real build (unity_sim/clock.py): at time_scale 1 a decision takes 0.1 s of wall
time, at mlagents' default 20 at least 5 ms; 100 (Unity's maximum) is as fast as the build can go.

The process exits 0 when the trainer closes the environment (status 400 or QUIT), and also when the
trainer goes away (its channel breaks, or this process's parent dies), so no player is left behind.
It exits 1 when Python lacks grpcio, protobuf, numpy or mlagents-envs: point UNITY_SIM_PYTHON at an
interpreter that has them (the launcher runs "${UNITY_SIM_PYTHON:-python3}").
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real only after the dependency check in main()
    import grpc
    from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

    from unity_sim.academy import Academy, AcademySettings

CODE_ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the ``unity_sim`` package (``<Name>_Data/Python`` in a build)."""
REQUIRED = {
    "numpy": "numpy",
    "grpc": "grpcio",
    "google.protobuf": "protobuf",
    "mlagents_envs": "mlagents-envs",
}
"""Module to import -> distribution to install."""
EXCHANGE_METHOD = "/communicator_objects.UnityToExternalProto/Exchange"
CONNECT_TIMEOUT_SECONDS = 60.0
"""How long the first call waits for the trainer's server (it is normally up before we start)."""
PARENT_POLL_SECONDS = 0.5

log = logging.getLogger("unity_sim")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Our options plus Unity's; anything else is left over and ignored like Unity does."""
    parser = argparse.ArgumentParser(prog="player", allow_abbrev=False, add_help=False)
    parser.add_argument("--mlagents-port", type=int, default=5004)  # Unity's default: the Editor port
    parser.add_argument("-logFile", "-logfile", dest="log_file")
    parser.add_argument("-batchmode", action="store_true")
    parser.add_argument("-nographics", action="store_true")
    parser.add_argument("--agents", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--action-type", default="continuous")
    parser.add_argument("--action-masks", action="store_true")
    parser.add_argument("--observations", default="vector")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--uncompressed-visual", action="store_true")
    parser.add_argument("--behavior-name", default=None)
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--physics", default="physx")
    parser.add_argument("--decision-delay", type=float, default=0.0)
    arguments, ignored = parser.parse_known_args(argv)
    arguments.ignored = ignored
    return arguments


def missing_packages() -> list[str]:
    """Distribution names of the required modules this interpreter cannot import."""
    return [package for module, package in REQUIRED.items() if not _importable(module)]


def _importable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (a missing parent package counts)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def default_behavior_name() -> str:
    """``<product>?team=0`` from the build's app.info (Unity writes company, product), else 3DBall."""
    app_info = CODE_ROOT.parent / "app.info"
    try:
        lines = app_info.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    product = lines[1].strip() if len(lines) > 1 and lines[1].strip() else "3DBall"
    return f"{product}?team=0"


def configure_log(log_file: str | None) -> None:
    """Send the player log where Unity would: the -logFile path (created, truncated) or stdout."""
    handler: logging.Handler = logging.StreamHandler(sys.stdout)
    if log_file and log_file != "-":
        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        except OSError as error:  # Unity carries on without its log file too
            print(
                f"unity_sim player: cannot write -logFile {log_file} ({error}); logging to stdout",
                file=sys.stderr,
            )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def watch_parent() -> None:
    """Exit when the process that started us dies (we get re-parented): never outlive the trainer.

    The broken gRPC channel normally tells us first; this also covers a trainer killed before it
    answered our first call, when the call is still waiting for a server.
    """
    parent = os.getppid()
    ticks = threading.Event()  # never set: wait() is an interruptible sleep

    def poll() -> None:
        while not ticks.wait(PARENT_POLL_SECONDS):
            if os.getppid() != parent:
                log.info("the trainer process (pid %d) is gone; exiting", parent)
                logging.shutdown()
                os._exit(0)

    threading.Thread(target=poll, name="parent-watch", daemon=True).start()


def import_protocol_modules() -> str | None:
    """Put our package and ``mlagents_fastpath`` on the path and install its hook before mlagents_envs.

    In a build ``mlagents_fastpath.py`` sits next to ``unity_sim/``; in the source tree it is
    ``src/template_runtime/fastpath.py``.
    Returns None when mlagents-envs' message classes import, else a message saying what to do.
    """
    for folder in (CODE_ROOT, CODE_ROOT / "src"):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    with contextlib.suppress(ImportError):  # not needed on protobuf 3.20; the next import tells
        try:
            import mlagents_fastpath  # noqa: F401  (a packaged build: installs the hook on protobuf >= 4)
        except ImportError:
            from template_runtime import fastpath  # noqa: F401  (the source tree: src/template_runtime/)
    try:
        import mlagents_envs.communicator_objects.unity_message_pb2  # noqa: F401
    except (TypeError, ImportError) as error:  # "Descriptors cannot be created directly"
        import google.protobuf

        return (
            f"unity_sim player: mlagents-envs' protocol classes do not import on protobuf "
            f"{google.protobuf.__version__} ({error}). This build lacks a working mlagents_fastpath.py: "
            "package it again with `python -m unity_sim.package_build`, or run it with a Python that has "
            "protobuf 3.20.3 (set UNITY_SIM_PYTHON)."
        )
    return None


def settings_from(arguments: argparse.Namespace) -> AcademySettings:
    """The academy's settings from the command line (validated when the Academy is built)."""
    from unity_sim.academy import AcademySettings

    return AcademySettings(
        behavior_name=arguments.behavior_name or default_behavior_name(),
        agents=arguments.agents,
        max_steps=arguments.max_steps,
        seed=arguments.seed if arguments.seed is not None else 0,
        action_type=arguments.action_type,
        sensors=tuple(arguments.observations.split("+")),
        image_size=arguments.image_size,
        compressed_images=not arguments.uncompressed_visual,
        action_masks=arguments.action_masks,
        physics=arguments.physics,
        stats=arguments.stats,
    )


def run(arguments: argparse.Namespace) -> int:
    """Handshake, then answer commands until the trainer quits or goes away."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no "Got goaway" chatter when the trainer closes
    import grpc
    from mlagents_envs.communicator_objects.command_pb2 import QUIT
    from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

    from unity_sim.academy import Academy
    from unity_sim.wire import encode_step_message

    settings = settings_from(arguments)
    try:
        academy = Academy(settings)
    except ValueError as error:
        message = f"unity_sim player: {error}. Fix the argument in UnityEnvironment(additional_args=...)."
        print(message, file=sys.stderr)
        log.error(message)
        return 2
    log.info("simulated player: %s on port %d", settings, arguments.mlagents_port)
    if arguments.nographics and settings.sensors != ("vector",):
        log.warning("-nographics: a real Unity build renders camera observations black; this one does not")

    with grpc.insecure_channel(f"localhost:{arguments.mlagents_port}") as channel:
        exchange = channel.unary_unary(EXCHANGE_METHOD)  # bytes in, bytes out: we (de)serialize
        try:
            reply = handshake(exchange, academy, arguments)
            while reply.header.status == 200 and reply.unity_input.rl_input.command != QUIT:
                if arguments.decision_delay > 0:
                    time.sleep(arguments.decision_delay)
                output = encode_step_message(academy.handle(reply.unity_input.rl_input))
                reply = UnityMessageProto.FromString(exchange(output))
        except grpc.RpcError as error:
            log.info("the trainer went away (%s); exiting", error.code())
            return 0
    log.info("the trainer closed the environment (status %d); exiting", reply.header.status)
    return 0


def handshake(
    exchange: grpc.UnaryUnaryMultiCallable, academy: Academy, arguments: argparse.Namespace
) -> UnityMessageProto:
    """Send our spec, take the seed, send the empty second message; its reply is the first command."""
    from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto

    first = UnityMessageProto()
    first.header.status = 200
    first.unity_output.CopyFrom(academy.initialization_output(arguments.log_file or ""))
    reply = UnityMessageProto.FromString(
        exchange(first.SerializeToString(), wait_for_ready=True, timeout=CONNECT_TIMEOUT_SECONDS)
    )
    if reply.header.status != 200:
        return reply
    init = reply.unity_input.rl_initialization_input
    seed = arguments.seed if arguments.seed is not None else init.seed
    academy.seed(seed)
    log.info(
        "connected to mlagents-envs %s (API %s); seed %d from %s",
        init.package_version,
        init.communication_version,
        seed,
        "--seed" if arguments.seed is not None else "the handshake",
    )
    if init.num_areas > 1:
        log.warning("num_areas=%d ignored: this build does not replicate areas; use --agents", init.num_areas)
    second = UnityMessageProto()
    second.header.status = 200
    return UnityMessageProto.FromString(exchange(second.SerializeToString()))


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    configure_log(arguments.log_file)
    missing = missing_packages()
    if missing:
        message = (
            f"unity_sim player: the Python running it ({sys.executable}) lacks {', '.join(missing)}. "
            "Install requirements/training.txt into it, or set UNITY_SIM_PYTHON to an interpreter that "
            "has them (for example your project's .venv/bin/python)."
        )
        print(message, file=sys.stderr)
        log.error(message)
        return 1
    if arguments.ignored:
        log.info("ignored arguments (unknown to this player, as Unity ignores them): %s", arguments.ignored)
    watch_parent()
    problem = import_protocol_modules()
    if problem:
        print(problem, file=sys.stderr)
        log.error(problem)
        return 1
    try:
        return run(arguments)
    except Exception:
        log.exception("the simulated player failed")
        raise
    finally:
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
