"""Every rule for the template's answers and the run-time settings, in one place.

The template's pre-generation hook (which loads this very file from the template, unrendered),
project_file.py, the trainer's config, the launcher and the notebook-instance tool all check values
with these functions, so a value is accepted or refused the same way everywhere.

Each rule is one function ``rule(value, field) -> value``: it returns the value unchanged when it
is good and raises RuleError otherwise, naming the field, the value (repr) and what to do. Whole
values are matched with ``re.fullmatch`` on ASCII character classes (Python's ``\\d`` and ``\\w``
also match other scripts' digits and letters), and no value may start or end with whitespace or
hold a control or invisible character. ``RULES`` maps field names to their rules.

Standard library only. When botocore can be imported, instance types are checked against its
SageMaker service model: the list the SageMaker SDK itself validates against.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import re
import unicodedata
from collections.abc import Callable, Mapping

__all__ = ["RULES", "RuleError", "check", "check_answers"]

FREE_TEXT_MAX = 500
SHOWN_MAX = 120  # longer values are shown cut, with their length

# Names at the top of a generated repository (and ones a build must not take): a build folder may
# be none of them, nor lie inside one. Compared case-insensitively (macOS and Windows file systems).
REPOSITORY_NAMES = frozenset(
    {
        "src",
        "tests",
        "tests_launcher",
        "tools",
        "builds",
        "runs",
        "results",
        "docker",
        "requirements",
        "launcher",
        "unity_sim",
        "benchmarks",
        "__pycache__",
        "makefile",
        "readme.md",
        "launch.py",
        "project.toml",
        "pyproject.toml",
        "job_launcher.ipynb",
    }
)
# Hidden names (.git, .github, .venv, ...) are refused by the part pattern: a part starts with a
# letter or digit.
WRONG_PLATFORM_SUFFIXES = (".exe", ".app", ".dll", ".dylib", ".bat", ".cmd")

_A = re.ASCII
_PATH_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._+-]*[A-Za-z0-9_+-])?", _A)
_SLUG = re.compile(r"[a-z_][a-z0-9_]*", _A)
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}", _A)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", _A)
_DOTTED_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", _A)
_ECR_REPOSITORY = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
_ECR_IMAGE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2})"
    r"\.amazonaws\.com(?P<cn>\.cn)?"
    rf"/(?P<repository>{_ECR_REPOSITORY})"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@sha256:(?P<digest>[a-f0-9]{64}))?",
    _A,
)
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>[0-9]{12}):role/"
    r"(?P<path>(?:[A-Za-z0-9_+=,.@-]+/)*)(?P<name>[A-Za-z0-9_+=,.@-]{1,64})",
    _A,
)
_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+", _A)
_S3_KEY = re.compile(r"[A-Za-z0-9!_.*'() /+=@,-]+", _A)
_BASE_JOB_NAME = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,47}", _A)  # + "-YYYYmmddHHMMSS" <= 63
_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}", _A)
_ENTRY_POINT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py", _A)

_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_CHARACTER_NAMES = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a newline",
    "\r": "a carriage return",
    "\x0b": "a vertical tab",
    "\x0c": "a form feed",
    "\x00": "a NUL character",
    "\xa0": "a no-break space",
    "\u200b": "a zero-width space",
    "\ufeff": "a byte-order mark",
}


class RuleError(ValueError):
    """A value breaks its rule. ``str()`` is ``field=<repr of value>: <problem and what to do>``."""

    def __init__(self, field: str, value: object, problem: str):
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field}={shown(value)}: {problem}")


def shown(value: object) -> str:
    """``repr(value)``, cut (with the length said) when it is long."""
    if isinstance(value, str) and len(value) > SHOWN_MAX:
        return f"{value[:SHOWN_MAX]!r}... ({len(value)} characters)"
    return repr(value)


def describe(char: str) -> str:
    """A character named so a reader can see it: 'a newline', 'U+0441 CYRILLIC SMALL LETTER ES'."""
    if char in _CHARACTER_NAMES:
        return f"{_CHARACTER_NAMES[char]} (U+{ord(char):04X})"
    return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"


# ------------------------------------------------------------------------------------ building blocks


def _text(value: object, field: str, example: str, *, spaces_inside: bool = False) -> str:
    """A plain, one-line ASCII value: the checks every identifier-like rule starts with."""
    if not isinstance(value, str):
        raise RuleError(field, value, f"must be text, not {type(value).__name__}; e.g. {example!r}")
    if not value:
        raise RuleError(field, value, f"is empty: give a value such as {example!r}")
    if value != value.strip():
        where, char = ("start", value[0]) if value[0].isspace() else ("end", value[-1])
        raise RuleError(
            field, value, f"has {describe(char)} at the {where}: remove it (e.g. {value.strip()!r})"
        )
    for position, char in enumerate(value):
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES or (char.isspace() and not spaces_inside):
            raise RuleError(
                field,
                value,
                f"contains {describe(char)} at position {position}: remove it (e.g. {example!r})",
            )
        if not char.isascii():
            raise RuleError(
                field,
                value,
                f"contains the non-ASCII character {describe(char)} at position {position} (a look-alike "
                f"letter?): type it in plain ASCII, e.g. {example!r}",
            )
    return value


def _refuse(field: str, value: object, problem: str):
    raise RuleError(field, value, problem)


def partition_of(region: str) -> str:
    """The AWS partition of a region code: aws, aws-cn, aws-us-gov, ..."""
    for prefix, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("eusc-", "aws-eusc"),
    ):
        if region.startswith(prefix):
            return partition
    return "aws"


def _partition_name(region: str) -> str:
    partition = partition_of(region)
    label = {"aws-cn": "the China partition", "aws-us-gov": "AWS GovCloud (US)"}.get(partition)
    return f"{partition} ({label})" if label else partition


# ------------------------------------------------------------------------------------------ free text


def free_text(value: object, field: str = "project_name") -> str:
    """A name, description or author: anything printable, up to 500 characters, kept as typed.

    Quotes, backslashes, newlines, emoji and right-to-left text are all fine (every file that
    embeds them escapes them); a NUL or a lone surrogate cannot be written to a text file.
    """
    if not isinstance(value, str):
        _refuse(field, value, f"must be text, not {type(value).__name__}")
    if not value.strip():
        _refuse(field, value, "must not be empty or only whitespace: type a few words")
    if "\x00" in value:
        _refuse(field, value, f"contains a NUL character at position {value.index(chr(0))}: remove it")
    surrogate = next((c for c in value if unicodedata.category(c) == "Cs"), None)
    if surrogate is not None:
        _refuse(
            field,
            value,
            f"contains a lone surrogate (U+{ord(surrogate):04X}), which no text file can hold: "
            "retype the character it was meant to be",
        )
    if len(value) > FREE_TEXT_MAX:
        _refuse(field, value, f"is {len(value)} characters long: keep it to at most {FREE_TEXT_MAX}")
    return value


# -------------------------------------------------------------------------------------- identifiers


def project_slug(value: object, field: str = "project_slug") -> str:
    """The generated folder's and package's name: a lowercase Python identifier."""
    example = "my_unity_rl"
    _text(value, field, example)
    if not _SLUG.fullmatch(value) or keyword.iskeyword(value):
        _refuse(
            field,
            value,
            "must be a lowercase Python identifier (letters, digits, underscores, not starting with a "
            f"digit, not a keyword) so it can name both the folder and the package; pick e.g. {example!r}",
        )
    if len(value) > 64:
        _refuse(field, value, f"is {len(value)} characters long: at most 64")
    return value


def region(value: object, field: str = "aws_region") -> str:
    """An AWS region code such as us-east-1."""
    _text(value, field, "us-east-1")
    if not _REGION.fullmatch(value):
        _refuse(field, value, "must be an AWS region code such as 'us-east-1' or 'eu-west-2'")
    return value


def bucket(value: object, field: str = "s3_bucket") -> str:
    """An S3 general-purpose bucket name, by S3's naming rules (including the reserved forms)."""
    _text(value, field, "my-unity-builds")
    rules = (
        "S3 bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, start and end "
        "with a letter or digit, contain no '..', are not an IP address, do not start with 'xn--', "
        "'sthree-' or 'amzn-s3-demo-', and do not end with '-s3alias', '--ol-s3', '.mrap', '--x-s3' or "
        "'--table-s3'"
    )
    if not 3 <= len(value) <= 63:
        _refuse(field, value, f"is {len(value)} characters long; {rules}")
    if not _BUCKET.fullmatch(value):
        _refuse(field, value, rules)
    if ".." in value:
        _refuse(field, value, f"contains '..'; {rules}")
    if _DOTTED_QUAD.fullmatch(value):
        _refuse(field, value, f"is formatted as an IP address; {rules}")
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if value.startswith(prefix):
            _refuse(field, value, f"starts with the reserved prefix {prefix!r}; {rules}")
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if value.endswith(suffix):
            _refuse(field, value, f"ends with the reserved suffix {suffix!r}; {rules}")
    return value


