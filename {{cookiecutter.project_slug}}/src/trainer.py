"""Trainer and LocalTrainer: the base class every training script in src/ extends.

A training script is a file with a module-level ``config`` dict (its own hyperparameters; the keys
below in ``DEFAULT_CONFIG`` are there too), a ``Trainer`` subclass that implements ``run()`` and
lists the metrics it reports, and a main guard. random_trainer.py is the example to copy:

    class MyTrainer(Trainer):
        metrics = ("my_loss",)                       # charted by SageMaker, besides base_metrics

        def run(self):
            with self.make_vec_env() as envs:        # num_envs Unity instances, num_agents agents
                obs = envs.reset()
                while ...:
                    obs, rewards, terminated, truncated, infos = envs.step(actions)
                    self.log_metrics(step, episode_reward_mean=..., my_loss=...)
            # save into self.model_dir; other results into self.output_dir
            self.export_unity_model(envs, policy)    # model_dir/<behaviour>.onnx for Unity's Editor

The script only deals with envs, ``self.config`` and folders; the template's runtime
(``template_runtime/``) does the rest: config layers and types (DEFAULT_CONFIG < the script's
``config`` < project.toml's build settings (local runs) < SM_HPS in a job < ``--key value``, each
value keeping its type), getting the Unity build (S3, a SageMaker input channel, or a zip or folder
on disk), starting and always closing the Unity players (on exceptions, SIGTERM from a SageMaker
stop or spot interruption, Ctrl-C), and where results go (SageMaker's folders inside a job,
``runs/<name>-<YYYYmmdd-HHMMSS>/`` locally).
"""

from __future__ import annotations

# ruff: noqa: E402  (the imports below wait for answer_early(), which must run before they load)
from template_runtime.cli import answer_early, split_run_flags

answer_early()  # `--help` and mistyped keys are answered here, before mlagents or TensorFlow load

# isort: split
import template_runtime.fastpath  # noqa: F401  (first: lets mlagents_envs run on the fast protobuf)

# isort: split
import functools
import json
import logging
import os
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from mlagents_envs.environment import UnityEnvironment

from template_runtime import build as unity_build
from template_runtime.config import (
    ConfigError,
    in_sagemaker_job,
    merge_config,
    parse_cli,
    read_project_settings,
    read_sm_hps,
    validate_config,
)
from template_runtime.distributed import Cluster, Workers, find_cluster
from template_runtime.metrics import BASE_METRICS, MetricsLog, stat_metric_name
from template_runtime.unity import (
    EnvSettings,
    RunningPlayer,
    UnityEnvOptionError,
    make_single_agent_env,
    start_player,
)
from template_runtime.vec_env import UnityVecEnv, open_vec_env

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigError",
    "LocalTrainer",
    "Trainer",
    "TrainingStopped",
    "UnityEnvOptionError",
]

logger = logging.getLogger("trainer")

REPO_ROOT = Path(__file__).resolve().parent.parent
SAGEMAKER_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")  # SageMaker syncs it with checkpoint_s3_uri

DEFAULT_CONFIG: dict[str, object] = {
    # The Unity Linux build. In a SageMaker job: the zip s3://<bucket>/<zip_env_name>, or the input
    # channel <build_channel> if the job has one; locally: the zip <zip_env_name> on disk, or the
    # already extracted <build_folder>. Relative paths: to the working directory in a job, to the
    # repo locally. Local runs take these four from project.toml unless given here or as --key value.
    "bucket": "",  # the S3 bucket of the zipped build (a job's launcher sets it)
    "zip_env_name": "",  # the zipped build: an S3 key in bucket, s3://bucket/key, or a zip on disk
    "build_folder": "unity_build",  # where the build is extracted (a folder the trainer owns)
    "env_file": "",  # the player in the build, with or without .x86_64 ("" = the only one there is)
    "build_channel": "env",  # a job started with fit({"env": "s3://.../build.zip"}) has channel "env"
    # The environment (the original template's options, same meaning).
    "num_envs": 1,  # Unity instances run in parallel, each in a worker process on its own worker_id
    "worker_id": 0,  # the player talks on port 5005 + worker_id; the next free id is taken if it is busy
    "use_visual": False,  # observe the camera (True) or the vector observations (False)
    "use_uint8_visual": False,  # visual observations as uint8 0-255 instead of float 0-1
    "multiagent": False,  # drive every agent of the build (each is one row of the batch), not only one
    "flatten_branched": False,  # several discrete branches become one Discrete (else MultiDiscrete)
    "allow_multiple_visual_obs": False,  # get_gym_env: a tuple of every camera instead of the first
    "no_graphics": True,  # start the player with -nographics -batchmode (False only for cameras on a GPU)
    "additional_args": [],  # extra command-line arguments for the player
    "env_parameters": {},  # name -> float, sent through the EnvironmentParametersChannel
    "time_scale": 20.0,  # Unity Time.timeScale (mlagents-learn's default: physics 20x faster than real time)
    "timeout_wait": 60,  # seconds to wait for the player to connect, and to quit
    "stats": [],  # custom stats the build reports (StatsRecorder names) to chart in SageMaker as stat_<name>
    "seed": 0,  # seeds the trainer's random generator (self.rng) and the players (instance i: seed + i)
    # Where results go.
    "checkpoint_dir": "",  # "" = /opt/ml/checkpoints in a job (synced to S3), <run>/checkpoints locally
    "runs_dir": "runs",  # local runs write to <runs_dir>/<name>-<YYYYmmdd-HHMMSS>/
    "project_file": "project.toml",  # local runs take the build settings from it ("" = don't)
}


