"""Getting a Unity Linux build onto this machine: S3 download, safe unzip, an owned build folder.

Support code for ``trainer.py`` (kept apart so ``trainer.py`` stays readable); an algorithm file
never imports it. Nothing here loses data or half-accepts a build:

* ownership: the trainer replaces only a build folder it made, one holding MARKER_FILE (written at
  extraction, saying what the build came from), or an empty one. ``check_build_folder`` refuses,
  before anything is touched, a folder that is ``/``, the home folder, the repository, the working
  or code folder (or holds one of them), one of the repository's own folders (rules.REPOSITORY_NAMES,
  hidden ones like .git) or one that holds the archive being extracted;
* archives are checked entry by entry before the first byte is written (paths that leave the
  folder, links, duplicate or clashing names, sizes), and every refusal is a UnityBuildError naming
  the archive (``s3://bucket/key`` for a download) and the entry;
* a new build is unpacked into a temporary sibling folder and fully checked there (the player is
  found, is a file, is runnable) before it replaces the old build; on any failure the old build stays.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from template_runtime.rules import REPOSITORY_NAMES

MAX_EXTRACT_BYTES = 32 * 2**30
"""Refuse archives that expand to more than this (a real Unity build is a few GB at most)."""

MAX_MEMBERS = 200_000
"""Refuse archives with more entries than this (zip bombs made of many tiny files)."""

MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_LINK_BYTES = 255, 4000, 4095
"""Longest entry-name part, entry path and symlink target (Linux: NAME_MAX 255, PATH_MAX 4096)."""

LINUX_SUFFIXES = (".x86_64", ".x86")
OTHER_PLATFORMS = {".exe": "Windows", ".app": "macOS"}
MARKER_FILE = ".unity_build_source.json"
"""Written into every folder the trainer extracts (last, once the build is checked): what it came
from. Only a folder holding it is ever replaced; an unchanged local zip is not extracted again."""
STAMP_FILE = MARKER_FILE  # its earlier name
MADE_BY = "unity-sagemaker-rl trainer"

_COPY_CHUNK = 1 << 20
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)
"""What reading a damaged, encrypted or exotic zip raises (RuntimeError: a password is needed)."""


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


class BuildFolderError(UnityBuildError):
    """build_folder names a folder the trainer may not replace; nothing was touched."""


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
    """Download the zipped build, extract and check it, swap it into ``build_folder``; the player's path."""
    bucket, key = split_s3_location(bucket, key)
    uri = f"s3://{bucket}/{key}"
    build_folder = check_build_folder(build_folder, source_name=uri)
    check_replaceable(build_folder)  # before the download: a refusal should not cost one
    build_folder.parent.mkdir(parents=True, exist_ok=True)
    archive = download_from_s3(bucket, key, build_folder.parent)
    try:
        return extract_zip(archive, build_folder, env_file=env_file, archive_name=uri, source={"source": uri})
    finally:
        archive.unlink(missing_ok=True)


def build_from_zip(zip_path: Path, build_folder: Path, env_file: str) -> Path:
    """Extract a zip on disk (unless ``build_folder`` already holds exactly this zip)."""
    if is_extracted_from(build_folder, zip_path):
        return find_executable(build_folder, env_file)
    return extract_zip(zip_path, build_folder, env_file=env_file)


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
        return copy_build(channel, build_folder, env_file)


def copy_build(source: Path, build_folder: Path, env_file: str) -> Path:
    """Copy an unzipped build into ``build_folder`` as extract_zip installs one: checked, then swapped in."""
    build_folder = check_build_folder(build_folder, source=source)
    check_replaceable(build_folder)
    staging = _staging_folder(build_folder)
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        player = find_executable(staging, env_file, shown_as=build_folder, archive=str(source))
        _write_marker(staging, {"source": str(source)})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace_folder(staging, build_folder)
    return build_folder / player.relative_to(staging)


# ----------------------------------------------------------------------------------------------
# Ownership of the build folder