def ecr_image_uri(value: object, field: str = "ecr_image_uri", job_region: str | None = None) -> str:
    """A private ECR image; with ``job_region``, also in the same partition as the job."""
    expected = (
        "expected <12-digit account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@sha256:<64 hex>] "
        "with a lowercase repository name, "
        "e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-rl-image:latest"
    )
    _text(value, field, "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-rl-image:latest")
    if len(value) > 255:
        _refuse(field, value, f"is {len(value)} characters long: SageMaker takes at most 255")
    found = _ECR_IMAGE.fullmatch(value)
    if found is None:
        if "public.ecr.aws" in value or ".dkr.ecr." not in value:
            _refuse(
                field,
                value,
                "is not a private ECR image: SageMaker training pulls from ECR in your account "
                f"(push the training image with `make image`); {expected}",
            )
        _refuse(field, value, expected)
    image_region = found["region"]
    if bool(found["cn"]) != image_region.startswith("cn-"):
        _refuse(
            field,
            value,
            f"the '.amazonaws.com.cn' domain goes with cn-* regions (and only with them); {expected}",
        )
    if job_region is not None and partition_of(image_region) != partition_of(job_region):
        _refuse(
            field,
            value,
            f"the image is in region {image_region!r} but jobs run in {job_region!r}: SageMaker cannot pull "
            f"an image across the boundary between {_partition_name(image_region)} and "
            f"{_partition_name(job_region)}; push the image to ECR in {job_region}",
        )
    if job_region is not None and image_region != job_region:
        # CreateTrainingJob refuses it ("Invalid DNS suffix ... for region ... in training image"),
        # as CreateModel does ("Cross region ECR image pulls are not allowed").
        _refuse(
            field,
            value,
            f"the image is in region {image_region!r} but jobs run in {job_region!r}: SageMaker pulls the "
            f"training image only from ECR in the job's own region; push the image to ECR in {job_region} "
            f"(docker/build_and_push.sh), or run the jobs in {image_region}",
        )
    return value


