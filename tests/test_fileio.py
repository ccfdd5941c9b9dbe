"""Atomic writes: all or nothing, usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from simreal.fileio import atomic_write, atomic_write_text, recover_dir, replace_dir, staging_dir


def test_atomic_write_replaces_whole_files_with_usual_permissions(tmp_path):
    path = tmp_path / "report.json"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.zip"
    atomic_write_text(path, "good")

    def crash(tmp):
        tmp.write_text("half a fi")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_a_folder_replaced_mid_way_is_put_back_whole(tmp_path):
    final = tmp_path / "best"
    final.mkdir()
    (final / "model.zip").write_text("old model")
    (final / "vecnormalize.pkl").write_text("old statistics")
    staged = staging_dir(final)
    (staged / "model.zip").write_text("new model")
    (staged / "vecnormalize.pkl").write_text("new statistics")
    # a kill between the two renames: the old folder set aside, the new one not yet in place
    os.replace(final, tmp_path / f".best.old-{os.getpid()}")
    recover_dir(final)
    assert (final / "model.zip").read_text() == "old model" and (
        final / "vecnormalize.pkl"
    ).read_text() == "old statistics"
    assert not staged.exists() and [p.name for p in tmp_path.iterdir()] == ["best"]

    staged = staging_dir(final)
    (staged / "model.zip").write_text("new model")
    (staged / "vecnormalize.pkl").write_text("new statistics")
    replace_dir(staged, final)
    assert (final / "model.zip").read_text() == "new model" and (
        final / "vecnormalize.pkl"
    ).read_text() == "new statistics"
    assert [p.name for p in tmp_path.iterdir()] == ["best"]
