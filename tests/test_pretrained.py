"""The pretrained registry: verified loading, user registration, URL entries, verify()."""

import json
import os
import pathlib

import numpy as np
import pytest

import temzoo
from temzoo.errors import BadInputError, TemzooError, UnknownNameError
from temzoo.zoo import pretrained
from temzoo.zoo.cards import card_path, export_model, read_card, sha256_file


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = temzoo.build("unet_b2_p22", base_filters=4)
    path = tmp_path_factory.mktemp("weights") / "tiny.keras"
    card = export_model(model, path, {"name": "tiny", "architecture": "unet_b2_p22"})
    pretrained.record_reference(model, path, size=16)
    return model, str(path), card


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for name in list(pretrained._user_entries):
        pretrained.unregister(name)


def test_export_writes_card_with_the_file_hash(exported):
    _, path, card = exported
    assert card["sha256"] == sha256_file(path)
    assert read_card(card_path(path))["sha256"] == card["sha256"]
    assert not [f for f in os.listdir(os.path.dirname(path)) if ".partial" in f]


def test_register_and_load_by_name_attaches_card(exported):
    model, path, _ = exported
    temzoo.register("my_tiny", path, aliases=["tiny_alias"])
    loaded = temzoo.load("tiny_alias")
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert temzoo.card(loaded)["name"] == "tiny"
    assert loaded.temzoo_card["sha256"] == sha256_file(path)


def test_tampered_file_is_refused_before_loading(exported, tmp_path):
    _, path, _ = exported
    copy = tmp_path / "copy.keras"
    copy.write_bytes(pathlib.Path(path).read_bytes())
    temzoo.register("tampered", copy)
    with open(copy, "ab") as f:
        f.write(b"x")
    with pytest.raises(pretrained.IntegrityError, match="does not match its registered sha256"):
        temzoo.load("tampered")


def test_missing_file_gives_clear_error(exported, tmp_path):
    _, path, _ = exported
    copy = tmp_path / "gone.keras"
    copy.write_bytes(pathlib.Path(path).read_bytes())
    temzoo.register("gone", copy)
    copy.unlink()
    with pytest.raises(BadInputError, match="missing"):
        temzoo.load("gone")
    with pytest.raises(BadInputError, match="no such model file"):
        temzoo.load(str(tmp_path / "nothing.keras"))


def test_unknown_name_lists_close_matches(exported):
    temzoo.register("my_tiny", exported[1])
    with pytest.raises(UnknownNameError, match="Did you mean: my_tiny"):
        temzoo.load("my_tinyy")


def test_architecture_name_points_to_build():
    with pytest.raises(UnknownNameError, match=r"temzoo.build\('unet_b2_p22'\)"):
        temzoo.load("unet_b2_p22")


def test_url_entry_downloads_once_into_temzoo_home(exported, tmp_path, monkeypatch):
    _, path, card = exported
    monkeypatch.setenv("TEMZOO_HOME", str(tmp_path / "home"))
    temzoo.register("remote", url=pathlib.Path(path).as_uri(), sha256=card["sha256"])
    model = temzoo.load("remote")
    cached = tmp_path / "home" / "weights" / "remote.keras"
    assert cached.exists() and sha256_file(cached) == card["sha256"]
    assert model.count_params() > 0


def test_unreachable_url_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMZOO_HOME", str(tmp_path / "home"))
    temzoo.register("offline", url=(tmp_path / "absent.keras").as_uri(), sha256="0" * 64)
    with pytest.raises(TemzooError, match=r"place it at .*home.weights.offline\.keras"):
        temzoo.load("offline")


def test_verify_checks_hash_and_recorded_output(exported, tmp_path):
    _, path, _ = exported
    temzoo.register("my_tiny", path)
    (row,) = pretrained.verify("my_tiny")
    assert row["ok"] and row["reproduces"] == "ok" and row["max_abs_diff"] <= 1e-4
    # a reference the model does not reproduce is reported
    copy = tmp_path / "other.keras"
    copy.write_bytes(pathlib.Path(path).read_bytes())
    data = np.load(pretrained.reference_path(path))
    np.savez(pretrained.reference_path(copy), input=data["input"], output=data["output"] + 1.0)
    temzoo.register("other", copy)
    (row,) = pretrained.verify("other")
    assert not row["ok"] and "differs" in row["reproduces"]