def image_region(uri: str) -> str:
    """The region of a checked ECR image URI."""
    return _ECR_IMAGE.fullmatch(ecr_image_uri(uri))["region"]


def role_arn(value: object, field: str = "role", job_region: str | None = None) -> str:
    """An IAM role ARN; with ``job_region``, also from that region's partition."""
    example = "arn:aws:iam::123456789012:role/SageMakerRole"
    _text(value, field, example)
    found = _ROLE_ARN.fullmatch(value)
    if found is None or len(value) > 2048:
        _refuse(
            field,
            value,
            "is not an IAM role ARN: expected arn:<partition>:iam::<12-digit account>:role/[<path>/]<name> "
            f"(a name of 1-64 letters, digits and +=,.@_-), e.g. {example!r}",
        )
    if job_region is not None and found["partition"] != partition_of(job_region):
        _refuse(
            field,
            value,
            f"is in partition {found['partition']!r} but region {job_region} is in "
            f"{partition_of(job_region)!r}: use a role from the region's partition",
        )
    return value


@functools.cache
def sagemaker_enum(operation: str, *members: str) -> tuple[str, ...] | None:
    """The values botocore's SageMaker model allows for ``operation``'s member path (None: no botocore)."""
    try:
        import botocore.session
    except ImportError:
        return None
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model(operation).input_shape
    for member in members:
        shape = shape.members[member]
    return tuple(shape.enum)


