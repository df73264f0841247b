"""Checkpoints that survive anything: written whole, checked by a manifest, restored newest-usable-first.

A checkpoint is the folder ``<checkpoint_dir>/checkpoint-<step, 12 digits>/`` holding

    arrays.npz      NumPy arrays (network and optimiser variables, normaliser, replay buffer)
    state.json      the step and anything JSON (RNG state, recent returns)
    manifest.json   the size and SHA-256 of the two files above, written last

It is written into ``.partial-checkpoint-<step>-<pid>/`` (every file flushed to disk) and renamed
into place, so a kill while saving leaves the previous checkpoint as the latest. The manifest catches
what a rename cannot: a file cut short or emptied by a crash of the machine, an interrupted copy
(SageMaker copies /opt/ml/checkpoints to S3 and back after a spot interruption), a file edited by
hand. ``load_latest_checkpoint`` walks from the newest checkpoint to older ones, skips (and logs,
naming the folder and why) any that fails its manifest or does not load, and returns None only when
none is usable. A checkpoint that cannot be written (disk full, quota, I/O error) is a warning:
training goes on, and the previous checkpoint stays the latest.

Only this module's own names are ever deleted: ``checkpoint-<digits>`` folders older than a newer
good one (beyond ``keep``) and ``.partial-checkpoint-*`` leftovers of an interrupted write, which
``load_latest_checkpoint`` removes at the start of a run. One run writes to a checkpoint folder at
a time.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CHECKPOINT_PREFIX",
    "Checkpoint",
    "CheckpointError",
    "list_checkpoints",
    "load_latest_checkpoint",
    "remove_partial_checkpoints",
    "save_checkpoint",
    "verify_checkpoint",
]

CHECKPOINT_PREFIX = "checkpoint-"
PARTIAL_PREFIX = ".partial-checkpoint-"
ARRAYS, STATE, MANIFEST = "arrays.npz", "state.json", "manifest.json"
MANIFEST_FORMAT = 1
_NAME = re.compile(r"checkpoint-([0-9]{1,20})")
_CHUNK = 1 << 20

logger = logging.getLogger("trainer.checkpoints")


class CheckpointError(Exception):
    """Why one checkpoint cannot be used (the restore goes on to an older one)."""


@dataclass
class Checkpoint:
    """A checkpoint that passed its manifest and loaded."""

    path: Path
    step: int
    arrays: dict[str, np.ndarray] = field(repr=False)
    state: dict = field(repr=False)


# ----------------------------------------------------------------------------------------------
# Writing


def save_checkpoint(
    folder: Path, step: int, arrays: Mapping[str, np.ndarray], state: Mapping, keep: int = 2
) -> Path | None:
    """Write ``folder/checkpoint-<step>/`` whole or not at all and keep the ``keep`` newest.

    Returns the checkpoint's path, or None (after a warning) when it could not be written: the
    previous checkpoint then stays the latest and the caller carries on.
    """
    folder, step = Path(folder), int(step)
    final = folder / f"{CHECKPOINT_PREFIX}{step:012d}"
    partial = folder / f"{PARTIAL_PREFIX}{step:012d}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove(partial)
        partial.mkdir()
        files = {
            ARRAYS: _write(partial / ARRAYS, lambda out: np.savez(out, **arrays)),
            STATE: _write(partial / STATE, lambda out: out.write(_state_bytes(step, state))),
        }
        manifest = {"format": MANIFEST_FORMAT, "step": step, "files": files}
        _write(partial / MANIFEST, lambda out: out.write(json.dumps(manifest, indent=1).encode()))
        _sync_folder(partial)
        _swap_in(partial, final)
        _sync_folder(folder)
    except OSError as error:
        _remove(partial)
        usable = [path.name for _, path in list_checkpoints(folder) if path != final]
        logger.warning(
            "could not write checkpoint %s: %s; training goes on, %s",
            final,
            describe_os_error(error),
            f"the latest checkpoint is still {usable[-1]}" if usable else "there is no earlier checkpoint",
        )
        return None
    _prune(folder, step, keep)
    return final


def _state_bytes(step: int, state: Mapping) -> bytes:
    return json.dumps({**state, "step": step}, indent=1).encode("utf-8")


def _write(path: Path, fill: Callable) -> dict:
    """Write a file through ``fill(file)``, flush it to disk, and return its size and SHA-256."""
    with open(path, "xb") as out:
        fill(out)
        out.flush()
        os.fsync(out.fileno())
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every file system allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _swap_in(partial: Path, final: Path) -> None:
    """Rename the finished folder into place; one already there (the same step) is moved aside first."""
    if not os.path.lexists(final):
        os.replace(partial, final)
        return
    aside = partial.with_name(f"{partial.name}-old")
    _remove(aside)
    os.replace(final, aside)
    try:
        os.replace(partial, final)
    except OSError:
        os.replace(aside, final)
        raise
    _remove(aside)


def _prune(folder: Path, newest: int, keep: int) -> None:
    """Delete checkpoints older than the one just written beyond ``keep``; newer ones are left alone
    (a run that resumed from an older checkpoint skipped them, and they are not ours to judge)."""
    older = [path for step, path in list_checkpoints(folder) if step < newest]
    for path in older[: max(0, len(older) - (keep - 1))]:
        _remove(path)


def describe_os_error(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "")
    text = error.strerror or str(error)
    hint = " (the disk or quota is full)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{text}{f' ({name})' if name else ''}{hint}"


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    except OSError as error:
        logger.warning("could not remove %s: %s", path, describe_os_error(error))


# ----------------------------------------------------------------------------------------------
# Reading


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every entry named checkpoint-<digits> in ``folder``, oldest first."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    found = [(int(match[1]), path) for path in entries if (match := _NAME.fullmatch(path.name))]
    return sorted(found)


def remove_partial_checkpoints(folder: Path) -> list[Path]:
    """Delete the ``.partial-checkpoint-*`` leftovers of interrupted writes; return what was removed."""
    try:
        leftovers = sorted(p for p in Path(folder).iterdir() if p.name.startswith(PARTIAL_PREFIX))
    except OSError:
        return []
    for path in leftovers:
        logger.info("removing %s, left by an interrupted checkpoint write", path)
        _remove(path)
    return leftovers


def verify_checkpoint(path: Path) -> dict:
    """The manifest of the checkpoint at ``path``, or CheckpointError saying what does not match it."""
    if not path.is_dir() or path.is_symlink():
        raise CheckpointError("it is not a folder")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"it has no {MANIFEST} (an incomplete copy, or written by an older version)"
        ) from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"its {MANIFEST} does not read as JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"its {MANIFEST} is not a format-{MANIFEST_FORMAT} checkpoint manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not {ARRAYS, STATE} <= set(files):
        raise CheckpointError(f"its {MANIFEST} does not list {ARRAYS} and {STATE}")
    for name, expected in files.items():
        if not isinstance(name, str) or "/" in name or name in ("", ".", "..", MANIFEST):
            raise CheckpointError(f"its {MANIFEST} lists the odd name {name!r}")
        if not isinstance(expected, dict):
            raise CheckpointError(f"its {MANIFEST} entry for {name} is not an object")
        file = path / name
        if file.is_symlink() or not file.is_file():
            raise CheckpointError(f"{name} is missing")
        size = file.stat().st_size
        if size != expected.get("size"):
            raise CheckpointError(f"{name} has {size} bytes, the manifest says {expected.get('size')!r}")
        if _sha256(file) != expected.get("sha256"):
            raise CheckpointError(f"{name} does not match its SHA-256 in the manifest (the file changed)")
    return manifest


def _load(path: Path, step: int) -> Checkpoint:
    verify_checkpoint(path)
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise CheckpointError(f"{ARRAYS} does not load ({type(error).__name__}: {error})") from None
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{STATE} does not load ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("step") != step:
        found = state.get("step") if isinstance(state, dict) else state
        raise CheckpointError(f"{STATE} gives step {found!r}, the folder's name step {step}")
    return Checkpoint(path=path, step=step, arrays=arrays, state=state)


def load_latest_checkpoint(
    folder: Path, accept: Callable[[Checkpoint], None] | None = None
) -> Checkpoint | None:
    """The newest usable checkpoint in ``folder``, or None (a fresh start) if there is none.

    Leftovers of interrupted writes are removed first. A checkpoint that fails its manifest, does
    not load, or that ``accept`` refuses (by raising CheckpointError) is logged and skipped.
    """
    folder = Path(folder)
    remove_partial_checkpoints(folder)
    skipped = []
    for step, path in reversed(list_checkpoints(folder)):
        try:
            checkpoint = _load(path, step)
            if accept is not None:
                accept(checkpoint)
        except CheckpointError as error:
            logger.warning("skipping checkpoint %s: %s", path, error)
            skipped.append(path.name)
            continue
        if skipped:
            logger.warning(
                "resuming from the older checkpoint %s (skipped: %s)", path.name, ", ".join(skipped)
            )
        return checkpoint
    if skipped:
        logger.warning(
            "no usable checkpoint in %s (skipped: %s): starting afresh", folder, ", ".join(skipped)
        )
    return None
