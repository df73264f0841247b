"""Many jobs at once: a SageMaker hyperparameter tuning job (Automatic Model Tuning) for the entry point.

    tuning = load_tuning(settings, ranges={"learning_rate": "1e-4:1e-3:log"}, max_jobs=8)
    dry_run_tuning(tuning)          # the CreateHyperParameterTuningJob request; nothing is sent
    job = submit_tuning(tuning)     # checks AWS, uploads src/, starts the tuning job
    wait_tuning(job); fetch_tuning_results(job)     # tuning_results.py: table, plots, best model

What is tuned comes from project.toml's ``[tuning]`` table and the caller's choices (the command
line's --range/--objective/--max-jobs/..., the notebook's tuning parameters); every range is checked
against the entry point's config keys and types (tuning_ranges.py) and the objective against the
metrics the trainer declares, before anything touches AWS. Each training job of the tuning job is
the single training job of job.py (same image, entry point, build channel, static hyperparameters,
metric definitions, instance, spot and checkpoint settings); the SDK's own tuner class
(``sagemaker.train.tuner.HyperparameterTuner`` in v3, ``sagemaker.tuner.HyperparameterTuner`` in
v2; tuner_v3.py / tuner_v2.py) sends the request, and both send the same one.

Strategies: Bayesian (default), Random, Grid (categorical ranges only: every combination once),
Hyperband. Hyperband works for a custom image like this one: it reads the objective every time the
trainer logs it (each log line is one "resource" unit, what SageMaker calls an epoch) and stops
jobs that lag; MaxResource must be given (SageMaker would otherwise infer it from a static
``n_epochs``, which for PPO means passes per update, not training length). ``early_stopping``
(TrainingJobEarlyStoppingType=Auto) is for Bayesian and Random; Hyperband has its own.

Where things go: every training job's results under ``s3://<bucket>/<training-job>/output/`` as
for a single job; checkpoints under ``s3://<bucket>/<base-job-name>/<tuning-job>/checkpoints/``
(SageMaker is expected to keep each training job's checkpoints apart; the AWS docs do not say how,
so the local run below gives each job ``.../checkpoints/<training-job>/``); src/ under
``s3://<bucket>/<base-job-name>/<tuning-job>/source/`` (SDK v2) or ``.../tuning-<epoch>/input/`` (v3).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from launcher import aws, capture, role_check, tuning_ranges
from launcher.errors import LaunchError
from launcher.job import TrainingJobSpec, build_job_spec
from launcher.runtime import project_file, rules
from launcher.settings import Settings, require_role
from launcher.tuning_ranges import ParameterRange
from launcher.tuning_results import TUNING_NAME, describe_tuning_job, local_record_uri
from launcher.tuning_results import fetch_tuning_results as tuning_results_fetch

CREATE_EVENT = "before-parameter-build.sagemaker.CreateHyperParameterTuningJob"
STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
DEFAULT_OBJECTIVE = "episode_reward_mean"
DEFAULT_MAX_JOBS, DEFAULT_MAX_PARALLEL = 4, 2
NAME_LIMIT = 32
# Default account limits (AWS docs, "Resource Limits for Automatic Model Tuning"); over them: a warning.
USUAL_PARALLEL_LIMIT = 10  # parallel training jobs per tuning job (can be raised to 100)
USUAL_JOBS_LIMIT = 500  # training jobs per Bayesian or Random tuning job
MAX_TUNING_METRICS = 20  # metric definitions per tuning job
HYPERBAND_MAX_RESOURCE = 20_000
TABLE = "tuning"


@dataclass
class TuningSettings:
    """What can be chosen for a tuning job; None means "from project.toml [tuning], else the default"."""

    ranges: dict = field(default_factory=dict)  # key: "LOW:HIGH[:log]", "A,B,C" or a list of values
    objective: str | None = None  # a metric the trainer declares; None: episode_reward_mean
    objective_type: str | None = None  # "Maximize" or "Minimize"; None: Maximize
    strategy: str | None = None  # None: Bayesian; Random, Grid (values only) or Hyperband
    max_jobs: int | None = None  # training jobs in all; None: 4 (Grid: each combination)
    max_parallel_jobs: int | None = None  # training jobs at once; None: 2
    seeds: int | None = None  # N: also tune seed over seed .. seed+N-1 (N seeds of one setting)
    early_stopping: bool | None = None  # Bayesian/Random: stop jobs unlikely to beat the best
    hyperband_min_resource: int | None = None  # Hyperband: objective reports before a stop
    hyperband_max_resource: int | None = None  # Hyperband: objective reports in a whole job
    tuning_job_name: str | None = None  # None: <base_job_name>-<yymmddHHMMSS> (32 at most)


TUNING_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(TuningSettings))


@dataclass(frozen=True)
class Tuning:
    """The job settings and the tuning choices, every value checked."""

    settings: Settings
    ranges: tuple[ParameterRange, ...]
    objective: str
    objective_type: str
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: bool
    hyperband: tuple[int, int] | None  # (MinResource, MaxResource)
    name: str
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        hyperband = f" (resources {self.hyperband[0]}..{self.hyperband[1]})" if self.hyperband else ""
        lines = [
            f"Tuning job:       {self.name}: {self.strategy}{hyperband}, {self.max_jobs} training jobs, "
            f"{self.max_parallel_jobs} at a time",
            f"Objective:        {self.objective_type} {self.objective}"
            + (" (early stopping)" if self.early_stopping else ""),
        ]
        lines += [f"  tunes:          {r.describe()}" for r in self.ranges]
        return "\n".join([*lines, self.settings.describe()])


@dataclass(frozen=True)
class TuningJobSpec:
    """Everything a CreateHyperParameterTuningJob request says, independent of the SDK that sends it."""

    training: TrainingJobSpec
    name: str
    strategy: str
    objective: str
    objective_type: str
    max_jobs: int
    max_parallel_jobs: int
    ranges: tuple[ParameterRange, ...]
    early_stopping: bool
    hyperband: tuple[int, int] | None

    @property
    def static_hyperparameters(self) -> dict:
        """The training job's typed hyperparameters without the tuned ones."""
        tuned = {r.name for r in self.ranges}
        return {k: v for k, v in self.training.hyperparameters.items() if k not in tuned}

    def encoded_static_hyperparameters(self) -> dict[str, str]:
        spec = dataclasses.replace(self.training, hyperparameters=self.static_hyperparameters)
        return spec.encoded_hyperparameters()

    @property
    def checkpoint_uri(self) -> str | None:
        if not self.training.checkpoint_local_path:
            return None
        return f"{self.training.staging_prefix}/{self.name}/checkpoints/"  # "/": no other prefix matches

    @property
    def metric_definitions(self) -> tuple[tuple[str, str], ...]:
        """The training job's definitions, at most 20 (a tuning job's limit), the objective among them."""
        definitions = self.training.metric_definitions
        if len(definitions) <= MAX_TUNING_METRICS:
            return definitions
        objective = [d for d in definitions if d[0] == self.objective]
        others = [d for d in definitions if d[0] != self.objective]
        return tuple(objective + others[: MAX_TUNING_METRICS - len(objective)])

    def ranges_of(self, kind: str) -> list[dict]:
        return [r.as_request() for r in self.ranges if r.kind == kind]


