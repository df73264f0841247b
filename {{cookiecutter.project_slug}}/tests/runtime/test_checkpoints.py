"""Checkpoints: manifested, written whole, restored from the newest usable one, never a crash loop.

COUNT: 14 ways to damage the newest checkpoint (each must fall back to the previous one), 4 ways a
write fails (ENOSPC from np.savez, from os.replace, from a real 64 KiB tmpfs, EIO), 3 leftovers.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from template_runtime import checkpoints
from template_runtime.checkpoints import (
    ARRAYS,
    MANIFEST,
    STATE,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)

ARRAYS_1 = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "count": np.array(1.0)}
ARRAYS_2 = {"w": np.ones((2, 3), np.float32), "count": np.array(2.0)}


def two_checkpoints(folder: Path) -> tuple[Path, Path]:
    first = save_checkpoint(folder, 100, ARRAYS_1, {"note": "first"})
    second = save_checkpoint(folder, 200, ARRAYS_2, {"note": "second"})
    return first, second


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- writing --------------------------------------------------------------------------------------


def test_checkpoint_holds_arrays_state_and_a_manifest_of_both(tmp_path):
    path = save_checkpoint(tmp_path, 100, ARRAYS_1, {"note": "first"})
    assert path == tmp_path / "checkpoint-000000000100"
    assert names(path) == [ARRAYS, MANIFEST, STATE]
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["step"] == 100 and set(manifest["files"]) == {ARRAYS, STATE}
    assert manifest["files"][ARRAYS]["size"] == (path / ARRAYS).stat().st_size
    assert len(manifest["files"][STATE]["sha256"]) == 64
    assert names(tmp_path) == ["checkpoint-000000000100"]  # no partial folder left


def test_round_trip_returns_arrays_and_state(tmp_path):
    save_checkpoint(tmp_path, 100, ARRAYS_1, {"rng": {"a": 2**100}, "returns": [1.5]})
    found = load_latest_checkpoint(tmp_path)
    assert found.step == 100 and found.state == {"rng": {"a": 2**100}, "returns": [1.5], "step": 100}
    assert np.array_equal(found.arrays["w"], ARRAYS_1["w"]) and found.arrays["w"].dtype == np.float32


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, ARRAYS_1, {})
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_saving_the_same_step_again_replaces_it_whole(tmp_path):
    save_checkpoint(tmp_path, 100, ARRAYS_1, {"note": "first"})
    (tmp_path / "checkpoint-000000000100" / ARRAYS).write_bytes(b"")  # damaged
    save_checkpoint(tmp_path, 100, ARRAYS_2, {"note": "again"})
    assert load_latest_checkpoint(tmp_path).state["note"] == "again"
    assert names(tmp_path) == ["checkpoint-000000000100"]


def test_newer_checkpoints_than_the_one_written_are_left_alone(tmp_path):
    save_checkpoint(tmp_path, 500, ARRAYS_1, {})
    save_checkpoint(tmp_path, 100, ARRAYS_1, {})
    save_checkpoint(tmp_path, 200, ARRAYS_1, {})  # keeps itself and one older; 500 is not its to judge
    assert [step for step, _ in list_checkpoints(tmp_path)] == [100, 200, 500]


def test_other_files_in_the_checkpoint_folder_are_never_touched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "checkpoint-notes").mkdir()
    (tmp_path / ".partial-other").mkdir()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, ARRAYS_1, {})
    load_latest_checkpoint(tmp_path)
    assert {"notes.txt", "checkpoint-notes", ".partial-other"} <= set(names(tmp_path))


# ---- a write that fails is a warning, and the previous checkpoint stays -------------------------


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("target", "error"),
    [("savez", errno.ENOSPC), ("replace", errno.ENOSPC), ("savez", errno.EIO)],
    ids=["savez-enospc", "replace-enospc", "savez-eio"],
)
def test_failed_write_warns_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, caplog, target, error):
    save_checkpoint(tmp_path, 100, ARRAYS_1, {"note": "first"})

    def fail(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(checkpoints.np if target == "savez" else checkpoints.os, target, fail)
    with caplog.at_level(logging.WARNING, "trainer.checkpoints"):
        assert save_checkpoint(tmp_path, 200, ARRAYS_2, {"note": "second"}) is None
    monkeypatch.undo()
    assert f"could not write checkpoint {tmp_path / 'checkpoint-000000000200'}" in caplog.text
    assert (
        errno.errorcode[error] in caplog.text
        and "the latest checkpoint is still checkpoint-000000000100" in caplog.text
    )
    assert names(tmp_path) == ["checkpoint-000000000100"]  # no partial folder left behind
    assert load_latest_checkpoint(tmp_path).state["note"] == "first"


def test_a_really_full_disk_keeps_the_previous_checkpoint(tmp_path):
    """A 64 KiB tmpfs in a private mount namespace (unshare -rm): the second checkpoint does not fit."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    mount = tmp_path / "small"
    mount.mkdir()
    script = textwrap.dedent(
        f"""
        import json, logging, sys
        import numpy as np
        sys.path.insert(0, {str(Path(checkpoints.__file__).parents[1])!r})
        from template_runtime.checkpoints import save_checkpoint, load_latest_checkpoint
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        folder = {str(mount)!r}
        first = save_checkpoint(folder, 1, {{"w": np.zeros(100)}}, {{}})
        second = save_checkpoint(folder, 2, {{"w": np.zeros(100_000)}}, {{}})
        import os
        listing = sorted(os.listdir(folder))
        print(json.dumps([str(first), second, listing, load_latest_checkpoint(folder).step]))
        """
    )
    command = f'mount -t tmpfs -o size=64k tmpfs {mount} && exec {sys.executable} -c "$0"'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command, script], capture_output=True, text=True)
    if "mount" in result.stderr and result.returncode != 0 and "Traceback" not in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    first, second, listing, restored = json.loads(result.stdout.splitlines()[-1])
    assert first.endswith("checkpoint-000000000001") and second is None
    assert listing == ["checkpoint-000000000001"] and restored == 1
    assert "No space left on device (ENOSPC) (the disk or quota is full)" in result.stderr


