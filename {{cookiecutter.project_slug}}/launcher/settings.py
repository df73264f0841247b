"""The run's settings: what the notebook's `parameters` cell and `launch.py --set` choose.

Every setting defaults to None or a plain value; None means "take it from project.toml". All of
them are checked here, offline, before anything touches AWS: each bad value gets a LaunchError
naming the setting, the value and the fix. Strings are accepted for every type (the command
line has nothing else) and converted the same way for both front ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from launcher import warm_pools
from launcher.entry_points import EntryPoint, available, load_entry_point
from launcher.errors import LaunchError
from launcher.project import SOURCE_DIR, ProjectConfig, read_project
from launcher.runtime import rules

MAX_RUN_LIMIT = 28 * 24 * 3600  # SageMaker's upper bound for MaxRuntimeInSeconds and MaxWaitTimeInSeconds
SAGEMAKER_METADATA = Path(
    "/opt/ml/metadata/resource-metadata.json"
)  # present on notebook instances and Studio
ROLE_ENV = "SAGEMAKER_ROLE_ARN"

# Region, bucket, image, instance type, role, build key and job name follow template_runtime/rules.py,
# the rules the template checked its answers with.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
HYPERPARAMETER_VALUE_LIMIT = 2500  # characters, after JSON encoding (CreateTrainingJob's limit)


@dataclass
class JobSettings:
    """What can be chosen for a run; the notebook's `parameters` cell has one line per field."""

    entry_point: str | None = None  # a file in src/; None: project.toml [training] entry_point
    hyperparameters: dict = field(default_factory=dict)  # entry point config keys: {"total_timesteps": 5000}
    instance_type: str | None = None  # None: project.toml [aws] instance_type
    instance_count: int = 1  # machines; > 1: one run on all, for a trainer that trains on several (README)
    volume_size_gb: int = 30  # disk per machine, for the build, checkpoints and results
    max_run_seconds: int = 24 * 3600  # the job is stopped after this long
    use_spot: bool = False  # managed spot training: cheaper, may be interrupted (checkpoints resume it)
    max_wait_seconds: int | None = None  # spot: run time + waiting for capacity; None: 2 x max_run_seconds
    checkpoints: bool = True  # /opt/ml/checkpoints synced to S3 (and restored after a spot interruption)
    build_input: str = "channel"  # "channel": SageMaker downloads the build; "s3": the trainer fetches it
    build_key: str | None = None  # the zipped build in the bucket; None: project.toml [unity_build] zip_key
    base_job_name: str | None = None  # job name: <base_job_name>-<YYYYmmddHHMMSS>; None: <slug>-<algorithm>
    role: str | None = None  # IAM role ARN; None: on SageMaker its execution role, else $SAGEMAKER_ROLE_ARN
    environment: dict = field(default_factory=dict)  # extra environment variables for the training container
    wait: bool = True  # block and stream the job's logs, or return once it is submitted
    sdk: str = "auto"  # "auto" (the installed one), "v3" (ModelTrainer) or "v2" (Estimator)
    telemetry: bool = False  # let the SageMaker SDK send usage telemetry to AWS
    keep_alive_seconds: int = 0  # warm pool: keep the instance this long for the next matching job (0-3600)
    live_tensorboard: bool = True  # SageMaker copies the trainer's TensorBoard files to S3 while it runs
    region: str | None = None  # None: project.toml [aws] region
    s3_bucket: str | None = None  # None: project.toml [aws] s3_bucket
    image_uri: str | None = None  # None: project.toml [aws] ecr_image_uri
    project_file: str | None = None  # None: project.toml at the repository root


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(JobSettings))


@dataclass(frozen=True)
class Settings:
    """JobSettings with every default filled in and every value checked."""

    project: ProjectConfig
    entry: EntryPoint
    hyperparameters: dict
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_run_seconds: int
    use_spot: bool
    max_wait_seconds: int | None
    checkpoints: bool
    build_input: str
    build_bucket: str
    build_key: str
    base_job_name: str
    role: str | None  # None: on SageMaker, its execution role (looked up when submitting); else missing
    environment: dict
    wait: bool
    sdk: str
    telemetry: bool
    region: str
    bucket: str
    image_uri: str
    keep_alive_seconds: int = 0
    live_tensorboard: bool = True

    def describe(self) -> str:
        """A few lines to show before submitting: what will run, where, and on what."""
        spot = f"spot, max wait {self.max_wait_seconds} s" if self.use_spot else "on-demand"
        how_build = "input channel" if self.build_input == "channel" else "S3 key the trainer downloads"
        role = self.role or ("this notebook's execution role" if on_sagemaker() else "none")
        return "\n".join(
            [
                f"Entry point:      src/{self.entry.name}",
                f"Hyperparameters:  {json.dumps(self.hyperparameters)}",
                f"Image:            {self.image_uri}",
                f"Instance:         {self.instance_count} x {self.instance_type} ({spot}), "
                f"max run {self.max_run_seconds} s",
            ]
            + (
                [f"Cluster:          one run on {self.instance_count} instances (algo-1 writes the results)"]
                if self.instance_count > 1
                else []
            )
            + [
                f"Unity build:      s3://{self.build_bucket}/{self.build_key} ({how_build})",
                f"Results:          s3://{self.bucket}/{self.base_job_name}-<YYYYmmddHHMMSS>/",
                f"Role:             {role}",
                f"Region, SDK:      {self.region}, SageMaker SDK {self.sdk}",
            ]
            + warm_pools.describe_setting(self.keep_alive_seconds)
        )


