"""What job_launcher.ipynb and `python launch.py` call: each step of a run, in order.

    settings = load_settings(**parameters)      # project.toml defaults + your choices, all checked
    upload_build(settings, "builds/3DBall.zip")  # optional: put a local build zip in the bucket
    job = submit(settings)                       # checks AWS, uploads src/, starts the job, says where
    wait(job)                                    # streams the logs until it ends
    results = fetch_results(job)                 # model and output from S3; the Unity .onnx checked
    plot_learning_curve(results); load_saved_model(results)

``dry_run(settings)`` returns the CreateTrainingJob request without sending anything, and
``dry_run_plan(settings)`` everything that would run (entry point, hyperparameters, files, build);
``run_local_job(settings)`` builds the same request and runs it here (container.py).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from launcher import aws, capture, container, live_tensorboard, results, role_check, tensorboard, warm_pools
from launcher import dry_run as dry_run_report
from launcher.errors import LaunchError
from launcher.job import TrainingJobSpec, build_job_spec
from launcher.project import REPO_ROOT
from launcher.settings import Settings, require_role, resolve

DRY_RUN_ROLE = "arn:aws:iam::000000000000:role/execution-role-of-this-notebook"
LOCAL_JOBS_DIR = REPO_ROOT / "runs" / "local-jobs"
RESULTS_DIR = REPO_ROOT / "results"


@dataclass(frozen=True)
class SubmittedJob:
    """A training job that was started (or run locally): its name and where everything goes."""

    job_name: str
    region: str
    sdk: str
    s3_prefix: str  # s3://<bucket>/<job-name>/
    model_uri: str
    output_uri: str
    checkpoint_uri: str | None
    logs_url: str
    console_url: str
    request: dict  # the CreateTrainingJob request (or, after attach, the DescribeTrainingJob answer)
    local: bool = False
    warm_pool: str | None = None  # the pooled job this one should start on (warm_pools.py)

    @classmethod
    def from_request(cls, request: dict, region: str, sdk: str, local: bool = False) -> SubmittedJob:
        name = request["TrainingJobName"]
        prefix = f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}"
        logs, console = aws.console_links(region, name)
        checkpoint = (request.get("CheckpointConfig") or {}).get("S3Uri")
        return cls(
            name,
            region,
            sdk,
            f"{prefix}/",
            f"{prefix}/output/model.tar.gz",
            f"{prefix}/output/output.tar.gz",
            checkpoint.rstrip("/") + "/" if checkpoint else None,
            logs,
            console,
            request,
            local,
        )

    def describe(self) -> str:
        lines = [
            f"Training job:  {self.job_name}  ({'run here, ' if self.local else ''}SageMaker SDK {self.sdk})",
            f"Results:       {self.s3_prefix}",
            f"  model:       {self.model_uri}",
            f"  output:      {self.output_uri}  (metrics.jsonl, summaries, Unity logs)",
            f"Checkpoints:   {self.checkpoint_uri or 'off'}",
        ]
        if not self.local:
            lines += [f"Logs:          {self.logs_url}", f"Console:       {self.console_url}"]
        tensorboard = live_tensorboard.describe(self.request)
        return "\n".join(lines + ([tensorboard] if tensorboard else []))


def load_settings(**values) -> Settings:
    """project.toml's defaults overridden by ``values`` (the notebook's parameters), all checked offline."""
    return resolve(**values)


def upload_build(settings: Settings, path: str | Path) -> bool:
    """Put a local build zip at the settings' build key (skipped if the same file is there already)."""
    session = aws.session(settings.region)
    aws.check_credentials(session)
    aws.check_bucket(session, settings.build_bucket, settings.region)
    return aws.upload_build(session, path, settings.build_bucket, settings.build_key)


def describe_job(settings: Settings, role_arn: str | None = None) -> TrainingJobSpec:
    """The neutral job description (on SageMaker without a role: with this notebook's execution role)."""
    role_arn = role_arn or require_role(settings)
    if role_arn is None:
        lookup = build_job_spec(settings, DRY_RUN_ROLE)  # only its region, bucket and SDK config are used
        role_arn = _sdk(settings).execution_role(lookup, aws.session(settings.region))
    return build_job_spec(settings, role_arn)


def dry_run(settings: Settings) -> dict:
    """The exact CreateTrainingJob request the SDK would send; nothing is sent (not even the uploads)."""
    return _held_back_request(settings)[1]