def test_cli_models_verify_and_info(exported, tmp_path):
    from click.testing import CliRunner
    from temzoo_cli.main import cli

    _, path, _ = exported
    temzoo.register("my_tiny", path)
    runner = CliRunner()
    good = runner.invoke(cli, ["models", "verify", "my_tiny"])
    assert good.exit_code == 0, good.output
    (row,) = [line.split() for line in good.output.splitlines() if line.startswith("my_tiny")]
    assert row == ["my_tiny", "ok", "ok", "yes"]
    info = runner.invoke(cli, ["models", "info", "my_tiny"])
    assert info.exit_code == 0 and json.loads(info.output)["sha256"] == sha256_file(path)
    # a model that does not reproduce its recorded output fails verify with exit 1
    copy = tmp_path / "other.keras"
    copy.write_bytes(pathlib.Path(path).read_bytes())
    data = np.load(pretrained.reference_path(path))
    np.savez(pretrained.reference_path(copy), input=data["input"], output=data["output"] + 1.0)
    temzoo.register("other", copy)
    bad = runner.invoke(cli, ["models", "verify", "other"])
    assert bad.exit_code == 1
    assert "differs by" in bad.output and bad.output.rstrip().endswith("no")
    unknown = runner.invoke(cli, ["models", "info", "no_such_model"])
    assert unknown.exit_code != 0 and "no_such_model" in unknown.output


def test_register_refuses_wrong_hash(exported):
    with pytest.raises(pretrained.IntegrityError):
        temzoo.register("bad", exported[1], sha256="f" * 64)


def test_exported_archive_is_compressed_and_loads(exported):
    import zipfile

    model, path, _ = exported
    with zipfile.ZipFile(path) as archive:
        weights = archive.getinfo("model.weights.h5")
    assert weights.compress_type == zipfile.ZIP_DEFLATED
    x = np.ones((1, 16, 16, 1), "float32")
    np.testing.assert_allclose(temzoo.load(path)(x), model(x), atol=1e-6)


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(), "is a folder, not a .keras model archive"),
    (lambda p: p.write_bytes(os.urandom(2048)), "not a .keras model archive (not a zip archive"),
    (lambda p: p.write_bytes(b""), "not a .keras model archive (an empty file"),
    (lambda p: __import__("zipfile").ZipFile(p, "w").writestr("readme.txt", "hi"), "without config.json"),
])
def test_load_says_a_file_is_not_a_keras_archive(tmp_path, make, message):
    path = tmp_path / "x.keras"
    make(path)
    with pytest.raises(BadInputError, match=__import__("re").escape(message)) as info:
        temzoo.load(str(path))
    assert str(path) in str(info.value) and "File not found" not in str(info.value)


def test_an_export_interrupted_between_model_and_card_never_exposes_a_model_without_its_card(
        exported, tmp_path, monkeypatch):
    import temzoo.atomic

    model, _, _ = exported
    path = tmp_path / "m.keras"
    targets = {str(path), card_path(str(path))}
    real_replace, committed = os.replace, []

    def crash_before_the_second(src, dst):  # kill -9 between the two commits
        if os.fspath(dst) in targets:
            if committed:
                raise KeyboardInterrupt("killed")
            committed.append(os.fspath(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(temzoo.atomic.os, "replace", crash_before_the_second)
    with pytest.raises(KeyboardInterrupt):
        export_model(model, path, {"name": "m"})
    monkeypatch.undo()
    assert not path.exists() or read_card(card_path(str(path))) is not None  # no model without a card
    with pytest.raises(BadInputError):
        temzoo.load(str(path))
    # a re-export over a complete model, interrupted the same way: the old model is refused, not loaded
    export_model(model, path, {"name": "m"})
    committed.clear()
    monkeypatch.setattr(temzoo.atomic.os, "replace", crash_before_the_second)
    with pytest.raises(KeyboardInterrupt):
        export_model(temzoo.build("unet_b2_p22", base_filters=8), path, {"name": "m2"})
    monkeypatch.undo()
    if read_card(card_path(str(path)))["name"] == "m2":
        with pytest.raises(pretrained.IntegrityError, match="an export was interrupted"):
            temzoo.load(str(path))
    # temporary files that killed exports left (a dead process; an older version's name) go at the next export
    from temzoo.atomic import _host

    (tmp_path / f".m.keras.{_host()}-{2**22 + 4321}.k3j4h5g6.partial.keras").write_bytes(b"half")
    (tmp_path / ".m.json.q1w2e3r4.partial.json").write_text("{")
    export_model(model, path, {"name": "m"})
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.keras"]
    assert temzoo.card(temzoo.load(str(path)))["name"] == "m"
