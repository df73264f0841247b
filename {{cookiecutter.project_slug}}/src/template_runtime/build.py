"""Getting a Unity Linux build onto this machine: S3 download, safe unzip, executable search.

Support code for ``trainer.py`` (kept apart so ``trainer.py`` stays readable); an algorithm file
never imports it. Every function either finishes or leaves nothing behind: downloads go to a
temporary file, archives are checked member by member before anything is written and are
unpacked into a temporary sibling folder that is renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

MAX_EXTRACT_BYTES = 32 * 2**30
"""Refuse archives that expand to more than this (a real Unity build is a few GB at most)."""

MAX_MEMBERS = 200_000
"""Refuse archives with more entries than this (zip bombs made of many tiny files)."""

LINUX_SUFFIXES = (".x86_64", ".x86")
OTHER_PLATFORMS = {".exe": "Windows", ".app": "macOS"}
STAMP_FILE = ".unity_build_source.json"
"""Written into an extracted folder: which zip it came from, so an unchanged zip is not re-extracted."""

_COPY_CHUNK = 1 << 20


class UnityBuildError(RuntimeError):
    """The Unity build could not be obtained; the message says what to check."""


class BuildNotFoundError(UnityBuildError):
    """The zip, bucket, channel or folder named in the config does not exist."""


class BuildAccessError(UnityBuildError):
    """The build exists (probably) but these credentials may not read it."""


class UnsafeArchiveError(UnityBuildError):
    """The archive would write outside its folder, or is too big."""


class ExecutableNotFoundError(UnityBuildError):
    """No Linux executable matching ``env_file`` in the extracted build."""


# ----------------------------------------------------------------------------------------------
# S3


def split_s3_location(bucket: str, key: str) -> tuple[str, str]:
    """Accept ``zip_env_name`` as a key in ``bucket`` or as a full ``s3://bucket/key`` URI."""
    if key.startswith("s3://"):
        bucket, _, key = key[len("s3://") :].partition("/")
    key = key.lstrip("/")
    if not bucket:
        raise BuildNotFoundError(
            "bucket is empty: set config['bucket'] (or pass --bucket NAME), or give zip_env_name as "
            f"s3://BUCKET/KEY (zip_env_name={key!r})"
        )
    if not key:
        raise BuildNotFoundError(
            f"zip_env_name is empty: set it to the S3 key of the zipped build in {bucket}"
        )
    return bucket, key


def download_from_s3(bucket: str, key: str, dest_dir: Path) -> Path:
    """Download ``s3://bucket/key`` into a temporary file in ``dest_dir`` and return its path.

    boto3's managed transfer does the work (parallel ranged GETs for big builds, retries); the
    caller deletes the file when it has been extracted.
    """
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    s3 = boto3.client("s3", config=Config(retries={"max_attempts": 10, "mode": "standard"}))
    size = _head_object(s3, bucket, key)
    dest_dir.mkdir(parents=True, exist_ok=True)
    _check_free_space(dest_dir, size, f"s3://{bucket}/{key}")
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=dest_dir)
    os.close(fd)
    transfer = TransferConfig(
        multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=8
    )
    try:
        s3.download_file(bucket, key, name, Config=transfer)
    except BaseException as error:
        Path(name).unlink(missing_ok=True)
        raise _s3_error(error, bucket, key) from error
    return Path(name)


def _head_object(s3, bucket: str, key: str) -> int:
    """Size of the object, or an error that tells a missing key from a missing bucket or a denial."""
    from botocore.exceptions import ClientError

    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise _missing_object_error(s3, bucket, key) from error
        raise _s3_error(error, bucket, key) from error
    except Exception as error:
        raise _s3_error(error, bucket, key) from error


def _missing_object_error(s3, bucket: str, key: str) -> UnityBuildError:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if _error_code(error) in ("404", "NoSuchBucket", "NotFound"):
            return BuildNotFoundError(
                f"S3 bucket {bucket!r} does not exist (looking for s3://{bucket}/{key}): check config "
                "'bucket' (or [aws] s3_bucket in project.toml) and the region"
            )
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return BuildNotFoundError(
        f"s3://{bucket}/{key} does not exist: check config 'zip_env_name' (the key of the zipped Linux "
        f"build inside the bucket); see what is there with: aws s3 ls s3://{bucket}/{prefix}"
    )