def dry_run_plan(settings: Settings) -> dict:
    """Everything the job would run: entry point, typed hyperparameters, source files, build, metric
    definitions, and the request itself (launcher/dry_run.py); nothing is sent."""
    return dry_run_report.plan(*_held_back_request(settings))


def _held_back_request(settings: Settings) -> tuple[TrainingJobSpec, dict]:
    sdk = _sdk(settings)
    spec = build_job_spec(settings, require_role(settings) or DRY_RUN_ROLE)
    session = aws.session(settings.region)
    try:
        with capture.hold_back(session, offline=True, bucket=spec.bucket):
            sdk.start(spec, session)
    except capture.RequestHeldBack as held:
        return spec, held.request
    raise RuntimeError(f"SageMaker SDK {sdk.GENERATION} made no CreateTrainingJob request")


def submit(settings: Settings) -> SubmittedJob:
    """Check AWS, upload src/ and start the job; returns at once (see wait)."""
    require_role(settings)
    sdk, session = _sdk(settings), aws.session(settings.region)
    _preflight(settings, session)
    spec = describe_job(settings)
    pool = warm_pools.find(session, spec)
    if pool.worth_saying(spec):
        print(pool.describe(), flush=True)
    with role_check.checked_role(session, settings, spec.role_arn), capture.record(session) as requests:
        sdk.start(spec, session)
    if not requests:
        raise RuntimeError(f"SageMaker SDK {sdk.GENERATION} returned without a CreateTrainingJob request")
    job = SubmittedJob.from_request(requests[-1], settings.region, sdk.GENERATION)
    job = dataclasses.replace(job, warm_pool=pool.match)
    print(job.describe(), flush=True)
    return job


def attach(settings: Settings, job_name: str) -> SubmittedJob:
    """An existing job by name (after a kernel restart, or one started elsewhere)."""
    session = aws.session(settings.region)
    aws.check_credentials(session)
    job = SubmittedJob.from_request(
        results.describe(session, job_name), settings.region, _sdk(settings).GENERATION
    )
    print(job.describe(), flush=True)
    return job


def wait(job: SubmittedJob, logs: bool = True) -> str:
    """Block until the job ends (streaming its logs); return its final status.

    Ctrl-C stops the waiting, not the job.
    """
    if job.local:
        return "Completed"
    session = aws.session(job.region)
    adapter = _sdk_by_name(job.sdk)
    try:
        adapter.wait(job.job_name, session, job.region, logs)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; {job.job_name} goes on running (console: {job.console_url})")
        raise
    except Exception as error:  # the SDKs raise when a job fails; report the status instead
        print(f"{job.job_name}: {error}", file=sys.stderr)
    status = results.describe(session, job.job_name)["TrainingJobStatus"]
    print(f"{job.job_name}: {status}")
    reuse = warm_pools.report_reuse(session, job.job_name, job.warm_pool)
    if reuse:
        print(reuse)
    return status


def run_local_job(
    settings: Settings, container_python: str | Path | None = None, work_dir: str | Path | None = None
) -> SubmittedJob:
    """Build the job's request with the SDK (uploading src/), then run it here instead of on SageMaker."""
    require_role(settings)
    sdk, session = _sdk(settings), aws.session(settings.region)
    _preflight(settings, session)
    spec = describe_job(settings)
    try:
        with (
            role_check.checked_role(session, settings, spec.role_arn),
            capture.hold_back(session, offline=False, bucket=spec.bucket),
        ):
            sdk.start(spec, session)
    except capture.RequestHeldBack as held:
        request = held.request
    else:
        raise RuntimeError(f"SageMaker SDK {sdk.GENERATION} made no CreateTrainingJob request")
    job = SubmittedJob.from_request(request, settings.region, sdk.GENERATION, local=True)
    print(job.describe(), flush=True)
    result = container.run_training_request(
        request,
        boto_session=session,
        container_python=container_python or sys.executable,
        work_dir=work_dir or LOCAL_JOBS_DIR,
    )
    print(
        f"local job {job.job_name} finished: model {result.model_uri}, output {result.output_uri or 'none'}, "
        f"its /opt/ml in {result.opt_ml}",
        flush=True,
    )
    return job