def resolve(settings: JobSettings | None = None, **overrides: object) -> Settings:
    """Fill in project.toml's defaults and check every value (no AWS calls)."""
    chosen = dataclasses.replace(settings or JobSettings(), **_known(overrides))
    project = read_project(chosen.project_file)
    region = _checked(rules.region, "region", _or(chosen.region, project.region))
    bucket = _checked(rules.bucket, "s3_bucket", _or(chosen.s3_bucket, project.bucket))
    entry = load_entry_point(_or(chosen.entry_point, project.entry_point), SOURCE_DIR)
    build_bucket, build_key = _build_location(_or(chosen.build_key, project.build_key), bucket)
    max_run = _integer("max_run_seconds", chosen.max_run_seconds, 1, MAX_RUN_LIMIT)
    use_spot = _boolean("use_spot", chosen.use_spot)
    return Settings(
        project=project,
        entry=entry,
        hyperparameters=_hyperparameters(entry, chosen.hyperparameters),
        instance_type=_checked(
            rules.training_instance_type, "instance_type", _or(chosen.instance_type, project.instance_type)
        ),
        instance_count=_instance_count(chosen.instance_count, entry),
        volume_size_gb=_integer("volume_size_gb", chosen.volume_size_gb, 1, 16384),
        max_run_seconds=max_run,
        use_spot=use_spot,
        max_wait_seconds=_max_wait(chosen.max_wait_seconds, max_run, use_spot),
        checkpoints=_boolean("checkpoints", chosen.checkpoints),
        build_input=_choice("build_input", chosen.build_input, ("channel", "s3")),
        build_bucket=build_bucket,
        build_key=build_key,
        base_job_name=_base_job_name(chosen.base_job_name, project.slug, entry.name),
        role=_role(chosen.role, region),
        environment=_environment(chosen.environment),
        wait=_boolean("wait", chosen.wait),
        sdk=_choice("sdk", chosen.sdk, ("auto", "v3", "v2")),
        telemetry=_boolean("telemetry", chosen.telemetry),
        region=region,
        bucket=bucket,
        image_uri=check_image_uri(_or(chosen.image_uri, project.image_uri), region),
        keep_alive_seconds=warm_pools.check_keep_alive(chosen.keep_alive_seconds, use_spot),
        live_tensorboard=_boolean("live_tensorboard", chosen.live_tensorboard),
    )


def _instance_count(value: object, entry: EntryPoint) -> int:
    """1, or more for an entry point whose trainer trains on several instances (``distributed = True``):
    any other would fail on every instance at its start, after the instances were paid for."""
    count = _integer("instance_count", value, 1, 100)
    if count > 1 and not entry.distributed:
        distributed = available_distributed()
        others = f"; {', '.join(distributed)} train(s) on several" if distributed else ""
        raise LaunchError(
            f"instance_count={count}: src/{entry.name} trains on one instance (its trainer class does not "
            f"declare distributed = True). Set instance_count=1{others}"
        )
    return count


def available_distributed() -> list[str]:
    """The entry points in src/ that train on several instances."""
    found = []
    for name in available(SOURCE_DIR):
        with contextlib.suppress(LaunchError):
            if load_entry_point(name, SOURCE_DIR).distributed:
                found.append(name)
    return found


def check_image_uri(uri: object, region: str) -> str:
    """A private ECR image in the job's region: the only kind a SageMaker training job can pull."""
    return _checked(lambda value, name: rules.ecr_image_uri(value, name, region), "image_uri", uri)


def require_role(settings: Settings) -> str | None:
    """The role for the job: settings.role, or None on SageMaker (its execution role is then looked up)."""
    if settings.role or on_sagemaker():
        return settings.role
    raise LaunchError(
        "role=None: outside SageMaker there is no execution role to take. Pass the ARN of a role SageMaker "
        f"can assume, role='arn:aws:iam::<account>:role/<name>' (--set role=...), or set ${ROLE_ENV}"
    )


def on_sagemaker() -> bool:
    """True on a SageMaker notebook instance or in Studio (where an execution role exists)."""
    return SAGEMAKER_METADATA.is_file()


