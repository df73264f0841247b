"""Check every template answer before anything is rendered.

cookiecutter renders this file with Jinja before running it. The answers are
pasted in once, as a JSON document inside a JSON string literal, and parsed as
data: no answer is ever spliced into Python source, so quotes, backslashes,
newlines or Jinja syntax in an answer cannot change what this hook does.

A bad answer stops generation with exit code 1; cookiecutter then removes the
half-made output folder. Each message names the field, the value and the rule.
"""

from __future__ import annotations

import ipaddress
import json
import keyword
import re
import sys
from pathlib import Path

ANSWERS: dict = json.loads({{ cookiecutter | jsonify(indent=None) | jsonify(indent=None) }})
TEMPLATE_OPTIONS: dict = json.loads({{ _cookiecutter | default({}) | jsonify(indent=None) | jsonify(indent=None) }})

BUCKET_RULES = (
    "S3 bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, "
    "start and end with a letter or digit, contain no '..', are not an IP address, "
    "and do not start with 'xn--' or 'sthree-' or end with '-s3alias' or '--ol-s3'"
)
ECR_PATTERN = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@sha256:(?P<digest>[a-f0-9]{64}))?$"
)
ECR_RULES = (
    "expected <12-digit account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@sha256:<64 hex>], "
    "with a lowercase repository name, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-rl-image:latest"
)
INSTANCE_PATTERN = re.compile(r"^ml\.[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+$")
SAFE_S3_KEY = re.compile(r"^[A-Za-z0-9!_.*'() /+=@,-]+$")
SAFE_PATH_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]*$")
WRONG_PLATFORM_SUFFIXES = (".exe", ".app", ".dll", ".dylib")


def check_project_slug(slug: str) -> str | None:
    if not slug.isidentifier() or not slug.isascii() or slug != slug.lower() or keyword.iskeyword(slug):
        return (
            "must be a lowercase Python identifier (letters, digits, underscores, not starting with a digit, "
            "not a keyword) so it can name both the folder and the package; pick e.g. 'my_unity_rl'"
        )
    if len(slug) > 64:
        return "must be at most 64 characters"
    return None


def check_free_text(text: str) -> str | None:
    if not text.strip():
        return "must not be empty"
    if "\x00" in text:
        return "must not contain a NUL character"
    if len(text) > 500:
        return "must be at most 500 characters"
    return None


def check_bucket(bucket: str) -> str | None:
    broken = (
        not 3 <= len(bucket) <= 63
        or re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", bucket) is None
        or ".." in bucket
        or bucket.startswith(("xn--", "sthree-"))
        or bucket.endswith(("-s3alias", "--ol-s3"))
    )
    if not broken:
        try:
            ipaddress.IPv4Address(bucket)
            broken = True
        except ValueError:
            pass
    return BUCKET_RULES if broken else None


def check_ecr_image(uri: str, region: str) -> tuple[str | None, str | None]:
    """Return (error, warning) for the image URI."""
    match = ECR_PATTERN.match(uri)
    if match is None:
        return ECR_RULES, None
    image_region = match["region"]
    in_china = bool(match["cn"])
    if in_china != image_region.startswith("cn-"):
        return "the '.amazonaws.com.cn' domain goes with cn-* regions, and only with them; " + ECR_RULES, None
    if in_china != region.startswith("cn-"):
        return (
            f"the image is in region {image_region!r} but jobs run in {region!r}: "
            "SageMaker cannot pull an image across the China partition boundary; push the image to "
            f"an ECR registry in {region}",
            None,
        )
    if image_region != region:
        return None, (
            f"ecr_image_uri is in {image_region} but jobs run in {region}: every job will pull the image "
            "across regions (slower start, data-transfer cost). Consider pushing it to ECR in "
            f"{region}."
        )
    return None, None