def _s3_error(error: BaseException, bucket: str, key: str) -> BaseException:
    """Translate botocore's errors into ones that say what to check; pass anything else through."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = f"s3://{bucket}/{key}"
    if isinstance(error, NoCredentialsError):
        return BuildAccessError(
            f"no AWS credentials to read {where}: inside SageMaker the job's role provides them; "
            "locally run `aws configure` or set AWS_PROFILE"
        )
    if isinstance(error, ClientError):
        code = _error_code(error)
        if code in (
            "403",
            "AccessDenied",
            "AllAccessDisabled",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            return BuildAccessError(
                f"access denied reading {where} ({code}): the role or credentials need s3:GetObject on "
                f"arn:aws:s3:::{bucket}/{key} (and s3:ListBucket on arn:aws:s3:::{bucket} to tell a "
                "missing key from a denied one)"
            )
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            return BuildNotFoundError(f"{where} does not exist ({code}): check 'bucket' and 'zip_env_name'")
        return UnityBuildError(f"S3 refused {where}: {code}: {error}")
    if isinstance(error, BotoCoreError):
        return UnityBuildError(
            f"could not download {where}: {error} (check the network, region and endpoint)"
        )
    return error


def _error_code(error) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# ----------------------------------------------------------------------------------------------
# The three ways a build arrives


def build_from_s3(bucket: str, key: str, build_folder: Path, env_file: str) -> Path:
    """Download the zipped build, extract it into ``build_folder``, return the player's path."""
    bucket, key = split_s3_location(bucket, key)
    build_folder.parent.mkdir(parents=True, exist_ok=True)
    archive = download_from_s3(bucket, key, build_folder.parent)
    try:
        extract_zip(archive, build_folder)
    finally:
        archive.unlink(missing_ok=True)
    return find_executable(build_folder, env_file)


def build_from_zip(zip_path: Path, build_folder: Path, env_file: str) -> Path:
    """Extract a zip on disk (unless ``build_folder`` already holds exactly this zip)."""
    if not is_extracted_from(build_folder, zip_path):
        extract_zip(zip_path, build_folder)
    return find_executable(build_folder, env_file)


def build_from_channel(channel: Path, zip_name: str, build_folder: Path, env_file: str) -> Path:
    """A SageMaker input channel holding the zip (any name if it is the only one) or the unzipped build."""
    wanted = channel / PurePosixPath(zip_name.replace("s3://", "")).name if zip_name else None
    zips = sorted(channel.glob("*.zip"))
    if wanted is not None and wanted.is_file():
        return build_from_zip(wanted, build_folder, env_file)
    if len(zips) == 1:
        return build_from_zip(zips[0], build_folder, env_file)
    if len(zips) > 1:
        names = ", ".join(z.name for z in zips)
        raise BuildNotFoundError(
            f"input channel {channel} holds several zips ({names}) and none is named after "
            f"zip_env_name={zip_name!r}: set zip_env_name to the one to use"
        )
    try:
        return find_executable(channel, env_file)
    except PermissionError:  # a read-only channel: copy the build where the execute bit can be set
        shutil.copytree(channel, build_folder, dirs_exist_ok=True)
        return find_executable(build_folder, env_file)


# ----------------------------------------------------------------------------------------------
# Safe extraction


