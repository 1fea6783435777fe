"""temzoo.atomic: whole files or nothing, with the permissions a plain open() gives."""

import os

import pytest

from temzoo.atomic import atomic_open, write_text


def test_new_file_gets_the_umask_mode_not_the_temporary_files_owner_only_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "card.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["card.json"]


def test_replacing_keeps_the_existing_files_mode(tmp_path):
    target = tmp_path / "log.csv"
    target.write_text("old")
    target.chmod(0o640)
    write_text(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640


def test_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("complete")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["model.json"]