def parse_assignment(text: str) -> tuple[str, str]:
    """``key=value`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise LaunchError(
            f"--set {text!r}: expected KEY=VALUE, e.g. --set instance_type=ml.m5.large or --set seed=7"
        )
    return key.strip(), value


def split_assignments(pairs: list[tuple[str, str]], entry_keys: Mapping) -> tuple[dict, dict]:
    """Command-line ``KEY=VALUE`` pairs: job settings by name, the rest (or ``hp.KEY``) hyperparameters."""
    settings, hyperparameters = {}, {}
    for key, value in pairs:
        if key.startswith("hp."):
            hyperparameters[key[3:]] = value
        elif key in SETTING_NAMES and key != "hyperparameters":
            settings[key] = None if value.lower() in ("", "none", "null") and key in _OPTIONAL else value
        elif key in entry_keys:
            hyperparameters[key] = value
        else:
            raise LaunchError(
                f"--set {key}=...: {key!r} is neither a job setting ({', '.join(SETTING_NAMES)}) "
                "nor a config key "
                f"of the entry point ({', '.join(sorted(entry_keys))})"
            )
    return settings, hyperparameters


_OPTIONAL = {f.name for f in dataclasses.fields(JobSettings) if f.default is None}


def _known(overrides: Mapping[str, object]) -> dict:
    unknown = sorted(set(overrides) - set(SETTING_NAMES))
    if unknown:
        raise LaunchError(
            f"unknown setting(s) {', '.join(unknown)}: the settings are {', '.join(SETTING_NAMES)}"
        )
    return dict(overrides)


def _or(chosen: object, default: object) -> object:
    """The chosen value, or project.toml's when none was chosen (None or "")."""
    return default if chosen is None or chosen == "" else chosen


def _checked(rule, name: str, value: object):
    """``value`` by its rule in template_runtime/rules.py; a refusal becomes a LaunchError naming it."""
    try:
        return rule(value, name)
    except rules.RuleError as error:
        raise LaunchError(
            f"{error} (set {name} in the notebook's parameters cell or with --set {name}=...)"
        ) from None


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "yes",
        "1",
        "on",
        "false",
        "no",
        "0",
        "off",
    ):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise LaunchError(f"{name}={value!r} is not true or false")


def _integer(name: str, value: object, low: int, high: int) -> int:
    number = value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise LaunchError(f"{name}={value!r} must be a whole number from {low} to {high}")
    return number


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise LaunchError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")
    return value


def _max_wait(value: object, max_run: int, use_spot: bool) -> int | None:
    if not use_spot:
        if value is not None:
            raise LaunchError(
                f"max_wait_seconds={value!r} only applies to spot jobs: set use_spot=True, "
                "or max_wait_seconds=None"
            )
        return None
    if value is None:
        return min(2 * max_run, MAX_RUN_LIMIT)
    wait = _integer("max_wait_seconds", value, 1, MAX_RUN_LIMIT)
    if wait < max_run:
        raise LaunchError(
            f"max_wait_seconds={wait} is less than max_run_seconds={max_run}: "
            "SageMaker needs it at least as long"
        )
    return wait


def _build_location(value: object, bucket: str) -> tuple[str, str]:
    """``key`` in the project's bucket, or a full ``s3://bucket/key``."""
    if isinstance(value, str) and value.startswith("s3://"):
        return _checked(rules.s3_uri, "build_key", value)
    return bucket, _checked(rules.build_zip_key, "build_key", value)


def _base_job_name(value: object, slug: str, entry_name: str) -> str:
    if value is None:
        algorithm = entry_name.removesuffix(".py").removesuffix("_trainer")
        value = re.sub(r"[^a-zA-Z0-9]+", "-", f"{slug}-{algorithm}").strip("-")[:48].rstrip("-")
    return _checked(rules.base_job_name, "base_job_name", value)


def _role(value: object, region: str) -> str | None:
    name = "role"
    if value is None:
        value, name = os.environ.get(ROLE_ENV) or None, f"${ROLE_ENV}"
        if value is None:
            return None  # require_role decides, when a role is needed
    return _checked(lambda role, field: rules.role_arn(role, field, region), name, value)


def _json_text(name: str, value: object) -> object:
    """A dict setting given as JSON text (papermill -p, --set) is read as JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise LaunchError(f"{name}={value!r} is not JSON: write it like '{{\"key\": 1}}'") from None


def _environment(value: object) -> dict:
    value = _json_text("environment", value)
    if not isinstance(value, Mapping):
        raise LaunchError(f"environment={value!r} must be a dict of NAME: value")
    result = {}
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise LaunchError(f"environment: {name!r} is not a valid variable name (letters, digits, _)")
        if isinstance(item, (dict, list)) or item is None:
            raise LaunchError(f"environment[{name!r}]={item!r} must be text or a number")
        result[name] = str(item).lower() if isinstance(item, bool) else str(item)
    return result


def _hyperparameters(entry: EntryPoint, value: object) -> dict:
    value = _json_text("hyperparameters", value)
    if not isinstance(value, Mapping):
        raise LaunchError(f"hyperparameters={value!r} must be a dict of config key: value")
    reserved = [key for key in value if str(key).startswith("sagemaker_")]
    if reserved:
        raise LaunchError(
            f"hyperparameters {reserved}: names starting with sagemaker_ are the SDK's; rename them"
        )
    checked = entry.hyperparameters(value)
    for key, item in checked.items():
        if len(json.dumps(item)) > HYPERPARAMETER_VALUE_LIMIT:
            raise LaunchError(
                f"hyperparameters[{key!r}] is longer than {HYPERPARAMETER_VALUE_LIMIT} characters as JSON: "
                "SageMaker refuses it; put large values in a file in src/"
            )
    return checked