def _instance_type(
    value: object, field: str, kind: str, allowed: tuple[str, ...] | None, example: str
) -> str:
    _text(value, field, example)
    if not _INSTANCE_TYPE.fullmatch(value):
        _refuse(field, value, f"must be a SageMaker {kind} instance type such as {example!r}")
    if allowed is not None and value not in allowed:
        family = value.split(".")[1]
        close = [name for name in allowed if name.split(".")[1] == family][:8]
        close = close or difflib.get_close_matches(value, allowed, n=4, cutoff=0.6)
        _refuse(
            field,
            value,
            f"is not a SageMaker {kind} instance type (botocore's SageMaker model lists {len(allowed)}); "
            + (f"did you mean one of {', '.join(close)}?" if close else f"try {example!r}"),
        )
    return value


def training_instance_types() -> tuple[str, ...] | None:
    """CreateTrainingJob's ResourceConfig.InstanceType values (None: no botocore)."""
    return sagemaker_enum("CreateTrainingJob", "ResourceConfig", "InstanceType")


def notebook_instance_types() -> tuple[str, ...] | None:
    """CreateNotebookInstance's InstanceType values (None: no botocore)."""
    return sagemaker_enum("CreateNotebookInstance", "InstanceType")


def training_instance_type(value: object, field: str = "instance_type") -> str:
    """A training instance type (CreateTrainingJob's ResourceConfig.InstanceType)."""
    return _instance_type(value, field, "training", training_instance_types(), "ml.c5.2xlarge")


def notebook_instance_type(value: object, field: str = "instance_type") -> str:
    """A notebook instance type (CreateNotebookInstance's InstanceType)."""
    return _instance_type(value, field, "notebook", notebook_instance_types(), "ml.t3.medium")


# ----------------------------------------------------------------------------- the Unity build


def executable(value: object, field: str = "unity_executable") -> str:
    """The Unity player's file name inside the build (with or without .x86_64)."""
    example = "3DBall"
    _text(value, field, example, spaces_inside=True)
    if value in (".", "..") or not _PATH_PART.fullmatch(value) or len(value.encode()) > 255:
        _refuse(
            field,
            value,
            f"must be a plain file name such as {example!r} or '3DBall.x86_64' (no folders, no '/'; letters, "
            "digits, '._+-' and spaces inside; at most 255 bytes; not ending in '.' or a space)",
        )
    if value.lower().endswith(WRONG_PLATFORM_SUFFIXES):
        _refuse(
            field,
            value,
            "names a Windows/macOS build; SageMaker runs Linux, so build the Unity player for Linux (x86_64) "
            "and give its executable name, e.g. '3DBall' or '3DBall.x86_64'",
        )
    return value


