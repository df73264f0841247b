"""The job description handed to SageMaker Python SDK v2 (``sagemaker.estimator.Estimator``).

v2 is deprecated but still what many notebook instances have. Its Estimator in script mode uploads
src/ as ``sourcedir.tar.gz`` and the container's sagemaker-training ``train`` runs the entry point
(the training image has both drivers). To match v3 (see job.py) this adapter names the job
``<base>-<YYYYmmddHHMMSS>``, uploads src/ under ``s3://<bucket>/<base>/<job>/source/`` and keeps
checkpoints under ``s3://<bucket>/<base>/<job>/checkpoints``; the profiler and debugger hooks,
which v2 adds by default, are switched off.
"""

from __future__ import annotations

import os

from launcher.job import TrainingJobSpec, staged_source

GENERATION = "v2"
os.environ.setdefault(
    "SAGEMAKER_SUPPRESS_V2_WARNING", "1"
)  # before any sagemaker import; api.py tells the user once


def sdk_session(spec: TrainingJobSpec, boto_session):
    from sagemaker.session import Session

    return Session(boto_session=boto_session, default_bucket=spec.bucket, sagemaker_config=spec.sdk_config())


def execution_role(spec: TrainingJobSpec, boto_session) -> str:
    """The role of this SageMaker notebook instance or Studio user."""
    from sagemaker.session import get_execution_role

    return get_execution_role(sdk_session(spec, boto_session))


def start(spec: TrainingJobSpec, boto_session) -> None:
    """Upload src/ and send CreateTrainingJob (returns at once; capture.record has the request)."""
    from sagemaker.inputs import TrainingInput

    job_name = spec.new_job_name()
    with staged_source(spec.source_dir) as source_dir:
        estimator = make_estimator(spec, boto_session, source_dir, spec.checkpoint_uri(job_name))
        inputs = {name: TrainingInput(s3_data=uri) for name, uri in spec.input_channels.items()}
        estimator.fit(inputs=inputs or None, job_name=job_name, wait=False, logs=False)


def make_estimator(
    spec: TrainingJobSpec,
    boto_session,
    source_dir,
    checkpoint_s3_uri: str | None,
    hyperparameters: dict | None = None,
    tensorboard: bool = True,
):
    """The Estimator for ``spec`` (tuner_v2.py builds its tuning job from the same one).

    ``hyperparameters`` (typed) replace the spec's; a tuning job has no TensorBoardOutputConfig.
    """
    from sagemaker.debugger import TensorBoardOutputConfig
    from sagemaker.estimator import Estimator

    return Estimator(
        image_uri=spec.image_uri,
        role=spec.role_arn,
        sagemaker_session=sdk_session(spec, boto_session),
        base_job_name=spec.base_job_name,
        entry_point=spec.entry_point,
        source_dir=str(source_dir),
        code_location=spec.staging_prefix,
        output_path=spec.output_path,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        volume_size=spec.volume_size_gb,
        max_run=spec.max_run_seconds,
        use_spot_instances=spec.use_spot,
        max_wait=spec.max_wait_seconds,
        keep_alive_period_in_seconds=spec.keep_alive_seconds or None,
        checkpoint_s3_uri=checkpoint_s3_uri,
        checkpoint_local_path=spec.checkpoint_local_path,
        # typed: the Estimator JSON-encodes each value
        hyperparameters=dict(spec.hyperparameters if hyperparameters is None else hyperparameters),
        environment=dict(spec.environment),
        metric_definitions=[{"Name": name, "Regex": regex} for name, regex in spec.metric_definitions],
        tensorboard_output_config=(
            TensorBoardOutputConfig(
                s3_output_path=spec.tensorboard_s3_path,
                container_local_output_path=spec.tensorboard_local_path,
            )
            if tensorboard and spec.tensorboard_local_path
            else None
        ),
        disable_profiler=True,
        debugger_hook_config=False,
    )


def wait(job_name: str, boto_session, region: str, logs: bool) -> None:
    """Block until the job ends, streaming its CloudWatch logs when ``logs``."""
    from sagemaker.session import Session

    session = Session(boto_session=boto_session)
    if logs:
        session.logs_for_job(job_name, wait=True, log_type="All")
    else:
        session.wait_for_job(job_name)
