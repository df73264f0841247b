"""`launch.py --dry-run`: everything the job would run, read back from the request the SDK built.

A CreateTrainingJob request does not say in plain words which script runs with which values (SDK v3
names the entry point only in a file it uploads), so the dry run shows, beside the request itself:

    entry_point          the script in src/ that runs in the container
    hyperparameters      the values the trainer receives (SM_HPS: each request value JSON-decoded,
                         the SDK's own sagemaker_* keys left out), with their types
    source_files         every file of src/ that is uploaded as the job's code, with its size
    source_upload        where in S3 that code goes (v3: the code channel; v2: sourcedir.tar.gz)
    build                how the Unity build reaches the job: an input channel, or an S3 key the
                         trainer downloads itself
    cluster              how many instances run the entry point and how they make one run (instance_count
                         > 1: one DD-PPO worker per instance, the chief algo-1 the only writer)
    metric_definitions   the regexes SageMaker applies to the log to chart the trainer's metrics
    request              the CreateTrainingJob request, exactly as botocore would send it
"""

from __future__ import annotations

import json

from launcher.job import TrainingJobSpec, staged_source

CLUSTER_PORT = 2222  # template_runtime/distributed.py's CLUSTER_PORT (the launcher does not import it)

SDK_CHANNELS = ("code", "sm_drivers")  # SDK v3's own channels: the code and its driver scripts


def received_hyperparameters(request: dict) -> dict:
    """What the trainer reads from SM_HPS: each value JSON-decoded (the container does the same)."""
    decoded = {}
    for key, text in (request.get("HyperParameters") or {}).items():
        if key.startswith("sagemaker_"):
            continue
        try:
            decoded[key] = json.loads(text)
        except ValueError:
            decoded[key] = text  # a plain string, as a container passes it through
    return decoded


def source_files(spec: TrainingJobSpec) -> list[dict]:
    """The files the SDK uploads (src/ without caches, staged the same way), with their sizes in bytes."""
    with staged_source(spec.source_dir) as staged:
        return [
            {"path": path.relative_to(staged).as_posix(), "bytes": path.stat().st_size}
            for path in sorted(staged.rglob("*"))
            if path.is_file()
        ]


def source_upload(request: dict) -> str | None:
    """The S3 location of the uploaded code, as the request names it."""
    for channel in request.get("InputDataConfig") or []:
        if channel["ChannelName"] == "code":
            return channel["DataSource"]["S3DataSource"]["S3Uri"]
    directory = (request.get("HyperParameters") or {}).get("sagemaker_submit_directory")
    return json.loads(directory) if directory else None


def build_input(spec: TrainingJobSpec, request: dict) -> dict:
    """How the Unity build gets into the job."""
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request.get("InputDataConfig") or []
        if c["ChannelName"] not in SDK_CHANNELS
    }
    if channels:
        name, uri = next(iter(channels.items()))
        return {"input": "channel", "channel": name, "uri": uri, "in_the_job": f"/opt/ml/input/data/{name}/"}
    received = received_hyperparameters(request)
    key = received.get("zip_env_name", "")
    uri = key if str(key).startswith("s3://") else f"s3://{received.get('bucket') or spec.bucket}/{key}"
    return {"input": "s3", "uri": uri, "in_the_job": "downloaded by the trainer"}


def cluster(spec: TrainingJobSpec, request: dict) -> dict:
    """The instances and what they share. Neither SDK needs a distribution setting for this: both run
    the entry point once on every instance (v3's basic script driver, v2's sagemaker-training) with
    SageMaker's host list (SM_HOSTS, resourceconfig.json), from which template_runtime/distributed.py
    makes the TensorFlow cluster. What matters is said here: every instance gets the whole build
    (FullyReplicated) and the checkpoints of the whole run are one S3 prefix."""
    count = request["ResourceConfig"]["InstanceCount"]
    if count == 1:
        return {"instance_count": 1, "workers": "one instance"}
    build = [
        c["DataSource"]["S3DataSource"].get("S3DataDistributionType", "FullyReplicated")
        for c in request.get("InputDataConfig") or []
        if c["ChannelName"] not in SDK_CHANNELS
    ]
    checkpoints = (request.get("CheckpointConfig") or {}).get("S3Uri")
    received = received_hyperparameters(request)
    threshold = received.get("preemption_threshold", spec_default(spec, "preemption_threshold"))
    return {
        "instance_count": count,
        "hosts": [f"algo-{i}" for i in range(1, count + 1)],
        "workers": (
            f"{count} workers of one run, one per instance, all-reducing gradients every minibatch on "
            f"port {CLUSTER_PORT}; algo-1 is the chief, the only one that writes checkpoints, the model "
            "and metrics"
        ),
        "build_distribution": build[0] if build else "downloaded by each instance's trainer",
        "checkpoints": (
            f"{checkpoints}: one prefix for the cluster, written by the chief; a restarted job resumes "
            "every worker from the chief's checkpoint"
            if checkpoints
            else "off: a stopped job cannot resume"
        ),
        "preemption_threshold": threshold,
    }


def spec_default(spec: TrainingJobSpec, key: str) -> object:
    """The entry point's default for config key ``key`` (None if it has none)."""
    from launcher.entry_points import load_entry_point

    return load_entry_point(spec.entry_point, spec.source_dir).config.get(key)


def plan(spec: TrainingJobSpec, request: dict) -> dict:
    """The dry run's report (see the module docstring), keys in reading order."""
    files = source_files(spec)
    return {
        "entry_point": f"src/{spec.entry_point}",
        "hyperparameters": received_hyperparameters(request),
        "source_files": files,
        "source_bytes": sum(f["bytes"] for f in files),
        "source_upload": source_upload(request),
        "build": build_input(spec, request),
        "cluster": cluster(spec, request),
        "metric_definitions": request.get("AlgorithmSpecification", {}).get("MetricDefinitions", []),
        "request": request,
    }