def build_folder(value: object, field: str = "unity_build_folder", zip_key: str | None = None) -> str:
    """The folder (relative to the repository) the build is extracted into, and replaced on update.

    Whatever it names is deleted when a new build replaces the old one, so it must be a folder of
    its own: not the repository or an ancestor, not one of the repository's folders (src, tests,
    builds, runs, ...) or inside one, and not the folder that holds the zip (``zip_key``).
    """
    example = "unity_build"
    what = (
        "a relative folder of its own such as 'unity_build' or 'env/walker' (letters, digits, '._+-' and "
        "spaces inside each part, '/' between parts, no '.', '..' or empty parts, no leading '/')"
    )
    _text(value, field, example, spaces_inside=True)
    if value.rstrip("/") in (".", "./."):
        _refuse(
            field,
            value,
            f"names the repository itself, which would be deleted when a new build replaces the old one: "
            f"use {what}",
        )
    if value.startswith(("/", "~")):
        _refuse(field, value, f"is not relative: use {what}")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            which = {"": "an empty part ('//' or a trailing '/')", ".": "a '.' part"}.get(
                part, "a '..' part (it leaves the folder it names)"
            )
            _refuse(field, value, f"has {which}: use {what}")
        if not _PATH_PART.fullmatch(part) or len(part.encode()) > 255:
            _refuse(field, value, f"has the part {part!r}: use {what}")
    if len(value.encode()) > 1024:
        _refuse(field, value, f"is {len(value.encode())} bytes long: at most 1024")
    if parts[0].lower() in REPOSITORY_NAMES:
        _refuse(
            field,
            value,
            f"{'is' if len(parts) == 1 else 'lies inside'} the repository's own {parts[0]!r}, whose files "
            "would be deleted when a new build replaces the old one: pick a folder of its own, "
            f"e.g. {example!r}",
        )
    if zip_key is not None and (zip_key.lower() + "/").startswith(value.lower() + "/"):
        _refuse(
            field,
            value,
            f"holds the build zip {zip_key!r}, which would be deleted with the old build: extract into "
            f"another folder, e.g. {example!r}",
        )
    return value


def build_zip_key(value: object, field: str = "unity_build_zip_key") -> str:
    """The S3 key (and, locally, the repository-relative path) of the zipped Unity Linux build."""
    example = "builds/3DBall.zip"
    _text(value, field, example, spaces_inside=True)
    if value.startswith("/") or not _S3_KEY.fullmatch(value):
        _refuse(
            field,
            value,
            f"must be an S3 object key such as {example!r} made of S3's safe characters (letters, digits, "
            "spaces and !-_.*'()/+=@,), without a leading '/'",
        )
    if len(value.encode()) > 1024:
        _refuse(field, value, f"is {len(value.encode())} bytes long: the S3 key limit is 1024")
    if any(part in ("", ".", "..") for part in value.split("/")):
        _refuse(field, value, "must not have '.', '..' or empty parts ('//')")
    if not value.lower().endswith(".zip"):
        _refuse(field, value, f"must name a .zip archive of the Unity Linux build, e.g. {example!r}")
    return value


def s3_uri(value: object, field: str = "build_key") -> tuple[str, str]:
    """``s3://bucket/key.zip`` split into its checked bucket and key."""
    _text(value, field, "s3://my-bucket/builds/3DBall.zip", spaces_inside=True)
    if not value.startswith("s3://"):
        _refuse(field, value, "must start with s3:// (s3://<bucket>/<key>.zip)")
    name, _, key = value[5:].partition("/")
    try:
        return bucket(name, field + " (bucket)"), build_zip_key(key, field + " (key)")
    except RuleError as error:
        raise RuleError(field, value, f"{error.field}: {error.problem}") from None


# ---------------------------------------------------------------------------- SageMaker names


def base_job_name(value: object, field: str = "base_job_name") -> str:
    """A training job name prefix: the SDK adds -YYYYmmddHHMMSS, and the whole stays within 63."""
    _text(value, field, "unity-rl-ppo")
    if not _BASE_JOB_NAME.fullmatch(value):
        _refuse(
            field,
            value,
            "must be 1-48 letters, digits and hyphens, starting and ending with a letter or digit",
        )
    return value


