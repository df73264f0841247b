"""The job description handed to SageMaker Python SDK v3 (``sagemaker.train.ModelTrainer``).

v3 runs the entry point through its own driver (``/bin/bash sm_train.sh`` from the ``sm_drivers``
channel, src/ in the ``code`` channel), names the job ``<base>-<YYYYmmddHHMMSS>`` itself, and puts
checkpoints under ``s3://<bucket>/<base>/<job>/checkpoints`` when no URI is given (job.py documents
that layout for both generations). It has no profiler or debugger hooks to switch off.
"""

from __future__ import annotations

from launcher.job import TrainingJobSpec, staged_source

GENERATION = "v3"


def sdk_session(spec: TrainingJobSpec, boto_session):
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=boto_session, default_bucket=spec.bucket, sagemaker_config=spec.sdk_config())


def execution_role(spec: TrainingJobSpec, boto_session) -> str:
    """The role of this SageMaker notebook instance or Studio user."""
    from sagemaker.core.helper.session_helper import get_execution_role

    return get_execution_role(sdk_session(spec, boto_session))


def start(spec: TrainingJobSpec, boto_session) -> None:
    """Upload src/ and send CreateTrainingJob (returns at once; capture.record has the request)."""
    from sagemaker.core.training.configs import InputData

    with staged_source(spec.source_dir) as source_dir:
        trainer = model_trainer(spec, boto_session, source_dir)
        channels = [
            InputData(channel_name=name, data_source=uri) for name, uri in spec.input_channels.items()
        ]
        trainer.train(input_data_config=channels or None, wait=False, logs=False)


def model_trainer(
    spec: TrainingJobSpec,
    boto_session,
    source_dir,
    hyperparameters: dict | None = None,
    checkpoint_s3_uri: str | None = None,
):
    """The ModelTrainer for ``spec`` (tuner_v3.py builds its tuning job from the same one).

    ``hyperparameters`` (JSON text) replace the spec's; ``checkpoint_s3_uri`` fixes the checkpoint
    location, which ModelTrainer otherwise derives from the job name when it starts the job.
    """
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        MetricDefinition,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
        TensorBoardOutputConfig,
    )
    from sagemaker.train import ModelTrainer

    trainer = ModelTrainer(
        sagemaker_session=sdk_session(spec, boto_session),
        role=spec.role_arn,
        base_job_name=spec.base_job_name,
        training_image=spec.image_uri,
        source_code=SourceCode(source_dir=str(source_dir), entry_script=spec.entry_point),
        compute=Compute(
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            volume_size_in_gb=spec.volume_size_gb,
            enable_managed_spot_training=spec.use_spot,
            keep_alive_period_in_seconds=spec.keep_alive_seconds or None,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=spec.max_run_seconds,
            max_wait_time_in_seconds=spec.max_wait_seconds,
        ),
        output_data_config=OutputDataConfig(s3_output_path=spec.output_path, compression_type="GZIP"),
        checkpoint_config=(
            CheckpointConfig(local_path=spec.checkpoint_local_path, s3_uri=checkpoint_s3_uri)
            if spec.checkpoint_local_path
            else None
        ),
        environment=dict(spec.environment),
        # JSON text: v3 passes strings through unchanged
        hyperparameters=spec.encoded_hyperparameters() if hyperparameters is None else hyperparameters,
    ).with_metric_definitions(
        [MetricDefinition(name=name, regex=regex) for name, regex in spec.metric_definitions]
    )
    if spec.tensorboard_local_path:
        trainer = trainer.with_tensorboard_output_config(
            TensorBoardOutputConfig(
                s3_output_path=spec.tensorboard_s3_path, local_path=spec.tensorboard_local_path
            )
        )
    return trainer


def wait(job_name: str, boto_session, region: str, logs: bool) -> None:
    """Block until the job ends, streaming its CloudWatch logs when ``logs``."""
    from sagemaker.core.resources import TrainingJob

    TrainingJob.get(training_job_name=job_name, session=boto_session, region=region).wait(logs=logs)