# ---- a damaged newest checkpoint: resume from the one before --------------------------------------


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def rewrite_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated npz": lambda c: truncate(c / ARRAYS, 0.5),
    "empty npz": lambda c: (c / ARRAYS).write_bytes(b""),
    "npz one byte flipped": lambda c: flip_byte(c / ARRAYS),
    "bad state.json": lambda c: (c / STATE).write_text("{not json"),
    "empty state.json": lambda c: (c / STATE).write_text(""),
    "missing manifest": lambda c: (c / MANIFEST).unlink(),
    "empty manifest": lambda c: (c / MANIFEST).write_text(""),
    "manifest is a list": lambda c: (c / MANIFEST).write_text("[]"),
    "manifest size mismatch": lambda c: rewrite_manifest(c, lambda m: m["files"][ARRAYS].update(size=1)),
    "manifest hash mismatch": lambda c: rewrite_manifest(
        c, lambda m: m["files"][STATE].update(sha256="0" * 64)
    ),
    "missing npz": lambda c: (c / ARRAYS).unlink(),
    "folder is a file": lambda c: (shutil.rmtree(c), c.write_text("x")),
    "npz replaced by a symlink": lambda c: ((c / ARRAYS).unlink(), (c / ARRAYS).symlink_to("/dev/null")),
    "state.json of another step, manifest rewritten to match": lambda c: _consistent_but_wrong_step(c),
}


def _consistent_but_wrong_step(folder: Path) -> None:
    (folder / STATE).write_text(json.dumps({"step": 999}))
    rewrite_manifest(
        folder,
        lambda m: m["files"][STATE].update(
            size=(folder / STATE).stat().st_size, sha256=checkpoints._sha256(folder / STATE)
        ),
    )


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_is_skipped_and_named(tmp_path, caplog, damage):
    _, newest = two_checkpoints(tmp_path)
    DAMAGE[damage](newest)
    with caplog.at_level(logging.WARNING, "trainer.checkpoints"):
        found = load_latest_checkpoint(tmp_path)
    assert found.step == 100 and found.state["note"] == "first"
    assert f"skipping checkpoint {newest}: " in caplog.text
    assert "resuming from the older checkpoint checkpoint-000000000100" in caplog.text


def test_damage_is_described(tmp_path):
    _, newest = two_checkpoints(tmp_path)
    truncate(newest / ARRAYS, 0.5)
    with pytest.raises(checkpoints.CheckpointError, match=r"arrays.npz has \d+ bytes, the manifest says \d+"):
        verify_checkpoint(newest)


def test_when_every_checkpoint_is_damaged_the_run_starts_afresh(tmp_path, caplog):
    for path in two_checkpoints(tmp_path):
        (path / MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, "trainer.checkpoints"):
        assert load_latest_checkpoint(tmp_path) is None
    assert "no usable checkpoint" in caplog.text and "starting afresh" in caplog.text


def test_no_folder_or_an_empty_one_is_a_fresh_start(tmp_path):
    assert load_latest_checkpoint(tmp_path / "none") is None
    assert load_latest_checkpoint(tmp_path) is None


def test_accept_can_refuse_a_checkpoint_and_the_restore_goes_on(tmp_path):
    two_checkpoints(tmp_path)

    def accept(checkpoint):
        if checkpoint.step == 200:
            raise checkpoints.CheckpointError("not for this model")

    assert load_latest_checkpoint(tmp_path, accept).step == 100


# ---- leftovers of interrupted writes ------------------------------------------------------------


def test_leftovers_of_interrupted_writes_are_removed_at_start(tmp_path):
    save_checkpoint(tmp_path, 100, ARRAYS_1, {})
    (tmp_path / ".partial-checkpoint-000000000200-4242").mkdir()
    (tmp_path / ".partial-checkpoint-000000000200-4242" / ARRAYS).write_bytes(b"half")
    (tmp_path / ".partial-checkpoint-000000000100-7-old").mkdir()
    (tmp_path / ".partial-checkpoint-stray-file").write_text("x")
    assert load_latest_checkpoint(tmp_path).step == 100
    assert names(tmp_path) == ["checkpoint-000000000100"]
