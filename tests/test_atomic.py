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


def test_exclusive_write_never_replaces_a_file_created_meanwhile(tmp_path):
    from temzoo.atomic import OutputExistsError, atomic_open

    target = tmp_path / "x_segmentation.tif"
    with pytest.raises(OutputExistsError, match="created by another process"), \
            atomic_open(target, "w", exclusive=True) as f:
        f.write("mine")
        target.write_text("theirs")  # another run commits first
    assert target.read_text() == "theirs"
    assert os.listdir(tmp_path) == ["x_segmentation.tif"]
    with pytest.raises(OutputExistsError, match="the output file exists"), atomic_open(target, exclusive=True):
        pass
    write_text(tmp_path / "new.json", "{}", exclusive=True)
    assert (tmp_path / "new.json").read_text() == "{}"


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    from temzoo.atomic import _host, remove_stale_partials

    host = _host()
    names = {
        f".m.keras.{host}-{2**22 + 12345}.ab12cd_9.partial.keras": True,  # this host, no such process
        f".m.keras.{host}-{2**22 + 12345}.ab12cd_9.partial.keras.deflate": True,
        ".m.keras.abcd1234.partial.keras": True,  # an older version's name, without a process id
        f".m.keras.{host}-{os.getpid()}.zz99yy88.partial.keras": False,  # a live writer
        f".m.keras.otherhost-{2**22 + 12345}.ab12cd_9.partial.keras": False,  # cannot tell: kept
        ".n.keras.abcd1234.partial.keras": False,  # another file's
    }
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_partials(tmp_path / "m.keras")
    assert sorted(os.path.basename(p) for p in removed) == sorted(n for n, stale in names.items() if stale)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, stale in names.items() if not stale)


def test_check_writable_dir_says_what_is_wrong_and_creates_nothing(tmp_path):
    from temzoo.atomic import check_writable_dir
    from temzoo.errors import BadInputError

    assert check_writable_dir(tmp_path / "new" / "deeper") == str(tmp_path / "new" / "deeper")
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="is a file, not a folder"):
        check_writable_dir(tmp_path / "file" / "out")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            with pytest.raises(BadInputError, match="not writable"):
                check_writable_dir(locked)
        finally:
            locked.chmod(0o755)