def check_build_folder(
    folder: Path,
    *,
    value: str | None = None,
    repo: Path | None = None,
    source: Path | None = None,
    source_name: str | None = None,
    setting: str = "build_folder",
    repo_label: str = "the repository",
) -> Path:
    """``folder`` as an absolute path, or BuildFolderError if replacing it could delete what is not ours.

    ``value`` is the setting as written (``""`` and ``"."`` are refused by name), ``repo`` the
    repository (locally) or the working folder (in a job), ``source`` the archive or folder the build
    comes from. Nothing on disk is read beyond the paths themselves.
    """
    if value is not None and (not value.strip() or os.path.normpath(value.strip()) == "."):
        raise BuildFolderError(
            f"{setting}={value!r} names {'nothing' if not value.strip() else 'the folder it is relative to'}"
            ": "
            "the build folder is replaced whenever a new build is extracted, so it must be a folder of "
            "its own, e.g. 'unity_build'"
        )
    path = Path(os.path.abspath(folder))
    shown = f"{setting}={value if value is not None else str(path)!r}"
    shown += f" ({path})" if value is not None and value != str(path) else ""
    for candidate in dict.fromkeys((path, Path(os.path.realpath(path)))):
        problem = _protected(candidate, repo, repo_label, source)
        if problem:
            raise BuildFolderError(
                f"{shown} {problem}, which would be deleted when a new build replaces the old one: "
                "set build_folder to a folder of its own, e.g. 'unity_build'"
                + (f" (the build comes from {source_name})" if source_name else "")
            )
    return path


def _protected(candidate: Path, repo: Path | None, repo_label: str, source: Path | None) -> str | None:
    """Why ``candidate`` may not be a build folder, or None."""
    if candidate == Path(candidate.anchor):
        return "is the root folder"
    home = _both(Path.home())
    if any(candidate == h or candidate in h.parents for h in home):
        return "is your home folder or holds it"
    code = Path(__file__).resolve().parents[1]
    places = [(repo_label, repo), ("the working folder", Path.cwd()), ("the code folder", code)]
    for name, place in places:
        for real in _both(place) if place is not None else ():
            if candidate == real or candidate in real.parents:
                return f"is {name} {real} or holds it"
    for root in _both(repo) if repo is not None else ():
        if root in candidate.parents:
            part = candidate.relative_to(root).parts[0]
            if part.lower() in REPOSITORY_NAMES or part.startswith("."):
                where = "is" if candidate.parent == root else "lies inside"
                owner = "the repository's" if repo_label == "the repository" else f"{repo_label}'s"
                return f"{where} {owner} own {part!r}"
    for origin in _both(source) if source is not None else ():
        if candidate == origin or candidate in origin.parents:
            return f"holds {origin}, the build being installed"
        if origin in candidate.parents:
            return f"lies inside {origin}, the build being installed"
    return None


def _both(path: Path) -> tuple[Path, ...]:
    """The absolute path and the one with symlinks resolved (a folder may be reached either way)."""
    return tuple(dict.fromkeys((Path(os.path.abspath(path)), Path(os.path.realpath(path)))))


def is_owned(folder: Path) -> bool:
    """Whether ``folder`` is a build folder the trainer made (it holds MARKER_FILE)."""
    marker = folder / MARKER_FILE
    try:
        if marker.is_symlink() or not marker.is_file():
            return False
        return isinstance(json.loads(marker.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def check_replaceable(folder: Path, setting: str = "build_folder") -> None:
    """Refuse to replace an existing ``folder`` unless the trainer made it or it is empty."""
    if not os.path.lexists(folder):
        return
    if folder.is_symlink():
        raise BuildFolderError(
            f"{setting} {folder} is a symbolic link: the trainer replaces only a folder it made. Set "
            "build_folder to the folder the link points to, or to a new folder"
        )
    if not folder.is_dir():
        raise BuildFolderError(f"{setting} {folder} exists and is not a folder: remove it or choose another")
    if is_owned(folder) or not any(folder.iterdir()):
        return
    raise BuildFolderError(
        f"{setting} {folder} already exists and was not made by the trainer (it has no {MARKER_FILE}), so it "
        "is left alone. If it holds nothing you need (an old build you unzipped yourself?), delete it or "
        "move it away; or set build_folder to a new folder, e.g. 'unity_build'"
    )


def _staging_folder(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".partial", dir=folder.parent))


def _replace_folder(staging: Path, folder: Path) -> None:
    """Swap the finished, checked folder in; the old build (ours, checked again now) is deleted after."""
    try:
        check_replaceable(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if folder.is_dir() and is_owned(folder):
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".old", dir=folder.parent))
        os.rename(folder, old / folder.name)
    elif folder.is_dir():
        os.rmdir(folder)  # empty (checked above); fails rather than delete anything that appeared since
    try:
        os.rename(staging, folder)
    except BaseException:
        if old is not None:
            os.rename(old / folder.name, folder)
            old.rmdir()
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