def sagemaker_name(value: object, field: str = "name") -> str:
    """A notebook instance, code repository or lifecycle configuration name."""
    _text(value, field, "unity-sagemaker-rl")
    if not _SAGEMAKER_NAME.fullmatch(value):
        example = re.sub(r"[^A-Za-z0-9]+", "-", value.encode("ascii", "ignore").decode()).strip("-")[:63]
        _refuse(
            field,
            value,
            "is not a valid SageMaker name: 1-63 letters, digits and hyphens, starting and ending with a "
            f"letter or digit (for example {(example.rstrip('-') or 'rl-notebook')!r})",
        )
    return value


def entry_point(value: object, field: str = "entry_point") -> str:
    """A training script's file name in src/."""
    _text(value, field, "ppo_trainer.py")
    if not _ENTRY_POINT.fullmatch(value):
        _refuse(field, value, "must be the file name of a script in src/, e.g. 'ppo_trainer.py'")
    return value


ALGORITHMS = ("ppo", "tf", "random", "all")


def algorithm(value: object, field: str = "algorithm") -> str:
    """The example trainer(s) the repository was generated with."""
    if value not in ALGORITHMS:
        _refuse(field, value, f"must be one of {', '.join(ALGORITHMS)}")
    return value


# --------------------------------------------------------------------------------- the tables

Rule = Callable[[object, str], object]

RULES: dict[str, Rule] = {
    # The template's answers (cookiecutter.json).
    "project_name": free_text,
    "project_description": free_text,
    "author_name": free_text,
    "project_slug": project_slug,
    "aws_region": region,
    "s3_bucket": bucket,
    "ecr_image_uri": ecr_image_uri,
    "algorithm": algorithm,
    "unity_build_zip_key": build_zip_key,
    "unity_build_folder": build_folder,
    "unity_executable": executable,
    "instance_type": training_instance_type,
    # Run-time settings under other names (the launcher, the notebook tool, the trainer's config).
    "region": region,
    "bucket": bucket,
    "image_uri": ecr_image_uri,
    "role": role_arn,
    "role_arn": role_arn,
    "build_key": build_zip_key,
    "build_folder": build_folder,
    "zip_env_name": build_zip_key,
    "env_file": executable,
    "executable": executable,
    "base_job_name": base_job_name,
    "entry_point": entry_point,
    "notebook_instance_type": notebook_instance_type,
    "notebook_instance_name": sagemaker_name,
    "code_repository_name": sagemaker_name,
    "lifecycle_config_name": sagemaker_name,
}


def check(field: str, value: object) -> object:
    """``value`` checked by the rule of ``field`` (a KeyError for a field without one)."""
    return RULES[field](value, field)


ANSWER_FIELDS = (
    "project_name",
    "project_slug",
    "project_description",
    "author_name",
    "aws_region",
    "s3_bucket",
    "ecr_image_uri",
    "algorithm",
    "unity_build_zip_key",
    "unity_build_folder",
    "unity_executable",
    "instance_type",
)


def check_answers(answers: Mapping[str, object]) -> tuple[list[RuleError], list[str]]:
    """Every template answer by its rule, plus the rules across answers: (errors, warnings)."""
    errors: list[RuleError] = []
    for field in ANSWER_FIELDS:
        try:
            check(field, answers.get(field))
        except RuleError as error:
            errors.append(error)
    bad = {error.field for error in errors}
    warnings: list[str] = []
    if not {"aws_region", "ecr_image_uri"} & bad:
        try:
            ecr_image_uri(answers["ecr_image_uri"], "ecr_image_uri", answers["aws_region"])
        except RuleError as error:
            errors.append(error)
    if "instance_type" not in bad and training_instance_types() is None:
        warnings.append(
            f"instance_type={answers['instance_type']!r} was only checked against the pattern "
            "ml.<family>.<size>: botocore is not installed here, so the list of SageMaker's instance types "
            "is not at hand"
        )
    if not {"unity_build_folder", "unity_build_zip_key"} & bad:
        try:
            build_folder(answers["unity_build_folder"], "unity_build_folder", answers["unity_build_zip_key"])
        except RuleError as error:
            errors.append(error)
    return errors, warnings
