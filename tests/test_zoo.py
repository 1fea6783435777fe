"""temzoo.list_models(): the table of architectures and pretrained models."""

import logging
import subprocess
import sys

import pytest

import temzoo
from temzoo.errors import UnknownNameError
from temzoo.zoo import table as zoo


def test_list_models_rows_and_table(monkeypatch):
    fake = {"demo_denoiser": {"name": "demo_denoiser", "architecture": "unet_b2_p22"}}
    monkeypatch.setattr(zoo, "_pretrained_entries", lambda: fake)
    logged = []
    handler = logging.Handler(logging.INFO)
    handler.emit = logged.append  # the library logs the table (it never prints); whatever logs.configure did
    logger = logging.getLogger("temzoo.zoo.table")
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(handler)
    try:
        rows = temzoo.list_models(architectures=["unet_b2_p22", "patchgan_16"], print_table=True)
    finally:
        logger.removeHandler(handler)
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == ["patchgan_16", "unet_b2_p22", "demo_denoiser"]
    unet = by_name["unet_b2_p22"]
    # counted from the built model: 2-stage U-Net, 16 base filters
    assert unet["family"] == "unet" and unet["parameters"] == temzoo.build("unet_b2_p22").count_params()
    assert unet["receptive_field"] == 44  # 1 + 2*2 + 1 + 2*2*2 + 2 + 2*2*4 + 2*2*2 + 2*2 (see unet.py)
    assert unet["pretrained"] == "yes"
    assert by_name["patchgan_16"] == {
        "name": "patchgan_16", "family": "patchgan", "parameters": 135_745, "receptive_field": 16, "pretrained": "no",
    }
    assert by_name["demo_denoiser"]["pretrained"] == "yes"
    assert by_name["demo_denoiser"]["receptive_field"] == 44
    (record,) = logged
    printed = record.getMessage().splitlines()
    assert printed[0].split() == ["name", "family", "parameters", "receptive", "field", "pretrained"]
    assert printed[2].split() == ["patchgan_16", "patchgan", "135,745", "16", "no"]
    assert len(printed) == 2 + 3


def test_list_models_unknown_name():
    with pytest.raises(UnknownNameError, match="unet_b2_p22"):
        zoo.list_models(print_table=False, architectures=["unet_b2_p2"])


def test_format_table_alignment():
    text = zoo.format_table([{"name": "a", "parameters": 1234567}], columns=("name", "parameters"))
    assert text.splitlines() == ["name  parameters", "----  ----------", "a     1,234,567 "]


def test_format_table_spells_out_booleans():
    text = zoo.format_table([{"name": "a", "ok": True}, {"name": "b", "ok": False}], columns=("name", "ok"))
    assert text.splitlines()[2:] == ["a     yes", "b     no "]


def test_list_models_shows_itself_as_a_table_and_prints_nothing(capsys):
    rows = temzoo.list_models()
    assert capsys.readouterr().out == ""  # a REPL shows the repr: the table, once
    assert isinstance(rows, list) and isinstance(rows[0], dict)
    assert repr(rows) == zoo.format_table(rows) and repr(rows).splitlines()[0].split()[0] == "name"
    names = [row["name"] for row in rows]
    assert "hrnet_pretrained" in names and "unet_b3_p222" in names


def test_list_models_builds_nothing_and_imports_neither_keras_nor_tensorflow():
    code = (
        "import sys, temzoo\n"
        "rows = temzoo.list_models()\n"
        "loaded = [m for m in ('keras', 'tensorflow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print(len(rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) >= 18


def test_stored_table_lists_every_registered_architecture_with_its_current_config():
    from temzoo.models import registry

    table = zoo.architecture_table()
    assert sorted(table) == registry.list_architectures(), "run `python -m temzoo.zoo.table` to rewrite the table"
    for name, row in table.items():
        entry = registry.architecture(name)
        assert (row["family"], row["kind"]) == (entry["family"], entry["kind"]), name
        assert row["config_hash"] == zoo.config_hash(entry["config"]), (
            f"{name}'s preset changed since models/architectures.json was written; run `python -m temzoo.zoo.table`")


@pytest.mark.parametrize("name", ["unet_b2_p22", "hrnet_w18_small_skip", "patchgan_16"])
def test_stored_numbers_equal_the_built_model(name):
    assert zoo.architecture_numbers(name) == zoo.architecture_table()[name]
