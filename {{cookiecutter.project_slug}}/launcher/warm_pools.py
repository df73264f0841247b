"""Managed warm pools: keep a job's instances for the next matching job, and say when one is reused.

``keep_alive_seconds`` > 0 sets ResourceConfig.KeepAlivePeriodInSeconds: after the job, SageMaker
keeps its instances for that long, and the next training job that *matches* starts on them in
seconds instead of minutes. SageMaker decides the match itself, from these values of the new
request, which must equal the pooled job's (AWS docs, "Matching training jobs"):

    RoleArn; ResourceConfig InstanceCount, InstanceType, VolumeKmsKeyId, VolumeSizeInGB;
    VpcConfig SecurityGroupIds and Subnets; EnableInterContainerTrafficEncryption;
    EnableNetworkIsolation.

The image, the code, the hyperparameters and the build may all differ, so consecutive jobs of this
repository match as long as the role, instance type and count and volume size stay the same.
Before submitting, the launcher lists the pools that are Available (ListTrainingJobs with
WarmPoolStatusEquals, then DescribeTrainingJob for each), says which one the job will reuse or
why none matches, and after the job says whether it did (the pool's WarmPoolStatus becomes Reused
with ReusedByJob). Limits (AWS docs): at most 3600 s; not with spot instances; the account's warm
pool quota per instance type starts at 0 (Service Quotas, "... for training warm pool usage").
The launcher does not set keep-alive on tuning jobs: SageMaker documents warm pools for training jobs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime

from launcher.errors import LaunchError

MAX_KEEP_ALIVE_SECONDS = 3600
MATCHED = (
    "RoleArn",
    "InstanceCount",
    "InstanceType",
    "VolumeKmsKeyId",
    "VolumeSizeInGB",
    "SecurityGroupIds",
    "Subnets",
    "EnableInterContainerTrafficEncryption",
    "EnableNetworkIsolation",
)
CANDIDATES = 10  # Available pools looked at (newest first)


def check_keep_alive(value: object, use_spot: bool) -> int:
    """The keep_alive_seconds setting: a whole number of seconds, 0 to 3600, and not with spot."""
    number = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_KEEP_ALIVE_SECONDS:
        raise LaunchError(
            f"keep_alive_seconds={value!r} must be a whole number of seconds from 0 to "
            f"{MAX_KEEP_ALIVE_SECONDS} (SageMaker keeps a warm pool at most an hour)"
        )
    if number and use_spot:
        raise LaunchError(
            f"keep_alive_seconds={number} with use_spot=True: SageMaker warm pools cannot be used with "
            "spot instances; set keep_alive_seconds=0 or use_spot=False"
        )
    return number


def describe_setting(seconds: int) -> list[str]:
    if not seconds:
        return []
    return [
        f"Warm pool:        kept {seconds} s after the job for the next matching one "
        "(needs a warm pool quota for the instance type)"
    ]


@dataclass(frozen=True)
class WarmPoolCheck:
    """What ListTrainingJobs/DescribeTrainingJob said about the pools this job could start on."""

    match: str | None = None  # the pooled job whose instances this job should get
    seconds_left: int | None = None
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # pooled job -> differences
    skipped: str = ""  # why no lookup was made

    def worth_saying(self, spec) -> bool:
        """Quiet when there is nothing to reuse and the job keeps no pool itself."""
        return bool(self.match or self.mismatches or spec.keep_alive_seconds)

    def describe(self) -> str:
        if self.skipped:
            return f"Warm pool:     {self.skipped}"
        if self.match:
            left = f", about {self.seconds_left} s left" if self.seconds_left is not None else ""
            return (
                f"Warm pool:     reusing the warm pool of {self.match} (Available{left}): same role, "
                "instance type and count, volume and network, so SageMaker starts this job on it"
            )
        if not self.mismatches:
            return "Warm pool:     none available; this job starts on new instances"
        lines = [f"Warm pool:     {len(self.mismatches)} available, none matches this job:"]
        lines += [f"                 {job}: {'; '.join(diffs)}" for job, diffs in self.mismatches.items()]
        return "\n".join(lines)


def wanted(spec) -> dict:
    """The matched values of the job a TrainingJobSpec describes (no KMS key, VPC or isolation)."""
    return {
        "RoleArn": spec.role_arn,
        "InstanceCount": spec.instance_count,
        "InstanceType": spec.instance_type,
        "VolumeKmsKeyId": None,
        "VolumeSizeInGB": spec.volume_size_gb,
        "SecurityGroupIds": None,
        "Subnets": None,
        "EnableInterContainerTrafficEncryption": False,
        "EnableNetworkIsolation": False,
    }


def matched_values(description: dict) -> dict:
    """The matched values of a job, from its DescribeTrainingJob answer (or a CreateTrainingJob request)."""
    resources, vpc = description.get("ResourceConfig") or {}, description.get("VpcConfig") or {}
    return {
        "RoleArn": description.get("RoleArn"),
        "InstanceCount": resources.get("InstanceCount"),
        "InstanceType": resources.get("InstanceType"),
        "VolumeKmsKeyId": resources.get("VolumeKmsKeyId") or None,
        "VolumeSizeInGB": resources.get("VolumeSizeInGB"),
        "SecurityGroupIds": sorted(vpc["SecurityGroupIds"]) if vpc.get("SecurityGroupIds") else None,
        "Subnets": sorted(vpc["Subnets"]) if vpc.get("Subnets") else None,
        "EnableInterContainerTrafficEncryption": bool(
            description.get("EnableInterContainerTrafficEncryption", False)
        ),
        "EnableNetworkIsolation": bool(description.get("EnableNetworkIsolation", False)),
    }


def differences(ours: dict, pooled: dict) -> list[str]:
    return [
        f"{name} {pooled.get(name)!r} (this job: {ours.get(name)!r})"
        for name in MATCHED
        if ours.get(name) != pooled.get(name)
    ]


def find(boto_session, spec, now: datetime | None = None) -> WarmPoolCheck:
    """The Available warm pool this job should start on, or why there is none (never raises for AWS)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if spec.use_spot:
        return WarmPoolCheck(skipped="not used: spot jobs cannot start on a warm pool")
    client = boto_session.client("sagemaker")
    try:
        summaries = client.list_training_jobs(
            WarmPoolStatusEquals="Available",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=CANDIDATES,
        ).get("TrainingJobSummaries", [])
        pooled = [
            s["TrainingJobName"]
            for s in summaries
            if (s.get("WarmPoolStatus") or {}).get("Status") == "Available"  # moto lists them all
        ]
        descriptions = [client.describe_training_job(TrainingJobName=name) for name in pooled]
    except (ClientError, BotoCoreError) as error:
        return WarmPoolCheck(skipped=f"could not list warm pools ({error}); SageMaker still reuses a match")
    ours, mismatches = wanted(spec), {}
    for description in descriptions:
        diffs = differences(ours, matched_values(description))
        if not diffs:
            return WarmPoolCheck(
                match=description["TrainingJobName"], seconds_left=_seconds_left(description, now)
            )
        mismatches[description["TrainingJobName"]] = diffs
    return WarmPoolCheck(mismatches=mismatches)


