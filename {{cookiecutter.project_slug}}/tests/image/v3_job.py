"""Lay out a SageMaker SDK v3 (ModelTrainer) job's /opt/ml the way the service would, for Docker.

Run by the container tests with the launcher's Python (requirements/locks/launcher-dev.txt), against
their loopback moto server (AWS_ENDPOINT_URL and fake credentials in the environment):

    python tests/image/v3_job.py --opt-ml DIR --build-zip 3DBall.zip --entry-point random_trainer.py \
        --hyperparameters '{"episodes": 2}' > request.json

It does what `launch.py --local-job` does up to the container (launcher/api.py run_local_job): the
SDK uploads src/ and its own drivers (sm_drivers: sm_train.sh and friends) and builds the
CreateTrainingJob request, which is held back; then launcher/container.py's layout step downloads
the channels into DIR as input/data/<channel>/ and writes input/config/*.json. Unlike a local job,
the paths stay /opt/ml (DIR is mounted there), and the drivers are left exactly as the SDK wrote
them. The request goes to stdout: the test runs its ContainerEntrypoint + ContainerArguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from launcher import api, aws, capture, container  # noqa: E402

REGION = "us-east-1"
BUILD_KEY = "builds/3DBall.zip"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ],
}


def project_file(folder: Path, bucket: str, entry_point: str) -> Path:
    path = folder / "project.toml"
    path.write_text(
        f"""[project]
name = "Image test"
slug = "image_test"

[aws]
region = "{REGION}"
s3_bucket = "{bucket}"
ecr_image_uri = "123456789012.dkr.ecr.{REGION}.amazonaws.com/unity-rl:test"
instance_type = "ml.c5.xlarge"

[training]
algorithm = "random"
entry_point = "{entry_point}"

[unity_build]
zip_key = "{BUILD_KEY}"
folder = "unity_build"
executable = "3DBall"
""",
        encoding="utf-8",
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opt-ml", type=Path, required=True)
    parser.add_argument("--build-zip", type=Path, required=True)
    parser.add_argument("--entry-point", default="random_trainer.py")
    parser.add_argument("--hyperparameters", default="{}")
    args = parser.parse_args()
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"  # its IAM policy simulation is not in moto

    bucket = f"image-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    boto3.client("s3", region_name=REGION).upload_file(str(args.build_zip), bucket, BUILD_KEY)
    role = boto3.client("iam").create_role(
        RoleName=f"SageMakerRole-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    settings = api.load_settings(
        project_file=str(project_file(args.opt_ml.parent, bucket, args.entry_point)),
        role=role,
        sdk="v3",
        hyperparameters=json.loads(args.hyperparameters),
    )
    # What api.run_local_job does before it runs the request (the SDK builds it; it is held back).
    sdk, session = api._sdk(settings), aws.session(settings.region)
    spec = api.describe_job(settings)
    try:
        with capture.hold_back(session, offline=False, bucket=spec.bucket):
            sdk.start(spec, session)
    except capture.RequestHeldBack as held:
        request = held.request
    else:
        sys.exit("the SDK made no CreateTrainingJob request")
    if not request["AlgorithmSpecification"].get("ContainerEntrypoint"):
        sys.exit(f"not an SDK v3 request (no ContainerEntrypoint): {request['AlgorithmSpecification']}")

    opt_ml = args.opt_ml.resolve()
    checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
    container._lay_out(request, opt_ml, session.client("s3"), checkpoint_uri)
    # The layout step moves /opt/ml paths to the local folder (a local job runs outside /opt/ml);
    # here the folder IS /opt/ml, so they go back.
    config = opt_ml / "input" / "config" / "hyperparameters.json"
    config.write_text(config.read_text().replace(str(opt_ml), container.OPT_ML))
    json.dump(request, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
