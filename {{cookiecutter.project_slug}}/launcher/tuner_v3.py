"""The tuning job handed to SageMaker Python SDK v3 (``sagemaker.train.tuner.HyperparameterTuner``).

The tuner takes the same ModelTrainer as a single job (sdk_v3.model_trainer) with the tuned keys
left out of its hyperparameters. CreateHyperParameterTuningJob has no ContainerEntrypoint, so the
v3 tuner does what v2 does: it uploads src/ as sourcedir.tar.gz and sets ``sagemaker_program`` /
``sagemaker_submit_directory``, and the image's sagemaker-training ``train`` runs the entry point
(it also uploads its sm_drivers channel, which that path does not use). The checkpoint location
is given explicitly: ModelTrainer would only fill it in when it starts a training job itself.
"""

from __future__ import annotations

from launcher import sdk_v3
from launcher.job import staged_source

GENERATION = "v3"


def start_tuning(spec, boto_session) -> None:
    """Upload src/ and send CreateHyperParameterTuningJob (returns at once)."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
    from sagemaker.core.shapes import HyperbandStrategyConfig, HyperParameterTuningJobStrategyConfig
    from sagemaker.core.training.configs import InputData
    from sagemaker.train.tuner import HyperparameterTuner

    kinds = {"Integer": IntegerParameter, "Continuous": ContinuousParameter}
    ranges = {
        r.name: (
            CategoricalParameter(list(r.values))
            if r.kind == "Categorical"
            else kinds[r.kind](r.min_value, r.max_value, scaling_type=r.scaling)
        )
        for r in spec.ranges
    }
    strategy_config = (
        HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(
                min_resource=spec.hyperband[0], max_resource=spec.hyperband[1]
            )
        )
        if spec.hyperband
        else None
    )
    training = spec.training
    with staged_source(training.source_dir) as source_dir:
        trainer = sdk_v3.model_trainer(
            training,
            boto_session,
            source_dir,
            hyperparameters=spec.encoded_static_hyperparameters(),
            checkpoint_s3_uri=spec.checkpoint_uri,
        )
        tuner = HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name=spec.objective,
            objective_type=spec.objective_type,
            hyperparameter_ranges=ranges,
            metric_definitions=[{"Name": name, "Regex": regex} for name, regex in spec.metric_definitions],
            strategy=spec.strategy,
            strategy_config=strategy_config,
            max_jobs=spec.max_jobs,
            max_parallel_jobs=spec.max_parallel_jobs,
            early_stopping_type="Auto" if spec.early_stopping else "Off",
        )
        channels = [
            InputData(channel_name=name, data_source=uri) for name, uri in training.input_channels.items()
        ]
        tuner.tune(inputs=channels or None, job_name=spec.name, wait=False)
