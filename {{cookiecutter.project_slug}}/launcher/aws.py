"""The checks that need AWS (made before anything is submitted), the build upload, and console links.

Every failure becomes a LaunchError that says which credentials, bucket or key is wrong and how to
fix it, instead of a botocore traceback halfway through a submission. boto3 honours
AWS_ENDPOINT_URL, so the same code runs against an S3-compatible endpoint or a local moto server.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from launcher.errors import LaunchError

CHECKSUM_KEY = "sha256"  # object metadata written by upload_build; lets a re-upload be skipped


def session(region: str):
    """A fresh boto3 session for one launcher operation (handlers registered on it stay local to it)."""
    import boto3

    return boto3.Session(region_name=region)


def check_credentials(boto_session) -> dict:
    """The caller's identity (account, ARN); LaunchError if there are no credentials or they are refused.

    An endpoint without STS (a 5xx or NotImplemented, as S3-compatible stacks answer) gets one warning
    line and an empty identity: the calls that follow say what is wrong, if anything is.
    """
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    if boto_session.get_credentials() is None:
        raise LaunchError(
            "no AWS credentials found: run `aws configure` (or `aws sso login` with AWS_PROFILE set), or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on a SageMaker notebook the instance's role "
            "provides them"
        )
    try:
        return boto_session.client("sts").get_caller_identity()
    except ResponseParserError:  # a 5xx with an HTML body
        return _unverified_credentials("HTTP 5xx")
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 or _code(error) in ("NotImplemented", "InvalidAction"):
            return _unverified_credentials(_code(error) or str(status))
        raise LaunchError(
            f"AWS refused these credentials ({_code(error)}: {_message(error)}): renew or fix them"
        ) from None
    except BotoCoreError as error:
        raise LaunchError(f"could not reach AWS STS to check the credentials: {error}") from None


def _unverified_credentials(why: str) -> dict:
    print(
        f"warning: could not verify the credentials (sts:GetCallerIdentity: {why}): continuing",
        file=sys.stderr,
    )
    return {}


def check_bucket(boto_session, bucket: str, region: str) -> None:
    """The bucket exists, these credentials can use it, and it is in the job's region."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto_session.client("s3")
    try:
        answer = s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = _code(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise LaunchError(
                f"s3_bucket={bucket!r} does not exist: create it (aws s3 mb s3://{bucket} --region {region}) "
                "or set [aws] s3_bucket in project.toml to your bucket"
            ) from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise LaunchError(
                f"access denied to s3_bucket={bucket!r}: it belongs to another account, or these "
                "credentials lack "
                f"s3:ListBucket on arn:aws:s3:::{bucket} (and s3:GetObject/PutObject on its objects)"
            ) from None
        if code in ("301", "400", "PermanentRedirect"):
            found = (
                error.response.get("ResponseMetadata", {})
                .get("HTTPHeaders", {})
                .get("x-amz-bucket-region", "?")
            )
            raise LaunchError(_wrong_region(bucket, found, region)) from None
        raise LaunchError(f"could not check s3_bucket={bucket!r} ({code}: {_message(error)})") from None
    except BotoCoreError as error:
        raise LaunchError(f"could not reach S3 to check s3_bucket={bucket!r}: {error}") from None
    found = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if found and found != region:
        raise LaunchError(_wrong_region(bucket, found, region))


def check_object(boto_session, bucket: str, key: str, setting: str = "build_key") -> int:
    """Size of s3://bucket/key; LaunchError naming ``setting`` if it is missing or unreadable."""
    from botocore.exceptions import ClientError

    try:
        return int(boto_session.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        code = _code(error)
        if code in ("404", "NoSuchKey", "NotFound"):
            raise LaunchError(
                f"{setting}: s3://{bucket}/{key} does not exist. Upload the zipped Unity build first "
                f"(notebook: local_build_zip=...; command line: --upload-build PATH; or aws s3 cp BUILD.zip s3://{bucket}/{key})"
            ) from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise LaunchError(
                f"{setting}: access denied reading s3://{bucket}/{key}: these credentials need "
                "s3:GetObject on it"
            ) from None
        raise LaunchError(
            f"{setting}: could not check s3://{bucket}/{key} ({code}: {_message(error)})"
        ) from None


def upload_build(boto_session, path: str | Path, bucket: str, key: str, progress: bool = True) -> bool:
    """Upload a local build zip to s3://bucket/key, with a progress bar; False if it was already there.

    "Already there" means same size and same checksum: the SHA-256 this function stores in the
    object's metadata, or for objects uploaded otherwise, a single-part ETag equal to the file's MD5.
    """
    from botocore.exceptions import ClientError

    file = Path(path).expanduser()
    if not file.is_file():
        raise LaunchError(
            f"local_build_zip={str(path)!r} does not exist: give the path of your zipped Unity Linux build"
        )
    if file.suffix != ".zip":
        raise LaunchError(f"local_build_zip={str(path)!r} is not a .zip: zip the Linux build folder first")
    size = file.stat().st_size
    sha256, md5 = _digests(file)
    s3 = boto_session.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _code(error) not in ("404", "NoSuchKey", "NotFound"):
            raise LaunchError(
                f"could not check s3://{bucket}/{key} ({_code(error)}: {_message(error)})"
            ) from None
        head = None
    if (
        head
        and head["ContentLength"] == size
        and (head.get("Metadata", {}).get(CHECKSUM_KEY) == sha256 or head.get("ETag", "").strip('"') == md5)
    ):
        print(
            f"s3://{bucket}/{key} is already this build ({size:,} bytes, same checksum): "
            "not uploading it again"
        )
        return False
    bar = _progress_bar(size, f"upload {file.name}") if progress else None
    try:
        s3.upload_file(
            str(file),
            bucket,
            key,
            ExtraArgs={"Metadata": {CHECKSUM_KEY: sha256}},
            Callback=bar.update if bar else None,
        )
    except ClientError as error:
        raise LaunchError(
            f"upload to s3://{bucket}/{key} failed ({_code(error)}: {_message(error)})"
        ) from None
    finally:
        if bar:
            bar.close()
    print(f"uploaded {file} to s3://{bucket}/{key} ({size:,} bytes)")
    return True


def console_links(region: str, job_name: str) -> tuple[str, str]:
    """(CloudWatch logs link, SageMaker console link) for a training job."""
    if region.startswith("cn-"):
        host = "console.amazonaws.cn"
    elif region.startswith("us-gov-"):
        host = "console.amazonaws-us-gov.com"
    else:
        host = f"{region}.console.aws.amazon.com"
    logs = (
        f"https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
        f"$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job_name}"
    )
    console = f"https://{host}/sagemaker/home?region={region}#/jobs/{job_name}"
    return logs, console


def _wrong_region(bucket: str, found: str, region: str) -> str:
    return (
        f"s3_bucket={bucket!r} is in region {found} but the job runs in {region}: SageMaker needs "
        "the bucket in "
        "the job's region; use a bucket there, or change region"
    )


def _digests(file: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(file, "rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _progress_bar(total: int, label: str):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        disable=os.environ.get("TQDM_DISABLE") == "1",
    )


def _code(error) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)
