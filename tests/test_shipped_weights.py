"""Every shipped pretrained model: verified file, honest card, reproduces its recorded output."""

import json
import os

import pytest

import temzoo
from temzoo import pretrained
from temzoo.cards import card_path, read_card, sha256_file

ENTRIES = pretrained._builtin_entries()
CARD_FIELDS = ("architecture", "config", "parameters", "receptive_field", "pretext", "normalization",
               "data", "method", "steps", "metrics", "software", "date", "sha256", "recipe",
               "training_data_note", "denoising")


def test_registry_lists_the_shipped_files():
    shipped = {f[: -len(".keras")] for f in os.listdir(pretrained.WEIGHTS_DIR) if f.endswith(".keras")}
    assert shipped == set(ENTRIES), "every .keras in temzoo/weights needs a registry entry and vice versa"


def test_total_shipped_weights_stay_under_40_mb():
    total = sum(os.path.getsize(os.path.join(pretrained.WEIGHTS_DIR, e["file"])) for e in ENTRIES.values())
    assert total <= 40e6


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_shipped_model_is_verified_and_reproduces_its_reference(name):
    entry = ENTRIES[name]
    path = pretrained.weights_path(entry)
    assert sha256_file(path) == entry["sha256"]
    (row,) = pretrained.verify(name)
    assert row["ok"], row
    assert row["max_abs_diff"] <= 1e-4  # stated tolerance: float32 CPU re-run of the recorded output


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_shipped_card_says_what_it_is(name):
    card = read_card(card_path(pretrained.weights_path(ENTRIES[name])))
    missing = [f for f in CARD_FIELDS if f not in card]
    assert not missing, f"{name}: card lacks {missing}"
    assert card["sha256"] == ENTRIES[name]["sha256"]
    assert card["architecture"] == ENTRIES[name]["architecture"]
    assert "synthetic_tem/unlabeled" in card["training_data_note"] and "cem500k" in card["training_data_note"]
    report = card["denoising"]
    assert report["gain_over_noisy_db"] == pytest.approx(report["psnr_model_db"] - report["psnr_noisy_db"])
    recipe = json.load(open(os.path.join(os.path.dirname(pretrained.WEIGHTS_DIR), "..", card["recipe"])))
    assert recipe["architecture"] == card["architecture"]


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_load_by_alias_gives_the_same_model(name):
    aliases = ENTRIES[name].get("aliases") or [name]
    model = temzoo.load(aliases[0])
    assert temzoo.card(model)["sha256"] == ENTRIES[name]["sha256"]
    assert model.count_params() == ENTRIES[name]["parameters"]