def check_zip_key(key: str) -> str | None:
    if not key or key.startswith("/") or not SAFE_S3_KEY.match(key):
        return (
            "must be an S3 object key such as 'builds/3DBall.zip' made of S3's safe characters "
            "(letters, digits, spaces and !-_.*'()/+=@,), without a leading '/'"
        )
    if len(key.encode()) > 1024:
        return "must be at most 1024 bytes (the S3 key limit)"
    if ".." in key.split("/"):
        return "must not contain '..' segments"
    if not key.lower().endswith(".zip"):
        return "must name a .zip archive of the Unity Linux build, e.g. 'builds/3DBall.zip'"
    return None


def check_build_folder(folder: str) -> str | None:
    parts = folder.split("/")
    if folder.startswith("/") or not all(SAFE_PATH_PART.match(p) for p in parts) or ".." in parts:
        return (
            "must be a relative folder such as 'unity_build' (letters, digits, '._+-' and spaces, "
            "'/' between parts, no '..', no leading '/')"
        )
    return None


def check_executable(name: str) -> str | None:
    if not SAFE_PATH_PART.match(name) or name in {".", ".."}:
        return (
            "must be a plain file name such as '3DBall' or '3DBall.x86_64' (no folders, no '/', "
            "letters, digits, '._+-' and spaces)"
        )
    if name.lower().endswith(WRONG_PLATFORM_SUFFIXES):
        return (
            "names a Windows/macOS build; SageMaker runs Linux, so build the Unity player for "
            "Linux (x86_64) and give its executable name, e.g. '3DBall' or '3DBall.x86_64'"
        )
    return None


def check_instance_type(instance_type: str) -> str | None:
    if INSTANCE_PATTERN.match(instance_type) is None:
        return "must be a SageMaker instance type such as 'ml.c5.2xlarge' or 'ml.g5.xlarge'"
    return None


def validate(answers: dict, choices: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Return (errors, warnings) as ready-to-print sentences."""
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []

    def field(name: str) -> str:
        value = answers.get(name)
        if not isinstance(value, str):
            errors.append((name, f"must be text, got {type(value).__name__}"))
            return ""
        return value

    for name, allowed in choices.items():
        value = field(name)
        if value and value not in allowed:
            errors.append((name, "must be one of " + ", ".join(allowed)))
    region = field("aws_region")
    if region and not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-\d", region):
        errors.append(("aws_region", "must be an AWS region code such as 'us-east-1'"))

    checks = {
        "project_name": check_free_text,
        "project_description": check_free_text,
        "author_name": check_free_text,
        "project_slug": check_project_slug,
        "s3_bucket": check_bucket,
        "unity_build_zip_key": check_zip_key,
        "unity_build_folder": check_build_folder,
        "unity_executable": check_executable,
        "instance_type": check_instance_type,
    }
    for name, check in checks.items():
        value = field(name)
        problem = check(value) if isinstance(answers.get(name), str) else None
        if problem:
            errors.append((name, problem))
    image = field("ecr_image_uri")
    if isinstance(answers.get("ecr_image_uri"), str):
        problem, warning = check_ecr_image(image, region)
        if problem:
            errors.append(("ecr_image_uri", problem))
        if warning:
            warnings.append(warning)

    messages = [f"{name}={answers.get(name)!r}: {problem}" for name, problem in errors]
    return messages, warnings


def main() -> int:
    choices = {name: template_choices(name) for name in ("aws_region", "algorithm")}
    errors, warnings = validate(ANSWERS, {name: allowed for name, allowed in choices.items() if allowed})
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if errors:
        print("The template answers have problems; nothing was generated:", file=sys.stderr)
        for message in errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    return 0


def template_choices(name: str) -> list[str] | None:
    """The choice list cookiecutter.json declares for a variable.

    The rendered answer is only the chosen item; cookiecutter keeps the declared
    options in ``_cookiecutter``. A replayed run only has the old answers there, and
    then there is no list to check against (None).
    """
    declared = TEMPLATE_OPTIONS.get(name)
    return list(declared) if isinstance(declared, list) else None


if __name__ == "__main__":
    sys.exit(main())
