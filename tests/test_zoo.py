"""temzoo.list_models(): the table of architectures and pretrained models."""

import pytest

import temzoo
from temzoo import zoo
from temzoo.errors import UnknownNameError


def test_list_models_rows_and_table(monkeypatch, capsys):
    fake = {"demo_denoiser": {"name": "demo_denoiser", "architecture": "unet_b2_p22"}}
    monkeypatch.setattr(zoo, "_pretrained_entries", lambda: fake)
    rows = temzoo.list_models(architectures=["unet_b2_p22", "patchgan_16"])
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
    printed = capsys.readouterr().out.splitlines()
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