def _write_marker(folder: Path, source: dict) -> None:
    (folder / MARKER_FILE).write_text(json.dumps({"made_by": MADE_BY, **source}), encoding="utf-8")


def is_extracted_from(folder: Path, zip_path: Path) -> bool:
    """Whether ``folder`` already holds this very zip (same path, size and mtime), extracted by us."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        return {key: marker.get(key) for key in ("zip", "size", "mtime_ns")} == _stamp_of(zip_path)
    except (OSError, ValueError, AttributeError):
        return False


# ----------------------------------------------------------------------------------------------
# Safe extraction


def extract_zip(
    zip_path: Path,
    folder: Path,
    *,
    max_bytes: int | None = None,
    env_file: str | None = None,
    archive_name: str | None = None,
    source: dict | None = None,
) -> Path | None:
    """Unpack ``zip_path`` into ``folder`` (replacing the build there), refusing anything unsafe.

    Every entry is checked before the first byte is written: absolute paths, drive letters and ``..``,
    symlinks that leave the folder or are malformed, duplicate names (also ones differing only by
    case), a name that is both a file and a folder, special files, encrypted entries, and the total
    size. Files are written into a temporary sibling folder (no symlink exists while files are
    written, so no write can be redirected); links are made last and checked again with ``realpath``.
    With ``env_file`` (not None) the player is found and checked there too. Only then is MARKER_FILE
    written and the folder swapped in. Returns the player's path (None without ``env_file``).

    ``archive_name`` is how errors name the archive (``s3://bucket/key`` for a download).
    """
    name = archive_name or str(zip_path)
    limit = MAX_EXTRACT_BYTES if max_bytes is None else max_bytes
    folder = check_build_folder(folder, source=Path(zip_path), source_name=name)
    check_replaceable(folder)
    with _open_zip(zip_path, name) as archive:
        members, links, total = _plan_extraction(archive, name, limit)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(folder.parent, total, name)
        staging = _staging_folder(folder)
        try:
            _write_members(archive, members, staging, name)
            _make_links(links, staging, name)
            player = None
            if env_file is not None:
                player = find_executable(staging, env_file, shown_as=folder, archive=name)
            _write_marker(staging, source or _stamp_of(Path(zip_path)))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _replace_folder(staging, folder)
    return None if player is None else folder / player.relative_to(staging)


def _open_zip(zip_path: Path, name: str) -> zipfile.ZipFile:
    try:
        with open(zip_path, "rb") as data:
            head = data.read(4)
    except OSError as error:
        raise UnityBuildError(f"{name} cannot be read: {error}") from error
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # a first entry, or the end of an empty zip
        # zipfile would also open a zip with other data in front (a tar holding a zip, an installer):
        # that is not what a build archive looks like, so say what it seems to be instead.
        raise UnityBuildError(
            f"{name} is not a readable zip archive (it starts with {head!r}, not PK){_kind_hint(zip_path)}"
        )
    try:
        return zipfile.ZipFile(zip_path)
    except _READ_ERRORS as error:
        raise UnityBuildError(
            f"{name} is not a readable zip archive ({type(error).__name__}: {error}){_kind_hint(zip_path)}"
        ) from error


def _kind_hint(path: Path) -> str:
    """What a file that is not a zip seems to be, to say how to fix it."""
    try:
        with open(path, "rb") as data:
            head = data.read(512)
    except OSError:
        return ""
    again = ": zip the build folder again (e.g. `cd Build && zip -r ../3DBall.zip .`)"
    if not head:
        return f": the file is empty (0 bytes), an interrupted upload or download?{again[1:]}"
    if head[257:262] == b"ustar" or head[:2] in (b"\x1f\x8b", b"BZ") or head[:6] == b"\xfd7zXZ\x00":
        return f": it is a tar (or gzip/bzip2/xz) archive, not a zip{again}"
    if head[:4] == b"PK\x03\x04":
        return f": it starts like a zip but its end is missing or damaged (cut short?){again}"
    return again


def _plan_extraction(archive: zipfile.ZipFile, name: str, limit: int):
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{name} has {len(infos)} entries, more than {MAX_MEMBERS}: refusing it")
    members: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
    links: list[tuple[PurePosixPath, str]] = []
    kinds: dict[str, tuple[str, str]] = {}  # path -> (kind, entry as written)
    folded: dict[str, str] = {}
    total = 0
    for info in infos:
        path = _entry_path(info, name)
        if path is None:
            continue
        kind = _entry_kind(info, name)
        _check_unique(str(path), kind, info.orig_filename, kinds, folded, name)
        if kind == "link":
            target = _link_target(archive, info, path, name)
            links.append((path, target))
            continue
        members.append((path, info))
        total += info.file_size
        if total > limit:
            raise UnsafeArchiveError(
                f"{name} expands to more than {limit / 2**30:.1f} GiB: refusing it "
                "(raise template_runtime.build.MAX_EXTRACT_BYTES if the build really is that big)"
            )
    _check_tree(kinds, name)
    return members, links, total


def _refused(name: str, entry: str, problem: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{name}: entry {entry!r} {problem}: refusing to extract the archive")


def _entry_path(info: zipfile.ZipInfo, name: str) -> PurePosixPath | None:
    """The entry's path relative to the folder (None: nothing to write), or an error if it is unsafe."""
    raw = info.orig_filename
    if "\x00" in raw:
        raise _refused(name, raw, "has a NUL byte in its name")
    bad = next((c for c in raw if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise _refused(name, raw, f"has the control character U+{ord(bad):04X} in its name")
    text = raw.replace("\\", "/")  # zips made on Windows sometimes use backslashes
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise _refused(name, raw, "has an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refused(name, raw, "has a path that leaves the folder")
    if not parts or parts[0] == "__MACOSX":
        return None
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise _refused(name, raw[:80] + "...", f"has a name part longer than {MAX_NAME_BYTES} bytes")
    if len(text.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise _refused(name, raw[:80] + "...", f"has a path longer than {MAX_PATH_BYTES} bytes")
    if info.flag_bits & 0x1:
        raise _refused(name, raw, "is encrypted: zip the build again without a password")
    if info.compress_type not in (
        zipfile.ZIP_STORED,
        zipfile.ZIP_DEFLATED,
        zipfile.ZIP_BZIP2,
        zipfile.ZIP_LZMA,
    ):
        raise _refused(
            name, raw, f"uses compression method {info.compress_type}, which Python cannot read: use deflate"
        )
    return PurePosixPath(*parts)


def _entry_kind(info: zipfile.ZipInfo, name: str) -> str:
    """'file', 'dir' or 'link'; special files and folder entries carrying data are refused."""
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    file_type = stat.S_IFMT(mode)
    if file_type == stat.S_IFLNK:
        if info.orig_filename.endswith(("/", "\\")):
            raise _refused(name, info.orig_filename, "is a symlink whose name ends in '/'")
        return "link"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refused(
            name, info.orig_filename, f"is a special file (mode {oct(mode)}), not a file or folder"
        )
    if info.is_dir() or file_type == stat.S_IFDIR:
        if info.file_size:
            raise _refused(
                name, info.orig_filename, f"is a folder entry holding {info.file_size} bytes of data"
            )
        return "dir"
    return "file"


def _check_unique(path: str, kind: str, entry: str, kinds: dict, folded: dict, name: str) -> None:
    """Refuse two entries for one path (the last would silently win), and names differing only in case
    or Unicode form (one file on macOS and Windows file systems)."""
    if path in kinds:
        other_kind, other = kinds[path]
        if kind == other_kind == "dir":
            return
        raise _refused(
            name, entry, f"is the {kind} {path!r} a second time (also the {other_kind} entry {other!r})"
        )
    key = unicodedata.normalize("NFC", path).casefold()
    if key in folded:
        raise _refused(name, entry, f"differs from the entry {folded[key]!r} only in case or Unicode form")
    kinds[path], folded[key] = (kind, entry), path


def _check_tree(kinds: dict[str, tuple[str, str]], name: str) -> None:
    """No file or link may also be a folder of another entry (it would become a folder, or a link
    that later writes go through)."""
    for path, (_, entry) in kinds.items():
        for parent in PurePosixPath(path).parents:
            parent_kind, parent_entry = kinds.get(str(parent), ("dir", ""))
            if parent_kind != "dir":
                raise _refused(
                    name, entry, f"lies inside {parent_entry!r}, which is a {parent_kind}, not a folder"
                )


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: PurePosixPath, name: str) -> str:
    entry = info.orig_filename
    if info.file_size == 0:
        raise _refused(name, entry, "is a symlink with an empty target")
    if info.file_size > MAX_LINK_BYTES:
        raise _refused(
            name, entry, f"is a symlink with a {info.file_size}-byte target (at most {MAX_LINK_BYTES})"
        )
    try:
        data = archive.read(info)
    except _READ_ERRORS as error:
        raise UnityBuildError(f"{name}: could not read the symlink entry {entry!r}: {error}") from error
    if b"\x00" in data:
        raise _refused(name, entry, f"is a symlink whose target {data!r} holds a NUL byte")
    try:
        target = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused(name, entry, f"is a symlink whose target {data!r} is not UTF-8") from None
    resolved = os.path.normpath(os.path.join(str(path.parent), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise _refused(name, entry, f"is a symlink to {target!r}, which points outside the folder")
    return target


def _write_members(archive: zipfile.ZipFile, members, staging: Path, name: str) -> None:
    for path, info in members:
        dest = staging / path
        try:
            if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "xb") as out:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode & 0o777:
                os.chmod(dest, (mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR)
        except _READ_ERRORS as error:
            raise UnityBuildError(
                f"{name}: could not extract entry {info.orig_filename!r} ({type(error).__name__}: {error}); "
                "the archive is damaged or cut short: zip and upload the build again"
            ) from error


def _make_links(links, staging: Path, name: str) -> None:
    root = os.path.realpath(staging)
    for path, target in links:
        dest = staging / path
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest)
        except OSError as error:
            raise UnityBuildError(
                f"{name}: could not create the symlink entry {str(path)!r}: {error}"
            ) from error
    for path, target in links:
        real = os.path.realpath(staging / path)
        if os.path.commonpath([root, real]) != root:
            raise _refused(
                name,
                str(path),
                f"is a symlink to {target!r}, which resolves outside the folder through other links",
            )


# ----------------------------------------------------------------------------------------------
# Finding and preparing the executable


def find_executable(
    folder: Path, env_file: str, *, shown_as: Path | None = None, archive: str | None = None
) -> Path:
    """The Linux player in ``folder`` (or in its single top-level folder), made executable and checked.

    ``env_file`` may be given with or without ``.x86_64``/``.x86``; empty means "the only
    ``*.x86_64`` there is". ``shown_as`` and ``archive`` are how errors name the folder (the build
    folder, while the build is still being checked in a temporary one) and where the build came from.
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
        _check_runnable(found[0], (shown_as or folder) / found[0].relative_to(folder), archive)
        return found[0]
    error = _executable_error(folder, search, env_file, found)
    message = str(error)
    if shown_as is not None:
        message = message.replace(str(folder), str(shown_as))
    if archive is not None:
        message = f"{message} (the build from {archive}; the previous build, if any, is kept)"
    raise ExecutableNotFoundError(message)


def _check_runnable(player: Path, shown: Path, archive: str | None) -> None:
    """The player must be a program: execute bit set, and a script (#!) or an ELF binary."""
    where = f" (the build from {archive})" if archive else ""
    if not os.access(player, os.X_OK) or not player.stat().st_mode & stat.S_IXUSR:
        raise ExecutableNotFoundError(f"the Unity player {shown}{where} cannot be made executable")
    try:
        with open(player, "rb") as data:
            head = data.read(4)
    except OSError as error:
        raise ExecutableNotFoundError(f"the Unity player {shown}{where} cannot be read: {error}") from error
    if head[:2] != b"#!" and head != b"\x7fELF":
        what = "is empty" if not head else f"starts with {head!r}, neither '#!' nor an ELF header"
        raise ExecutableNotFoundError(
            f"the Unity player {shown}{where} {what}: it is not a program. Build the Unity project for "
            "Linux (x86_64) and zip the whole build folder"
        )


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
