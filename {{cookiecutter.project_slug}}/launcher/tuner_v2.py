"""The tuning job handed to SageMaker Python SDK v2 (``sagemaker.tuner.HyperparameterTuner``).

The tuner takes the same Estimator as a single job (sdk_v2.make_estimator) with the tuned keys left
out of its hyperparameters; it uploads src/ under ``s3://<bucket>/<base>/<tuning-job>/source/``.
"""

from __future__ import annotations

import os

from launcher import sdk_v2
from launcher.job import staged_source

GENERATION = "v2"
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def start_tuning(spec, boto_session) -> None:
    """Upload src/ and send CreateHyperParameterTuningJob (returns at once)."""
    from sagemaker.inputs import TrainingInput
    from sagemaker.tuner import (
        CategoricalParameter,
        ContinuousParameter,
        HyperbandStrategyConfig,
        HyperparameterTuner,
        IntegerParameter,
        StrategyConfig,
    )

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
        StrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(
                min_resource=spec.hyperband[0], max_resource=spec.hyperband[1]
            )
        )
        if spec.hyperband
        else None
    )
    training = spec.training
    with staged_source(training.source_dir) as source_dir:
        estimator = sdk_v2.make_estimator(
            training,
            boto_session,
            source_dir,
            spec.checkpoint_uri,
            hyperparameters=spec.static_hyperparameters,
            tensorboard=False,
        )
        tuner = HyperparameterTuner(
            estimator=estimator,
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
        inputs = {name: TrainingInput(s3_data=uri) for name, uri in training.input_channels.items()}
        tuner.fit(inputs=inputs or None, job_name=spec.name, wait=False)