def report_reuse(boto_session, job_name: str, pooled_job: str | None) -> str | None:
    """After the job started: did it take ``pooled_job``'s warm pool? (None when nothing to say.)"""
    from botocore.exceptions import BotoCoreError, ClientError

    if not pooled_job:
        return None
    try:
        status = (
            boto_session.client("sagemaker")
            .describe_training_job(TrainingJobName=pooled_job)
            .get("WarmPoolStatus")
            or {}
        )
    except (ClientError, BotoCoreError):
        return None
    if status.get("Status") == "Reused" and status.get("ReusedByJob") == job_name:
        return f"{job_name} started on the warm pool of {pooled_job}"
    return (
        f"{job_name} did not reuse the warm pool of {pooled_job} (it is {status.get('Status', 'gone')}"
        + (f", taken by {status['ReusedByJob']}" if status.get("ReusedByJob") else "")
        + ")"
    )


def _seconds_left(description: dict, now: datetime | None) -> int | None:
    keep = (description.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    ended = description.get("TrainingEndTime")
    if not keep or not isinstance(ended, datetime):
        return None
    elapsed = ((now or datetime.now(UTC)) - ended).total_seconds()
    return max(0, int(keep - elapsed))


def print_check(check: WarmPoolCheck) -> None:
    print(check.describe(), file=sys.stdout, flush=True)