class TrainingStopped(BaseException):  # noqa: N818  (like KeyboardInterrupt, not an error)
    """Raised in run() by SIGTERM/SIGINT so that everything unwinds and Unity is closed."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class Trainer(ABC):
    """Base class of a training script: subclass it, implement ``run()``, call it from a main guard.

    In ``run()``: ``with self.make_vec_env() as envs:`` (or, for one agent and gym code,
    ``self.get_gym_env(self.download_unity_env())``); save the model in ``self.model_dir``, other
    results in ``self.output_dir``, checkpoints in ``self.checkpoint_dir``; report progress with
    ``self.log_metrics(step, name=value, ...)``, declaring the names in ``metrics``. SIGTERM/Ctrl-C
    raise ``TrainingStopped`` inside ``run()``, unless the class sets ``checks_stop_requested = True``
    and returns by itself once ``self.stop_requested`` is set. ``run()`` is wrapped (see
    ``__init_subclass__``) so every Unity player it started is closed however it ends.
    """

    base_metrics: tuple[str, ...] = BASE_METRICS  # every trainer reports these
    metrics: tuple[str, ...] = ()  # a subclass's own metric names (a literal tuple: the launcher reads it)
    resumable: bool = False  # True when run() restores from checkpoint_dir (then --resume works)
    checks_stop_requested: bool = False
    distributed: bool = False  # True when run() trains as one of several workers (connect_workers)
    local_only: bool = False
    name: str = ""  # prefix of local run folders; "" = the script's file name without "_trainer"

    def __init__(self, config: Mapping | None = None, argv: Sequence[str] | None = None):
        if argv is None:  # only a script run as `python x_trainer.py --key value` takes the command line
            argv = sys.argv[1:] if type(self).__module__ == "__main__" else []
        script = dict(config or {})
        argv, self.run_id, self.resume = split_run_flags(argv)
        cli, local_flag = parse_cli(argv, {**DEFAULT_CONFIG, **script})
        self.local = self.local_only or local_flag or not in_sagemaker_job()
        overrides = [("SM_HPS", {} if self.local else read_sm_hps()), ("command line", cli)]
        if self.local:
            probe = merge_config(DEFAULT_CONFIG, script, *overrides)["project_file"]
            project = (
                read_project_settings(self._resolve(probe), probe != DEFAULT_CONFIG["project_file"])
                if probe
                else {}
            )
            overrides.insert(0, ("project.toml", project))
        sources: dict[str, str] = {}
        self.config = merge_config(DEFAULT_CONFIG, script, *overrides, sources=sources)
        validate_config(self.config, sources)
        self.seed: int = self.config["seed"]
        self.cluster: Cluster = find_cluster(in_job=not self.local)  # one worker, unless instance_count > 1
        if self.cluster.distributed and not self.distributed:
            raise ConfigError(
                f"{type(self).__name__} trains on one instance, but this run has {self.cluster.size} workers "
                f"({self.cluster.source}): set instance_count=1 (a trainer class that declares "
                "distributed = True, as the PPO example does, trains on several)"
            )
        # Each worker its own random stream; the chief's is the one-instance run's.
        rank = self.cluster.rank
        self.rng_seed: int | list[int] = self.seed if self.cluster.is_chief else [self.seed, rank]
        self.rng = np.random.default_rng(self.rng_seed)
        self.worker_id: int = self.config["worker_id"]
        self.run_name = self.name or _script_name(type(self))
        self._started = datetime.now()
        self._run_dir: Path | None = None
        if self.local and (self.run_id or self.resume):
            self._run_dir = self._named_run_dir()
        self._open: list[RunningPlayer | UnityVecEnv] = []
        self._workers: Workers | None = None
        self._metrics_log: MetricsLog | None = None
        self._progress = None
        self._stop_signal: int | None = None
        self._stop_callbacks: list[Callable[[int], None]] = []
        self._in_run = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__ and not getattr(cls.run, "_guarded", False):
            cls.run = _guarded(cls.run)

    @abstractmethod
    def run(self):
        """Train. Subclasses implement this."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={'local' if self.local else 'sagemaker'}, config={self.config!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close_env()

    # ---- the Unity build --------------------------------------------------------------------

    def download_unity_env(self) -> str:
        """Get the Unity build onto this machine, extracted and executable; return the player's path."""
        c = self.config
        # Refused before anything is touched: a build folder is replaced by each new build.
        repo = REPO_ROOT if self.local else Path.cwd()
        folder = self._resolve(c["build_folder"])
        label = "the repository" if self.local else "the working folder"
        folder = unity_build.check_build_folder(folder, value=c["build_folder"], repo=repo, repo_label=label)
        if self.local:
            path = self._local_build(folder)
        else:
            channel = os.environ.get(f"SM_CHANNEL_{c['build_channel'].upper()}", "")
            if channel and Path(channel).is_dir():
                path = unity_build.build_from_channel(Path(channel), c["zip_env_name"], folder, c["env_file"])
            else:
                path = unity_build.build_from_s3(c["bucket"], c["zip_env_name"], folder, c["env_file"])
        logger.info("Unity player ready: %s", path)
        return str(path)

    def _local_build(self, folder: Path) -> Path:
        zip_name, env_file = self.config["zip_env_name"], self.config["env_file"]
        zip_path = self._resolve(zip_name) if zip_name and not zip_name.startswith("s3://") else None
        if zip_path is not None and zip_path.is_file():
            return unity_build.build_from_zip(zip_path, folder, env_file)
        if folder.is_dir():
            return unity_build.find_executable(folder, env_file)
        raise unity_build.BuildNotFoundError(
            f"no Unity build on disk: zip_env_name={zip_name!r} ({zip_path or 'not a local path'}) is not a "
            f"file and build_folder {folder} does not exist. `make sim-build` writes the simulated build "
            "to builds/; for your own build, download its zip (aws s3 cp s3://BUCKET/KEY builds/) and set "
            "zip_env_name"
        )

    # ---- the environment ----------------------------------------------------------------------

    def env_settings(self) -> EnvSettings:
        """The config's env keys as the runtime takes them (player logs go to output_dir/unity_logs;
        in a cluster to unity_logs/<host>, and worker r's instances get seeds from seed + r * num_envs)."""
        if not self.cluster.distributed:
            return EnvSettings.from_config(self.config, self.output_dir / "unity_logs")
        settings = EnvSettings.from_config(
            self.config, self.output_dir / "unity_logs" / self.cluster.current_host
        )
        return replace(settings, seed=settings.seed + self.cluster.rank * self.config["num_envs"])

    def make_vec_env(self, unity_file: str | os.PathLike | None = None, num_envs: int | None = None):
        """``num_envs`` (default: the config's) Unity instances of the build as one ``UnityVecEnv``:
        every agent a row of ``obs``, ``step(actions) -> obs, rewards, terminated, truncated, infos``
        (template_runtime/vec_env.py). Closed with ``with``, or at the end of run() in any case."""
        unity_file = unity_file if unity_file is not None else self.download_unity_env()
        count = self.config["num_envs"] if num_envs is None else num_envs
        envs = open_vec_env(unity_file, self.env_settings(), count)
        self._open.append(envs)
        self.worker_id = envs.instances[0].worker_id
        return envs

    def connect_workers(
        self, preemption_threshold: float = 1.0, min_rollout_fraction: float = 0.25
    ) -> Workers:
        """The run's workers (template_runtime/distributed.py): with instance_count > 1 (or TF_CONFIG)
        every instance of the job, connected for all-reducing; otherwise this process alone, where
        every call is the local value. Call it before TensorFlow runs anything. The chief (algo-1)
        alone writes metrics (``log_metrics`` does nothing on the others); a trainer writes its
        checkpoints and model only ``if workers.is_chief``. Closed at the end of run()."""
        if self._workers is None:
            self._workers = Workers(self.cluster, preemption_threshold, min_rollout_fraction)
            if self.cluster.distributed:
                first = self.env_settings().seed
                logger.info(
                    "%s: random stream seeded %s, Unity instances seeded %d..%d",
                    self.cluster.describe(),
                    self.rng_seed,
                    first,
                    first + self.config["num_envs"] - 1,
                )
        return self._workers

    def get_unity_env(self, unity_file: str | os.PathLike) -> UnityEnvironment:
        """The low-level ``UnityEnvironment`` (for several behaviours, or your own wrapper)."""
        player = start_player(unity_file, self.env_settings())
        self._open.append(player)
        self.worker_id = player.worker_id
        return player.env

    def get_gym_env(self, unity_file: str | os.PathLike):
        """A gym env for a build with one agent (the seed's API: ``reset() -> obs``, ``step(action) ->
        obs, reward, done, info``), honouring the config's observation and action options."""
        if self.config["multiagent"]:
            raise UnityEnvOptionError(
                "get_gym_env gives one agent's gym env; with multiagent=True use self.make_vec_env(), "
                "where every agent is a row of the batch"
            )
        unity_env = self.get_unity_env(unity_file)
        try:
            env = make_single_agent_env(unity_env, **self.env_settings().view_options)
        except BaseException as error:
            self.close_env(unity_env)
            if "only be one Agent" in str(error):
                raise UnityEnvOptionError(
                    f"{error}: use self.make_vec_env() with multiagent=True to drive them all"
                ) from error
            raise
        self._open[-1].views += [env, getattr(env, "unwrapped", env)]
        return env

    def close_env(self, env=None) -> None:
        """Close one env (as returned by make_vec_env/get_gym_env/get_unity_env) or, without argument,
        every env this trainer opened."""
        chosen = [
            thing
            for thing in self._open
            if env is None
            or env is thing
            or (isinstance(thing, RunningPlayer) and (env is thing.env or any(env is v for v in thing.views)))
        ]
        if env is not None and not chosen:
            env.close()  # not one of ours: close it the ordinary way
        errors = []
        for thing in chosen:
            try:
                thing.close()
            except Exception as error:  # close the others anyway
                errors.append(error)
            finally:
                self._open.remove(thing)
        if errors:
            raise errors[0]

    @property
    def unity_pids(self) -> list[int]:
        """Process ids of the Unity players this trainer started and has not closed yet."""
        pids = []
        for thing in self._open:
            pids += thing.unity_pids if isinstance(thing, UnityVecEnv) else [thing.pid] if thing.pid else []
        return pids

    # ---- where results go ---------------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        """The model to keep: SM_MODEL_DIR in a job (uploaded as model.tar.gz), <run>/model locally."""
        return self._folder("SM_MODEL_DIR", "/opt/ml/model", "model")

    @property
    def output_dir(self) -> Path:
        """Metrics, summaries, player logs: SM_OUTPUT_DATA_DIR in a job, <run>/output locally."""
        return self._folder("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data", "output")

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard event files: output_dir/tensorboard (in output.tar.gz of a job)."""
        return self.output_dir / "tensorboard"

    @property
    def checkpoint_dir(self) -> Path:
        """Checkpoints: /opt/ml/checkpoints in a job (SageMaker restores it after a spot interruption)."""
        configured = self.config["checkpoint_dir"]
        path = (
            self._resolve(configured)
            if configured
            else (self.run_dir / "checkpoints" if self.local else SAGEMAKER_CHECKPOINT_DIR)
        )
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def run_dir(self) -> Path:
        """Local runs: <runs_dir>/<name>-<YYYYmmdd-HHMMSS>/, made on first use (inside a job: output_dir)."""
        if not self.local:
            return self.output_dir
        if self._run_dir is None:
            base = self._resolve(self.config["runs_dir"]) / f"{self.run_name}-{self._started:%Y%m%d-%H%M%S}"
            candidate, n = base, 2
            while True:
                try:
                    candidate.mkdir(parents=True)
                    break
                except FileExistsError:
                    candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
            self._run_dir = candidate
        return self._run_dir

    def _named_run_dir(self) -> Path:
        """runs/<run_id>/: new, or (with --resume) the existing run of that name, continued in place."""
        folder = self._resolve(self.config["runs_dir"]) / self.run_id
        if self.resume:
            if not self.resumable:
                raise ConfigError(f"--resume: {type(self).__name__} keeps no checkpoints to resume from")
            if not folder.is_dir():
                raise ConfigError(f"--resume: there is no run {folder}; leave out --resume to start it")
            self._report_changes(folder / "run_config.json")
        elif folder.exists():
            raise ConfigError(
                f"--run_id {self.run_id}: {folder} exists already. Add --resume to continue that run, or "
                "choose another --run_id (nothing was changed)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        self.write_json("run_config.json", self.config, folder=folder)
        return folder

    def _report_changes(self, previous_file: Path) -> None:
        try:
            previous = json.loads(previous_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        changed = {k: (previous.get(k), v) for k, v in self.config.items() if previous.get(k, v) != v}
        for key, (old, new) in changed.items():
            logger.warning("resuming %s with %s changed: %r -> %r", previous_file.parent.name, key, old, new)

    def resuming_from(self, step: int) -> None:
        """Called when run() restores a checkpoint of ``step``: the run's metrics (metrics.jsonl and
        TensorBoard) continue from there, dropping what was logged after the checkpoint."""
        self._metrics().continue_from(step)

    def _folder(self, env_var: str, job_default: str, local_name: str) -> Path:
        path = self.run_dir / local_name if self.local else Path(os.environ.get(env_var) or job_default)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _resolve(self, value: str | os.PathLike) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (REPO_ROOT if self.local else Path.cwd()) / path

    # ---- reporting ----------------------------------------------------------------------------

    def log_metrics(self, step: int, **metrics: float) -> dict[str, float]:
        """Report ``metrics`` at ``step``: one line ``step=1200 episode_reward_mean=0.53 fps=231.4`` in
        the log (the job's metric definitions read it), a record in output_dir/metrics.jsonl and
        TensorBoard scalars; returns the values as logged (floats). In a cluster only the chief
        writes them (pass it values over every worker); the others get the values back."""
        if not self.cluster.is_chief:
            self._pop_stats()
            return {name: float(value) for name, value in metrics.items()}
        for name, value in self._pop_stats().items():  # what the build reported (StatsSideChannel)
            metrics.setdefault(stat_metric_name(name), value)
        logged = self._metrics().log(step, metrics)
        if self._progress is not None:
            shown = {"reward": logged.get("episode_reward_mean"), "fps": logged.get("fps")}
            self._progress.set_postfix({k: f"{v:.4g}" for k, v in shown.items() if v is not None})
        return logged

    def _metrics(self) -> MetricsLog:
        if self._metrics_log is None:
            stats = [stat_metric_name(name) for name in self.config["stats"]]
            self._metrics_log = MetricsLog(
                self.output_dir / "metrics.jsonl",
                self.tensorboard_dir,
                (*self.base_metrics, *self.metrics, *stats),
                echo=self._echo,
            )
        return self._metrics_log

    def _pop_stats(self) -> dict[str, float]:
        """The build's custom stats since the last report, over every open batched env."""
        stats: dict[str, float] = {}
        for envs in self._open:
            if isinstance(envs, UnityVecEnv):
                stats.update(envs.pop_stats())
        return stats

    def progress_bar(self, total: int, initial: int = 0):
        """A tqdm progress bar for local runs (off in jobs, whose logs it would fill); metric lines
        are printed above it. Closed at the end of run()."""
        from tqdm import tqdm

        self._progress = tqdm(total=total, initial=initial, unit="step", disable=not self.local)
        return self._progress

    def _echo(self, line: str) -> None:
        if self._progress is not None and not self._progress.disable:
            self._progress.write(line)
        else:
            print(line, flush=True)

    def write_json(self, name: str, data: object, folder: Path | None = None) -> Path:
        """Write ``data`` as JSON to <folder or output_dir>/<name>, whole or not at all."""
        path = (folder or self.output_dir) / name
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        os.replace(partial, path)
        return path

    def export_unity_model(self, envs, policy, reference=None, **provenance) -> Path:
        """Write ``model_dir/<behaviour>.onnx``, the file a Behavior Parameters component runs, and
        ``<behaviour>.onnx.json`` beside it (this job, the behaviour, shapes, SHA-256, ``provenance``).

        ``policy``: one of template_runtime.onnx_export's policies (NumPy weights); it reads what
        ``envs`` gives (the first camera with use_visual, else the vector observations side by side).
        ``reference``: ``(observations, actions)`` from the trainer's own deterministic policy; the
        file is run on them and the JSON records whether it agrees. The model is then checked against
        Unity's contract (template_runtime.onnx_check); problems are logged, never raised.
        """
        from template_runtime.onnx_check import check_onnx
        from template_runtime.onnx_export import BehaviorSpec, export_onnx

        spec = BehaviorSpec.from_mlagents(envs.behavior_name, envs.behavior_spec, self.config["use_visual"])
        job = os.environ.get("TRAINING_JOB_NAME") or (
            f"local run {self.run_dir.name}" if self.local else None
        )
        path = export_onnx(
            self.model_dir,
            policy,
            spec,
            reference,
            training_job=job,
            trainer=_script_name(type(self)),
            **provenance,
        )
        report = check_onnx(path, draws=20)
        check = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8")).get("check", {})
        logger = logging.getLogger("trainer")
        if report.ok and check.get("matches", True):
            logger.info(
                "Unity model: %s (%s; checked)", path, ", ".join(f"{k}={v}" for k, v in check.items())
            )
        else:
            logger.error("Unity model %s has problems:\n%s\nexport check: %s", path, report.text(), check)
        return path

    # ---- stopping -----------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once SIGTERM (SageMaker stop or spot interruption) or SIGINT arrived during run()."""
        return self._stop_signal is not None

    def on_stop(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(signum)`` when SIGTERM/SIGINT arrives (e.g. to save a checkpoint)."""
        self._stop_callbacks.append(callback)

    def _on_signal(self, signum: int, frame) -> None:
        first = self._stop_signal is None
        self._stop_signal = self._stop_signal or signum
        if first:
            name = signal.Signals(signum).name
            logger.warning("received %s: stopping, the Unity player will be closed", name)
            for callback in self._stop_callbacks:
                callback(signum)
            if self.checks_stop_requested:
                return
        raise TrainingStopped(signum)

    @contextmanager
    def _signals_handled(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _finish(self) -> None:
        """What run() leaves behind in any case: envs closed, progress bar and event files flushed."""
        try:
            self.close_env()
        finally:
            if self._workers is not None:
                self._workers.close()
            if self._progress is not None:
                self._progress.close()
                self._progress = None
            if self._metrics_log is not None:
                self._metrics_log.close()


class LocalTrainer(Trainer):
    """A Trainer that always runs locally (same as passing --local): the build is a zip or folder
    on disk, results go to runs/<name>-<timestamp>/."""

    local_only = True


# ----------------------------------------------------------------------------------------------
# Helpers


def _guarded(run: Callable) -> Callable:
    """run() with signal handling, logging set up, and every Unity player closed at the end."""

    @functools.wraps(run)
    def guarded_run(self: Trainer, *args, **kwargs):
        if self._in_run:  # a subclass calling super().run()
            return run(self, *args, **kwargs)
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            for noisy in ("mlagents_envs", "gym_unity"):  # they print through handlers of their own
                logging.getLogger(noisy).propagate = False
        self._in_run = True
        try:
            with self._signals_handled():
                try:
                    result = run(self, *args, **kwargs)
                finally:
                    self._finish()
            if self.local and self._run_dir is not None:
                logger.info("results in %s", self._run_dir)
            return result
        except TrainingStopped as stop:
            logger.warning("%s: Unity closed, exiting", stop)
            if stop.signum == signal.SIGINT:
                raise KeyboardInterrupt from None
            raise SystemExit(128 + stop.signum) from None
        finally:
            self._in_run = False

    guarded_run._guarded = True
    return guarded_run


def _jsonable(value: object) -> object:
    """NumPy scalars and arrays as numbers and lists; anything else as its text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _script_name(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    stem = Path(getattr(module, "__file__", None) or cls.__name__.lower()).stem
    return stem.removesuffix("_trainer") or stem