def extract_zip(zip_path: Path, folder: Path, *, max_bytes: int | None = None) -> None:
    """Unpack ``zip_path`` into ``folder`` (replacing it), refusing anything that would escape it.

    Every member is checked before the first byte is written: absolute paths, drive letters and
    ``..`` are refused, as are symlinks whose target leaves the folder, and the total size is
    bounded. Files are written into a temporary sibling folder (no symlink exists while files are
    written, so no write can be redirected), links are made last and checked again with
    ``realpath``, and only then does the folder replace the old one.
    """
    limit = MAX_EXTRACT_BYTES if max_bytes is None else max_bytes
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnityBuildError(
            f"{zip_path} is not a readable zip archive ({error}): zip the build folder again"
        ) from error
    with archive:
        members, links, total = _plan_extraction(archive, zip_path, limit)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(folder.parent, total, str(zip_path))
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".partial", dir=folder.parent))
        try:
            _write_members(archive, members, staging, zip_path)
            _make_links(links, staging, zip_path)
            _write_stamp(staging, zip_path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _replace_folder(staging, folder)


def _plan_extraction(archive: zipfile.ZipFile, zip_path: Path, limit: int):
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{zip_path} has {len(infos)} entries, more than {MAX_MEMBERS}: refusing it")
    members: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
    links: list[tuple[PurePosixPath, str]] = []
    total = 0
    for info in infos:
        name = _safe_member_name(info.filename, zip_path)
        if name is None:
            continue
        if _is_symlink(info):
            target = archive.read(info).decode("utf-8", "replace")
            _check_link_target(name, target, zip_path)
            links.append((name, target))
            continue
        members.append((name, info))
        total += info.file_size
        if total > limit:
            raise UnsafeArchiveError(
                f"{zip_path} expands to more than {limit / 2**30:.1f} GiB: refusing it "
                "(raise template_runtime.build.MAX_EXTRACT_BYTES if the build really is that big)"
            )
    return members, links, total


def _safe_member_name(raw: str, zip_path: Path) -> PurePosixPath | None:
    """The member's path relative to the folder, or an error if it would land outside it."""
    text = raw.replace("\\", "/")  # zips made on Windows sometimes use backslashes
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeArchiveError(f"{zip_path} contains an absolute path {raw!r}: refusing to extract it")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{zip_path} contains a path that leaves the folder {raw!r}: refusing to extract it"
        )
    if not parts or parts[0] == "__MACOSX":
        return None
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _check_link_target(name: PurePosixPath, target: str, zip_path: Path) -> None:
    resolved = os.path.normpath(os.path.join(str(name.parent), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(
            f"{zip_path} contains a symlink {str(name)!r} -> {target!r} that points outside the folder: "
            "refusing to extract it"
        )


def _write_members(archive: zipfile.ZipFile, members, staging: Path, zip_path: Path) -> None:
    for name, info in members:
        dest = staging / name
        try:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode:
                os.chmod(dest, (mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR)
        except (OSError, zipfile.BadZipFile) as error:
            raise UnityBuildError(f"could not extract {info.filename!r} from {zip_path}: {error}") from error


def _make_links(links, staging: Path, zip_path: Path) -> None:
    root = os.path.realpath(staging)
    for name, target in links:
        dest = staging / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest)
    for name, target in links:
        real = os.path.realpath(staging / name)
        if os.path.commonpath([root, real]) != root:
            raise UnsafeArchiveError(
                f"{zip_path} contains a symlink {str(name)!r} -> {target!r} that resolves outside the "
                "folder through other links: refusing to extract it"
            )


def _replace_folder(staging: Path, folder: Path) -> None:
    """Swap the finished folder in; the old one (if any) is moved aside first, then deleted."""
    old = None
    if folder.is_symlink() or folder.is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise UnityBuildError(
            f"build_folder {folder} exists and is not a folder: remove it or choose another"
        )
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".old", dir=folder.parent))
        os.rename(folder, old / folder.name)
    os.rename(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UnityBuildError(
            f"{what} needs {needed / 2**20:.0f} MiB but {folder} has only {free / 2**20:.0f} MiB free: "
            "use a bigger volume (SageMaker: volume_size) or another build_folder"
        )


def _stamp_of(zip_path: Path) -> dict:
    info = zip_path.stat()
    return {"zip": str(zip_path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _write_stamp(folder: Path, zip_path: Path) -> None:
    (folder / STAMP_FILE).write_text(json.dumps(_stamp_of(zip_path)))


def is_extracted_from(folder: Path, zip_path: Path) -> bool:
    """Whether ``folder`` already holds this very zip (same path, size and mtime), extracted by us."""
    try:
        return json.loads((folder / STAMP_FILE).read_text()) == _stamp_of(zip_path)
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# Finding and preparing the executable


def find_executable(folder: Path, env_file: str) -> Path:
    """The Linux player in ``folder`` (or in its single top-level folder), made executable.

    ``env_file`` may be given with or without ``.x86_64``/``.x86``; empty means "the only
    ``*.x86_64`` there is".
    """
    if not folder.is_dir():
        raise BuildNotFoundError(f"build folder {folder} does not exist: check build_folder")
    search = _search_dirs(folder)
    name = env_file.strip()
    for suffix in LINUX_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    found = _candidates(search, name)
    if len(found) == 1:
        make_executable(found[0])
        return found[0]
    raise _executable_error(folder, search, env_file, found)


def _search_dirs(folder: Path) -> list[Path]:
    entries = _visible_entries(folder)
    if len(entries) == 1 and entries[0].is_dir():
        return [folder, entries[0]]
    return [folder]


def _visible_entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def _candidates(search: list[Path], name: str) -> list[Path]:
    for directory in search:
        if name:
            hits = [directory / f"{name}{suffix}" for suffix in (*LINUX_SUFFIXES, "")]
            hits = [hit for hit in hits if hit.is_file()]
            if hits:
                return hits[:1]
        else:
            hits = [p for p in _visible_entries(directory) if p.is_file() and p.suffix in LINUX_SUFFIXES]
            if hits:
                return hits
    return []


def _executable_error(folder: Path, search: list[Path], env_file: str, found: list[Path]) -> UnityBuildError:
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        return ExecutableNotFoundError(
            f"{folder} holds several Linux players ({names}): set env_file to the one to run"
        )
    listing = [
        str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for d in search for p in _visible_entries(d)
    ]
    shown = ", ".join(listing[:25]) + (f", ... ({len(listing)} entries)" if len(listing) > 25 else "")
    foreign = {
        OTHER_PLATFORMS[Path(entry.rstrip("/")).suffix]
        for entry in listing
        if Path(entry.rstrip("/")).suffix in OTHER_PLATFORMS
    }
    wanted = f"{env_file!r} (tried .x86_64, .x86 and no suffix)" if env_file.strip() else "a *.x86_64 file"
    message = f"no Linux Unity player {wanted} in {folder}; it contains: {shown or 'nothing'}."
    if foreign:
        message += (
            f" This looks like a {' and '.join(sorted(foreign))} build: build for Linux instead "
            "(Build Settings > Linux, x86_64; Server Build / Dedicated Server works headless)."
        )
    others = [e for e in listing if Path(e).suffix in LINUX_SUFFIXES]
    if others:
        message += f" Did you mean env_file={Path(others[0]).stem!r}?"
    return ExecutableNotFoundError(message)


def make_executable(path: Path) -> None:
    """Give the player read and execute bits for user, group and others (zips often lose them)."""
    mode = path.stat().st_mode
    wanted = mode | stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    if wanted != mode:
        os.chmod(path, wanted)