def fetch_results(
    job: SubmittedJob | str,
    region: str | None = None,
    dest: str | Path | None = None,
    bucket: str | None = None,
):
    """Download and extract the job's model and output (results/<job-name>/); None while it still runs.

    ``job`` is what submit/attach/run_local_job returned, or a job name with its ``region``; a
    name SageMaker does not know is looked for in ``bucket`` (a job run with --local-job).
    """
    name = job if isinstance(job, str) else job.job_name
    region = region or (job.region if isinstance(job, SubmittedJob) else None)
    if not region:
        raise LaunchError("fetch_results: give the region of the job (or the job returned by submit)")
    session = aws.session(region)
    aws.check_credentials(session)
    local_output = (
        job.s3_prefix.rstrip("/").rsplit("/", 1)[0] if isinstance(job, SubmittedJob) and job.local else None
    )
    try:
        return results.fetch_results(session, name, dest or RESULTS_DIR, local_output)
    except LaunchError as unknown:
        if not bucket or local_output:
            raise
        try:
            aws.check_object(session, bucket, f"{name}/output/model.tar.gz", setting="job_name")
        except LaunchError:
            raise unknown from None
        return results.fetch_results(session, name, dest or RESULTS_DIR, f"s3://{bucket}")


def fetch_tensorboard(
    job: SubmittedJob | str, region: str, dest: str | Path | None = None, bucket: str | None = None
):
    """Download a job's TensorBoard event files into results/<job-name>/tensorboard/ (see tensorboard.py).

    A name SageMaker does not know is looked for in ``bucket`` (a job run with --local-job).
    """
    name = job if isinstance(job, str) else job.job_name
    session = aws.session(region)
    aws.check_credentials(session)
    try:
        description = results.describe(session, name)
    except LaunchError:
        if not bucket:
            raise
        aws.check_object(session, bucket, f"{name}/output/output.tar.gz", setting="job_name")
        description = {"TrainingJobName": name, "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}"}}
    return tensorboard.fetch_event_files(session, description, Path(dest or RESULTS_DIR))


def show_tensorboard(
    job: SubmittedJob | str, region: str, port: int = tensorboard.DEFAULT_PORT, **where
) -> None:
    """fetch_tensorboard, then TensorBoard on 127.0.0.1:``port`` in this process's place (command line)."""
    tensorboard.start(fetch_tensorboard(job, region, **where), port)


plot_learning_curve = results.plot_learning_curve
load_saved_model = results.load_saved_model
unity_instructions = results.unity_instructions


def request_json(request: dict) -> str:
    return json.dumps(request, indent=2, default=str)


def installed_sdk() -> str | None:
    """ "v3", "v2" or None, from the installed sagemaker package's version."""
    try:
        major = int(importlib.metadata.version("sagemaker").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    return "v3" if major >= 3 else "v2"


def _sdk(settings: Settings):
    found = installed_sdk()
    if found is None:
        raise LaunchError(
            "the SageMaker Python SDK is not installed here: pip install -r requirements/launcher.txt"
        )
    if settings.sdk not in ("auto", found):
        raise LaunchError(
            f"sdk={settings.sdk!r} but SageMaker SDK {found} is installed: set sdk='auto' or install "
            f"{'requirements/launcher.txt' if settings.sdk == 'v3' else 'requirements/launcher-v2.txt'}"
        )
    if found == "v2":
        _tell_about_v2()
    return _sdk_by_name(found)


@functools.cache
def _tell_about_v2() -> None:
    """Once per session: v2 works, but is deprecated (the SDK's own warning is silenced in sdk_v2)."""
    print(
        "SageMaker SDK v2 is installed (deprecated): using its Estimator; requirements/launcher.txt has v3",
        file=sys.stderr,
    )


def _sdk_by_name(name: str):
    if name == "v3":
        from launcher import sdk_v3

        return sdk_v3
    from launcher import sdk_v2

    return sdk_v2


def _preflight(settings: Settings, session) -> None:
    """Everything that can be checked before submitting: credentials, bucket, build, image account."""
    identity = aws.check_credentials(session)
    aws.check_bucket(session, settings.bucket, settings.region)
    if settings.build_bucket != settings.bucket:
        aws.check_bucket(session, settings.build_bucket, settings.region)
    aws.check_object(session, settings.build_bucket, settings.build_key)
    account = settings.image_uri.split(".", 1)[0]
    if identity.get("Account") and identity["Account"] != account:
        print(
            f"note: the image is in account {account}, you are in {identity['Account']}: its ECR repository "
            "policy must let SageMaker in your account pull it",
            file=sys.stderr,
        )
