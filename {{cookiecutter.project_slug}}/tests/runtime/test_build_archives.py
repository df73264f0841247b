"""Hostile and broken build archives: each is refused with a UnityBuildError naming the archive and
the entry, before the previous build is touched; the few odd-but-harmless ones are extracted.

COUNT: HOSTILE has 52 archives that must be refused (the old build untouched, nothing left behind),
HARMLESS 8 that must extract; plus 3 downloads from S3 (moto) named by their s3:// URI.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import boto3
import pytest

from template_runtime import build as unity_build
from template_runtime.build import MARKER_FILE, UnityBuildError, extract_zip
from trainer import Trainer

pytestmark = pytest.mark.usefixtures("no_internet")

PLAYER = b"#!/bin/sh\necho player\n"
EXE = "3DBall.x86_64"


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple:
    return ("file", name, data, stat.S_IFREG | mode)


def folder(name: str) -> tuple:
    return ("dir", name, b"", stat.S_IFDIR | 0o755)


def link(name: str, target: bytes) -> tuple:
    return ("link", name, target, stat.S_IFLNK | 0o777)


def write(path: Path, *entries: tuple, zip64: bool = False, player: bool = True) -> Path:
    """A zip of ``entries`` (file/folder/link), by default after a good player, with Unix modes."""
    if player:
        entries = (file(EXE, PLAYER, 0o755), *entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": some of these archives mean it
        for kind, name, data, mode in entries:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" and not name.endswith("/") else ""))
            info.create_system = 3
            info.external_attr = mode << 16 | (0x10 if kind == "dir" else 0)
            info.compress_type = zipfile.ZIP_STORED if kind != "file" else zipfile.ZIP_DEFLATED
            if zip64:
                with archive.open(info, "w", force_zip64=True) as out:
                    out.write(data)
            else:
                archive.writestr(info, data)
    return path


def patched(path: Path, old: bytes, new: bytes) -> Path:
    """Replace bytes in the file (a name appears twice: local header and central directory)."""
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    return path


def headers(data: bytes):
    """Offsets of the general-purpose flag and compression method of every local and central header."""
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            yield start + flag_at
            start = data.find(signature, start + 4)


def with_header_field(path: Path, name: bytes, change) -> Path:
    """Rewrite the flag word and compression method of the entry ``name`` in both of its headers."""
    data = bytearray(path.read_bytes())
    for at in headers(bytes(data)):
        header_start = at - (6 if data[at - 6 : at - 2] == b"PK\x03\x04" else 8)
        name_at = header_start + (30 if data[header_start + 2] == 3 else 46)
        if bytes(data[name_at : name_at + len(name)]) != name:
            continue
        flag, method = struct.unpack_from("<HH", data, at)
        struct.pack_into("<HH", data, at, *change(flag, method))
    path.write_bytes(bytes(data))
    return path


def tar_file(path: Path) -> Path:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(EXE)
        info.size = len(PLAYER)
        archive.addfile(info, io.BytesIO(PLAYER))
    return path


def tar_holding_zip(path: Path) -> Path:
    """zipfile itself would open the zip inside (it finds the zip's end record at the tar's end)."""
    inner = write(path.with_name("inner.zip"))
    with tarfile.open(path, "w") as archive:
        archive.add(inner, arcname="3DBall.zip")
    inner.unlink()
    return path


def prepended(path: Path) -> Path:
    data = write(path).read_bytes()
    path.write_bytes(b"junk" * 100 + data)
    return path


def truncated(path: Path, keep: float) -> Path:
    data = write(path, file("3DBall_Data/big.bin", os.urandom(20_000))).read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def damaged_middle(path: Path) -> Path:
    data = bytearray(write(path, file("3DBall_Data/big.bin", os.urandom(20_000))).read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the deflated data: a CRC or deflate error when read
    path.write_bytes(bytes(data))
    return path


# id -> (make the archive at the path, entry named in the error or None, what the error says)
HOSTILE = {
    # paths that leave the folder
    "absolute path": (lambda p: write(p, file("/tmp/evil")), "/tmp/evil", "absolute path"),
    "drive letter": (lambda p: write(p, file("C:/evil")), "C:/evil", "absolute path"),
    "dot-dot": (lambda p: write(p, file("../evil")), "../evil", "leaves the folder"),
    "nested dot-dot": (lambda p: write(p, file("a/../../evil")), "a/../../evil", "leaves the folder"),
    "backslash dot-dot": (lambda p: write(p, file("..\\evil")), "..\\\\evil", "leaves the folder"),
    # symlinks
    "absolute link": (lambda p: write(p, link("l", b"/etc/passwd")), "'l'", "points outside"),
    "escaping link": (lambda p: write(p, link("d/l", b"../../out")), "d/l", "points outside"),
    "link chain escaping": (
        lambda p: write(p, file("p/q/f"), link("p/q/a", b"../../z"), link("p/q/x", b"a/../../..")),
        "p/q/x",
        "through other links",
    ),
    "link with empty target": (lambda p: write(p, link("l", b"")), "'l'", "empty target"),
    "link target with NUL": (lambda p: write(p, link("l", b"a\0b")), "'l'", "holds a NUL byte"),
    "link target not UTF-8": (lambda p: write(p, link("l", b"\xff\xfe")), "'l'", "is not UTF-8"),
    "link target too long": (lambda p: write(p, link("l", b"a/" * 2500)), "'l'", "5000-byte target"),
    "link named like a folder entry": (
        lambda p: write(p, folder("lib"), file("lib/a.so"), link("lib", b"x")),
        "'lib'",
        "a second time (also the dir entry 'lib/')",
    ),
    "link over a file": (lambda p: write(p, file("a"), link("a", b"b")), "'a'", "a second time"),
    "file over a link": (lambda p: write(p, link("a", b"b"), file("a")), "'a'", "a second time"),
    "file through a link": (
        lambda p: write(p, file("real/x"), link("lib", b"real"), file("lib/y")),
        "lib/y",
        "inside 'lib', which is a link",
    ),
    "link name ending in slash": (lambda p: write(p, link("l/", b"x")), "'l/'", "ends in '/'"),
    # names that clash
    "duplicate file": (
        lambda p: write(p, file("a.txt", b"1"), file("a.txt", b"2")),
        "a.txt",
        "a second time",
    ),
    "duplicate player": (
        lambda p: write(p, file(EXE, b"#!/bin/sh\nrm -rf ~\n", 0o755)),
        EXE,
        "a second time",
    ),
    "duplicate after //": (
        lambda p: write(p, file("a/b.txt"), file("a//b.txt")),
        "a//b.txt",
        "a second time",
    ),
    "duplicate after ./": (
        lambda p: write(p, file("a/b.txt"), file("./a/b.txt")),
        "./a/b.txt",
        "a second time",
    ),
    "duplicate via backslash": (
        lambda p: write(p, file("a/b.txt"), file("a\\b.txt")),
        "a\\\\b.txt",
        "a second time",
    ),
    "file and folder of the same name": (
        lambda p: write(p, file("data"), file("data/x")),
        "data/x",
        "inside 'data', which is a file",
    ),
    "folder entry and file": (lambda p: write(p, folder("data"), file("data")), "'data'", "a second time"),
    "folders differing in case": (
        lambda p: write(p, file("Data/a"), file("data/a")),
        "data/a",
        "only in case",
    ),
    "files differing in case": (lambda p: write(p, file("README"), file("readme")), "readme", "only in case"),
    "NFC and NFD names": (
        lambda p: write(p, file("caf\u00e9.txt"), file("cafe\u0301.txt")),
        "cafe\u0301.txt",
        "Unicode form",
    ),
    # odd entries
    "folder entry holding data": (
        lambda p: write(p, ("file", "x/", b"data", stat.S_IFREG | 0o644)),
        "x/",
        "folder entry holding 4 bytes",
    ),
    "very long name part": (lambda p: write(p, file("a" * 300)), "aaaa", "longer than 255 bytes"),
    "very long path": (
        lambda p: write(p, file("/".join(["d" * 200] * 21))),
        "dddd",
        "longer than 4000 bytes",
    ),
    "NUL in a name": (
        lambda p: patched(write(p, file("evilXname")), b"evilX", b"evil\0"),
        "evil",
        "NUL byte",
    ),
    "newline in a name": (lambda p: write(p, file("a\nb")), "a\\nb", "control character U+000A"),
    "FIFO entry": (lambda p: write(p, ("file", "fifo", b"", stat.S_IFIFO | 0o644)), "fifo", "special file"),
    "device entry": (lambda p: write(p, ("file", "dev", b"", stat.S_IFCHR | 0o644)), "dev", "special file"),
    "encrypted entry": (
        lambda p: with_header_field(write(p, file("secret")), b"secret", lambda f, m: (f | 1, m)),
        "secret",
        "is encrypted",
    ),
    "unknown compression": (
        lambda p: with_header_field(write(p, file("packed", b"abc")), b"packed", lambda f, m: (f, 99)),
        "packed",
        "compression method 99",
    ),
    "name not UTF-8 though flagged": (
        lambda p: with_header_field(
            patched(write(p, file("naXme")), b"naXme", b"na\xffme"), b"na\xffme", lambda f, m: (f | 0x800, m)
        ),
        None,
        "not a readable zip",
    ),
    # not a (whole) zip
    "0-byte file": (lambda p: (p.write_bytes(b""), p)[1], None, "the file is empty (0 bytes)"),
    "truncated to half": (lambda p: truncated(p, 0.5), None, "not a readable zip"),
    "truncated by 10 bytes": (lambda p: truncated(p, 0.9995), None, "not a readable zip"),
    "damaged data": (damaged_middle, "3DBall_Data/big.bin", "damaged or cut short"),
    "tar named .zip": (tar_file, None, "it is a tar (or gzip/bzip2/xz) archive, not a zip"),
    "zip inside a tar": (lambda p: tar_holding_zip(p), None, "it is a tar (or gzip/bzip2/xz) archive"),
    "data in front of a zip": (lambda p: prepended(p), None, "starts with b'junk'"),
    "gzip named .zip": (
        lambda p: (p.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 40), p)[1],
        None,
        "tar (or gzip",
    ),
    "random bytes": (lambda p: (p.write_bytes(os.urandom(3000)), p)[1], None, "not a readable zip"),
    # zips that are fine as zips but hold no runnable player
    "empty zip": (lambda p: write(p, player=False), None, "it contains: nothing"),
    "no player": (lambda p: write(p, file("README.txt"), player=False), None, "it contains: README.txt"),
    "player is a folder": (
        lambda p: write(p, folder(EXE), file(f"{EXE}/inside"), player=False),
        None,
        f"it contains: {EXE}/",
    ),
    "player is a text file": (
        lambda p: write(p, file(EXE, b"hello", 0o755), player=False),
        None,
        "not a program",
    ),
    "player is empty": (lambda p: write(p, file(EXE, b"", 0o755), player=False), None, "is empty"),
    "player links to a folder": (
        lambda p: write(p, file("real/x"), link(EXE, b"real"), player=False),
        None,
        "no Linux Unity player",
    ),
}


@pytest.fixture
def old_build(tmp_path) -> Path:
    """A good build already extracted into ``out`` (owned by the trainer)."""
    good = write(tmp_path / "good.zip", file("3DBall_Data/app.info", b"old"))
    extract_zip(good, tmp_path / "out", env_file="3DBall")
    return tmp_path / "out"


def listing(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_is_refused_naming_archive_and_entry_and_the_old_build_stays(
    tmp_path, old_build, case
):
    make, entry, problem = HOSTILE[case]
    archive = make(tmp_path / "hostile.zip")
    before = listing(old_build)
    with pytest.raises(UnityBuildError) as error:
        extract_zip(archive, old_build, env_file="3DBall")
    message = str(error.value)
    assert str(archive) in message and problem in message, message
    if entry is not None:
        assert entry in message, message
    assert listing(old_build) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "good.zip",
        "hostile.zip",
        "out",
    ]  # nothing left over
    assert not (tmp_path.parent / "evil").exists() and not Path("/tmp/evil").exists()


def test_too_many_entries_are_refused(tmp_path, old_build, monkeypatch):
    monkeypatch.setattr(unity_build, "MAX_MEMBERS", 3)
    archive = write(tmp_path / "many.zip", *(file(f"f{i}") for i in range(4)))
    with pytest.raises(UnityBuildError, match=r"many\.zip has 5 entries, more than 3"):
        extract_zip(archive, old_build, env_file="3DBall")


# ---- odd but harmless: extracted ------------------------------------------------------------------

HARMLESS = {
    "zip64 entries": lambda p: write(p, file("3DBall_Data/a", b"a" * 1000), zip64=True),
    "cp437 name (no UTF-8 flag)": lambda p: patched(write(p, file("naXme")), b"naXme", b"na\x81me"),
    "__MACOSX metadata": lambda p: write(p, file("__MACOSX/._3DBall.x86_64"), file("__MACOSX/x/y")),
    "./ prefixes and a folder entry twice": lambda p: write(p, folder("d"), folder("d/"), file("./d/a")),
    "setuid bit": lambda p: write(p, file("tool", b"#!/bin/sh\n", 0o4755)),
    "link inside the folder": lambda p: write(p, file("lib/real.so"), link("lib/alias.so", b"real.so")),
    "player is a link to a script": lambda p: write(
        p, file("bin/run", PLAYER, 0o755), link(EXE, b"bin/run"), player=False
    ),
    "folder entries without a trailing slash": lambda p: write(
        p, ("file", "data", b"", stat.S_IFDIR | 0o755), file("data/x")
    ),
}


@pytest.mark.parametrize("case", list(HARMLESS))
def test_odd_but_harmless_archive_is_extracted(tmp_path, old_build, case):
    archive = HARMLESS[case](tmp_path / "odd.zip")
    player = extract_zip(archive, old_build, env_file="3DBall")
    assert player == old_build / EXE and os.access(player, os.X_OK)
    assert not (old_build / "3DBall_Data/app.info").exists()  # the old build was replaced whole
    assert not (old_build / "__MACOSX").exists()
    modes = [p.lstat().st_mode for p in old_build.rglob("*")]
    assert not any(mode & (stat.S_ISUID | stat.S_ISGID) for mode in modes)


def test_cp437_name_is_extracted_as_zip_reads_it(tmp_path, old_build):
    extract_zip(HARMLESS["cp437 name (no UTF-8 flag)"](tmp_path / "odd.zip"), old_build)
    assert (old_build / "na\u00fcme").is_file()  # 0x81 is u-umlaut in code page 437


def test_marker_says_where_the_build_came_from(tmp_path, old_build):
    marker = (old_build / MARKER_FILE).read_text()
    assert str(tmp_path / "good.zip") in marker and "unity-sagemaker-rl trainer" in marker


# ---- from S3: errors name s3://bucket/key, not the temporary download ---------------------------


class Job(Trainer):
    def run(self):
        return self.download_unity_env()


@pytest.mark.parametrize("case", ["duplicate player", "truncated to half", "player is a text file"])
def test_archive_from_s3_is_named_by_its_uri(aws, s3_bucket, tmp_path, monkeypatch, case):
    root = tmp_path / "opt_ml"
    for name, sub in {"SM_MODEL_DIR": "model", "SM_OUTPUT_DATA_DIR": "output"}.items():
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")
    monkeypatch.delenv("SM_HPS", raising=False)
    (tmp_path / "code").mkdir()
    monkeypatch.chdir(tmp_path / "code")
    boto3.client("s3").upload_file(str(HOSTILE[case][0](tmp_path / "h.zip")), s3_bucket, "builds/3DBall.zip")
    with pytest.raises(UnityBuildError) as error:
        Job({"bucket": s3_bucket, "zip_env_name": "builds/3DBall.zip", "env_file": "3DBall"}).run()
    assert f"s3://{s3_bucket}/builds/3DBall.zip" in str(error.value) and ".download-" not in str(error.value)
    assert list(Path.cwd().iterdir()) == []  # no temporary download, no half build