@dataclass(frozen=True)
class SubmittedTuningJob:
    """A tuning job that was started (or run here): its name, request and where to look."""

    name: str
    region: str
    sdk: str
    bucket: str
    request: dict  # the CreateHyperParameterTuningJob request
    local: bool = False

    @property
    def console_url(self) -> str:
        return (
            f"https://{self.region}.console.aws.amazon.com/sagemaker/home?region={self.region}"
            f"#/hyper-tuning-jobs/{self.name}"
        )

    def describe(self) -> str:
        definition = self.request["TrainingJobDefinition"]
        lines = [
            f"Tuning job:    {self.name}  ({'run here, ' if self.local else ''}SageMaker SDK {self.sdk})",
            f"Training jobs: {definition['OutputDataConfig']['S3OutputPath'].rstrip('/')}/"
            f"{self.name}-<NNN>-<id>/output/  (model.tar.gz, output.tar.gz each)",
        ]
        checkpoint = (definition.get("CheckpointConfig") or {}).get("S3Uri")
        lines.append(f"Checkpoints:   {checkpoint or 'off'}")
        if not self.local:
            lines.append(f"Console:       {self.console_url}")
        lines.append(f"Results:       python launch.py --fetch-results {self.name}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- settings


def load_tuning(settings: Settings, tuning: TuningSettings | None = None, **values) -> Tuning:
    """project.toml [tuning] < ``tuning`` / ``values``, checked against the entry point (no AWS calls)."""
    unknown = sorted(set(values) - set(TUNING_SETTING_NAMES))
    if unknown:
        raise LaunchError(
            f"unknown tuning setting(s) {', '.join(unknown)}: they are {', '.join(TUNING_SETTING_NAMES)}"
        )
    chosen = dataclasses.replace(tuning or TuningSettings(), **values)
    table = _project_table(settings)
    entry, warnings = settings.entry, []
    ranges = dict(
        tuning_ranges.ranges_from(
            [], table.get("ranges", {}), entry, f"{settings.project.path.name} [tuning.ranges]"
        )
    )
    for key, value in _ranges_setting(chosen.ranges).items():
        ranges[key] = tuning_ranges.range_from_value(key, value, entry, f"ranges {key}")
    seeds = _pick("seeds", chosen.seeds, table, None)
    if seeds is not None:
        ranges["seed"] = _seed_range(seeds, ranges, settings)
    if not ranges:
        raise LaunchError(
            "nothing to tune: give at least one range (--range KEY=LOW:HIGH, --range KEY=A,B,C, --seeds N, "
            "or a [tuning.ranges] table in project.toml)"
        )
    tuning_ranges.check_counts(ranges)
    objective = _objective(_pick("objective", chosen.objective, table, DEFAULT_OBJECTIVE), entry)
    objective_type = _choice(
        "objective_type", _pick("objective_type", chosen.objective_type, table, "Maximize"), OBJECTIVE_TYPES
    )
    default_strategy = (
        "Grid" if seeds is not None and all(r.kind == "Categorical" for r in ranges.values()) else "Bayesian"
    )
    strategy = _choice("strategy", _pick("strategy", chosen.strategy, table, default_strategy), STRATEGIES)
    grid_size = _grid_size(strategy, ranges)
    max_jobs = _whole(
        "max_jobs", _pick("max_jobs", chosen.max_jobs, table, grid_size or DEFAULT_MAX_JOBS), 1, 10_000
    )
    if grid_size is not None and max_jobs != grid_size:
        raise LaunchError(
            f"max_jobs={max_jobs} with strategy Grid: a grid search runs every combination once, "
            f"{grid_size} here; leave max_jobs out or set it to {grid_size}"
        )
    parallel = _pick("max_parallel_jobs", chosen.max_parallel_jobs, table, None)
    parallel = _whole(
        "max_parallel_jobs", min(DEFAULT_MAX_PARALLEL, max_jobs) if parallel is None else parallel, 1, 100
    )
    if parallel > max_jobs:
        raise LaunchError(
            f"max_parallel_jobs={parallel} is more than max_jobs={max_jobs}: lower it, or raise max_jobs"
        )
    early = _flag("early_stopping", _pick("early_stopping", chosen.early_stopping, table, False))
    hyperband = _hyperband(strategy, early, chosen, table)
    if settings.keep_alive_seconds:
        raise LaunchError(
            f"keep_alive_seconds={settings.keep_alive_seconds} with a tuning job: the launcher keeps warm "
            "pools for single training jobs (SageMaker documents them for training jobs); set it to 0"
        )
    warnings += _limit_warnings(strategy, max_jobs, parallel, settings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return Tuning(
        settings=settings,
        ranges=tuple(ranges.values()),
        objective=objective,
        objective_type=objective_type,
        strategy=strategy,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        early_stopping=early,
        hyperband=hyperband,
        name=_tuning_name(_pick("tuning_job_name", chosen.tuning_job_name, table, None), settings),
        warnings=tuple(warnings),
    )


def parse_cli_ranges(texts: list[str]) -> dict[str, str]:
    """``--range KEY=SPEC`` arguments as {key: spec} (checked later, with the entry point)."""
    ranges = {}
    for text in texts:
        key, sep, spec = text.partition("=")
        if not sep or not key.strip() or not spec.strip():
            raise LaunchError(
                f"--range {text!r}: expected KEY=LOW:HIGH[:log] or KEY=A,B,C, "
                "e.g. --range learning_rate=1e-4:1e-3:log or --range seed=0,1,2"
            )
        ranges[key.strip()] = spec.strip()
    return ranges


def build_tuning_spec(tuning: Tuning, role_arn: str) -> TuningJobSpec:
    training = build_job_spec(tuning.settings, role_arn)
    # A tuning job's definition has no TensorBoardOutputConfig: its jobs' event files stay in output.tar.gz.
    training = dataclasses.replace(training, tensorboard_local_path=None, keep_alive_seconds=0)
    return TuningJobSpec(
        training=training,
        name=tuning.name,
        strategy=tuning.strategy,
        objective=tuning.objective,
        objective_type=tuning.objective_type,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
        ranges=tuning.ranges,
        early_stopping=tuning.early_stopping,
        hyperband=tuning.hyperband,
    )


# ---------------------------------------------------------------------------------------------- requests


def dry_run_tuning(tuning: Tuning) -> dict:
    """The CreateHyperParameterTuningJob request the SDK's tuner would send; nothing is sent."""
    from launcher import api

    tuner = _tuner(tuning.settings)
    spec = build_tuning_spec(tuning, require_role(tuning.settings) or api.DRY_RUN_ROLE)
    session = aws.session(tuning.settings.region)
    try:
        with capture.hold_back(session, offline=True, bucket=spec.training.bucket), held_back(session):
            tuner.start_tuning(spec, session)
    except capture.RequestHeldBack as held:
        return held.request
    raise RuntimeError(f"SageMaker SDK {tuner.GENERATION} made no CreateHyperParameterTuningJob request")


def submit_tuning(tuning: Tuning) -> SubmittedTuningJob:
    """Check AWS, upload src/ and start the tuning job; returns at once (see wait_tuning)."""
    request, generation = _prepared_request(tuning, send=True)
    job = SubmittedTuningJob(tuning.name, tuning.settings.region, generation, tuning.settings.bucket, request)
    print(job.describe(), flush=True)
    return job


def run_local_tuning(tuning: Tuning, container_python, work_dir) -> SubmittedTuningJob:
    """Build the request with the SDK's tuner (uploading src/), then run its training jobs here."""
    from launcher import local_tuning

    request, generation = _prepared_request(tuning, send=False)
    job = SubmittedTuningJob(
        tuning.name, tuning.settings.region, generation, tuning.settings.bucket, request, local=True
    )
    print(job.describe(), flush=True)
    local_tuning.run_tuning_request(
        request,
        boto_session=aws.session(tuning.settings.region),
        container_python=container_python,
        work_dir=work_dir,
    )
    return job


def attach_tuning(settings: Settings, name: str) -> SubmittedTuningJob:
    """An existing tuning job by name."""
    session = aws.session(settings.region)
    aws.check_credentials(session)
    description = describe_tuning_job(session, name)
    if description is None:
        raise LaunchError(f"tuning_job_name={name!r}: no such tuning job in {settings.region}")
    request = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": description.get("HyperParameterTuningJobConfig", {}),
        "TrainingJobDefinition": description.get("TrainingJobDefinition", {}),
    }
    from launcher.api import installed_sdk

    job = SubmittedTuningJob(name, settings.region, installed_sdk() or "?", settings.bucket, request)
    print(job.describe(), flush=True)
    return job


def fetch_tuning_results(
    job: SubmittedTuningJob | str,
    region: str | None = None,
    dest=None,
    bucket: str | None = None,
    top: int = 3,
):
    """The tuning job's table, plots and best model in results/<tuning-job>/ (tuning_results.py).

    ``job`` is what submit_tuning/run_local_tuning/attach_tuning returned, or a tuning job's name
    with its ``region``; a name SageMaker does not know is looked for in ``bucket`` (a tuning job
    run with --tune --local-job).
    """
    from launcher import api

    name = job if isinstance(job, str) else job.name
    region = region or (None if isinstance(job, str) else job.region)
    bucket = bucket or (None if isinstance(job, str) else job.bucket)
    if not region:
        raise LaunchError("fetch_tuning_results: give the region of the tuning job")
    session = aws.session(region)
    aws.check_credentials(session)
    record = None
    if describe_tuning_job(session, name) is None:
        record = local_record_uri(session, name, bucket) if bucket else None
        if record is None:
            raise LaunchError(
                f"{name!r}: no such tuning job in {region}"
                + (f", and no local tuning record in s3://{bucket}" if bucket else "")
            )
    return tuning_results_fetch(session, name, dest or api.RESULTS_DIR, record, top)


FINISHED = ("Completed", "Failed", "Stopped")


def wait_tuning(job: SubmittedTuningJob, poll_seconds: float = 60.0) -> str:
    """Block until the tuning job ends, printing its training jobs' counts as they change.

    Ctrl-C stops the waiting, not the tuning job.
    """
    if job.local:
        return "Completed"
    session, last = aws.session(job.region), None
    try:
        while True:
            description = describe_tuning_job(session, job.name) or {}
            status = description.get("HyperParameterTuningJobStatus", "unknown")
            counters = description.get("TrainingJobStatusCounters") or {}
            line = f"{job.name}: {status}; training jobs " + ", ".join(
                f"{k} {v}" for k, v in counters.items() if v
            )
            if line != last:
                print(line, flush=True)
                last = line
            if status in FINISHED or status == "unknown":
                return status
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; {job.name} goes on running (console: {job.console_url})")
        raise


@contextlib.contextmanager
def held_back(boto_session) -> Iterator[None]:
    """Raise capture.RequestHeldBack with the CreateHyperParameterTuningJob request instead of sending it."""

    def stop(params, **_):
        raise capture.RequestHeldBack(copy.deepcopy(params))

    boto_session.events.register(CREATE_EVENT, stop)
    try:
        yield
    finally:
        boto_session.events.unregister(CREATE_EVENT, stop)


def _prepared_request(tuning: Tuning, *, send: bool) -> tuple[dict, str]:
    from launcher import api

    settings = tuning.settings
    require_role(settings)
    tuner, session = _tuner(settings), aws.session(settings.region)
    api._preflight(settings, session)  # credentials, bucket, build: before anything is uploaded
    spec = build_tuning_spec(tuning, api.describe_job(settings).role_arn)
    # The role is checked once, as for a training job (launcher/role_check.py): the SDK's own check,
    # which dies where IAM cannot answer, is off inside.
    role = spec.training.role_arn
    if send:
        with (
            role_check.checked_role(session, settings, role),
            capture.record(session, CREATE_EVENT) as requests,
        ):
            tuner.start_tuning(spec, session)
        if not requests:
            raise RuntimeError(f"SageMaker SDK {tuner.GENERATION} sent no CreateHyperParameterTuningJob")
        return requests[-1], tuner.GENERATION
    try:
        with (
            role_check.checked_role(session, settings, role),
            capture.hold_back(session, offline=False, bucket=spec.training.bucket),
            held_back(session),
        ):
            tuner.start_tuning(spec, session)
    except capture.RequestHeldBack as held:
        return held.request, tuner.GENERATION
    raise RuntimeError(f"SageMaker SDK {tuner.GENERATION} made no CreateHyperParameterTuningJob request")


def _tuner(settings: Settings):
    from launcher import api

    if api._sdk(settings).GENERATION == "v3":  # checks the installed SDK against settings.sdk
        from launcher import tuner_v3

        return tuner_v3
    from launcher import tuner_v2

    return tuner_v2


# ---------------------------------------------------------------------------------------------- checks


def _project_table(settings: Settings) -> dict:
    try:
        table = project_file.read_table(settings.project.path, TABLE)
    except project_file.ProjectFileError as error:
        raise LaunchError(str(error)) from None
    unknown = sorted(set(table) - set(TUNING_SETTING_NAMES))
    if unknown:
        raise LaunchError(
            f"{settings.project.path.name} [tuning]: unknown key(s) {', '.join(unknown)}; "
            f"the keys are {', '.join(TUNING_SETTING_NAMES)} (ranges as a [tuning.ranges] table)"
        )
    return table


def _pick(name: str, chosen: object, table: Mapping, default: object) -> object:
    if chosen is not None and chosen != "":
        return chosen
    return table.get(name, default)


def _ranges_setting(value: object) -> dict:
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise LaunchError(
                f'ranges={value!r} is not JSON: write it like \'{{"gamma": "0.9:0.99"}}\''
            ) from None
    if not isinstance(value, Mapping):
        raise LaunchError(f"ranges={value!r} must be a dict of config key: range")
    return dict(value)


def _seed_range(seeds: object, ranges: dict, settings: Settings) -> ParameterRange:
    count = _whole("seeds", seeds, 2, tuning_ranges.MAX_CATEGORICAL_VALUES)
    if "seed" in ranges:
        raise LaunchError("seeds=N and a range of seed: give one of them")
    first = settings.hyperparameters.get("seed", settings.entry.config.get("seed", 0))
    if not isinstance(first, int) or isinstance(first, bool):
        first = 0
    values = ",".join(str(first + i) for i in range(count))
    return tuning_ranges.range_from_value("seed", values, settings.entry, f"seeds={count}: seed")


def _objective(name: object, entry) -> str:
    if not isinstance(name, str) or name not in entry.metric_names:
        raise LaunchError(
            f"objective={name!r} is not a metric {entry.name} reports: choose one of "
            f"{', '.join(entry.metric_names)} (or declare it in the trainer's `metrics`)"
        )
    return name


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    for choice in choices:
        if isinstance(value, str) and value.strip().lower() == choice.lower():
            return choice
    raise LaunchError(f"{name}={value!r} must be one of {', '.join(choices)}")


def _whole(name: str, value: object, low: int, high: int) -> int:
    number = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise LaunchError(f"{name}={value!r} must be a whole number from {low} to {high}")
    return number


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return text in ("true", "yes", "1", "on")
    raise LaunchError(f"{name}={value!r} is not true or false")


def _grid_size(strategy: str, ranges: Mapping[str, ParameterRange]) -> int | None:
    if strategy != "Grid":
        return None
    numeric = [r.name for r in ranges.values() if r.kind != "Categorical"]
    if numeric:
        raise LaunchError(
            f"strategy Grid takes categorical ranges only, but {', '.join(numeric)} "
            f"{'is a LOW:HIGH range' if len(numeric) == 1 else 'are LOW:HIGH ranges'}: list values "
            "(KEY=A,B,C) or use Bayesian"
        )
    return math.prod(len(r.values) for r in ranges.values())


def _hyperband(strategy: str, early: bool, chosen: TuningSettings, table: Mapping) -> tuple[int, int] | None:
    low = _pick("hyperband_min_resource", chosen.hyperband_min_resource, table, None)
    high = _pick("hyperband_max_resource", chosen.hyperband_max_resource, table, None)
    if strategy != "Hyperband":
        if low is not None or high is not None:
            raise LaunchError("hyperband_min_resource / hyperband_max_resource are for strategy Hyperband")
        return None
    if early:
        raise LaunchError(
            "early_stopping=True with strategy Hyperband: Hyperband stops jobs itself, and SageMaker "
            "requires TrainingJobEarlyStoppingType Off with it; leave early_stopping out"
        )
    if high is None:
        raise LaunchError(
            "strategy Hyperband needs hyperband_max_resource: how many times a whole training job logs "
            "the objective (each log_metrics line is one Hyperband resource unit). Without it SageMaker "
            "infers it from a static n_epochs/epochs hyperparameter, which is not this count"
        )
    high = _whole("hyperband_max_resource", high, 1, HYPERBAND_MAX_RESOURCE)
    low = _whole("hyperband_min_resource", 1 if low is None else low, 1, high)
    return low, high


def _limit_warnings(strategy: str, max_jobs: int, parallel: int, settings: Settings) -> list[str]:
    warnings = []
    if parallel > USUAL_PARALLEL_LIMIT:
        warnings.append(
            f"max_parallel_jobs={parallel}: an account's usual limit is {USUAL_PARALLEL_LIMIT} parallel "
            "training jobs per tuning job (raise it with a quota request, up to 100); each job also holds "
            f"{settings.instance_count} x {settings.instance_type}, which your training instance quota "
            "must allow"
        )
    if strategy in ("Bayesian", "Random") and max_jobs > USUAL_JOBS_LIMIT:
        warnings.append(
            f"max_jobs={max_jobs}: an account's usual limit is {USUAL_JOBS_LIMIT} training jobs per "
            f"{strategy} tuning job (a quota request raises it)"
        )
    if strategy == "Bayesian" and parallel > max(1, max_jobs // 2):
        warnings.append(
            f"max_parallel_jobs={parallel} of max_jobs={max_jobs}: Bayesian search learns from finished "
            "jobs, so running most of them at once makes it little better than Random"
        )
    return warnings


def _tuning_name(value: object, settings: Settings, now: datetime | None = None) -> str:
    if value is None:
        stamp = f"{(now or datetime.now()):%y%m%d%H%M%S}"
        base = settings.base_job_name[: NAME_LIMIT - len(stamp) - 1].rstrip("-")
        value = f"{base}-{stamp}"
    if not isinstance(value, str) or not TUNING_NAME.fullmatch(value):
        raise LaunchError(
            f"tuning_job_name={rules.shown(value)}: a tuning job's name is 1-32 letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return value
