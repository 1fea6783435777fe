"""The experiment's grid: one :class:`Cell` (a fine-tuning run) per model x init x fraction x seed."""

import dataclasses

from temzoo.errors import BadInputError
from temzoo.training.experiment.settings import INITS, STUDIES, Budget, DataSpec


@dataclasses.dataclass(frozen=True)
class Cell:
    study: str
    task: str
    data: DataSpec
    model: str  # architecture
    init: str  # pix2pix, autoencoder or random
    fraction: float
    seed: int
    budget: Budget
    weights: str | None = None  # pretrained entry name (None for random)
    available: bool = True
    reason: str = ""

    @property
    def key(self):
        return "|".join(str(v) for v in (self.study, self.task, self.data.title, self.model, self.init,
                                          f"{self.fraction:g}", self.seed))

    @property
    def group(self):
        """Cells that must share a budget."""
        return (self.study, self.task, self.data.title)


def pretraining_method(entry):
    """``pix2pix`` or ``autoencoder`` for a pretrained registry entry (from its card, else its name)."""
    from temzoo.zoo import pretrained

    try:
        card = pretrained.card(entry["name"]) or {}
    except Exception:  # a missing file is reported when the cell loads it, not here
        card = entry.get("card") or {}
    method = card.get("method")
    if isinstance(method, dict):
        method = method.get("name")
    if method in ("pix2pix", "autoencoder"):
        return method
    names = [entry["name"], *entry.get("aliases", ())]
    if any("autoencoder" in n for n in names):
        return "autoencoder"
    if any("pix2pix" in n for n in names):
        return "pix2pix"
    return None


def shipped_weights(entries=None):
    """``{(architecture, method): entry name}`` for the pretrained entries (built-in ones win)."""
    from temzoo.zoo import pretrained

    entries = pretrained.pretrained_entries() if entries is None else entries
    found = {}
    ordered = sorted(entries.values(), key=lambda e: (not e.get("builtin", False), e["name"]))
    for entry in ordered:
        method = pretraining_method(entry)
        key = (entry.get("architecture"), method)
        if method and key not in found:
            found[key] = entry["name"]
    return found


def pretraining_grid(settings, weights=None):
    """Every cell of the pretraining study; cells without shipped weights are ``available=False``."""
    weights = shipped_weights() if weights is None else weights
    cells = []
    for task, data in settings.task_data.items():
        for fraction in settings.fractions:
            for model in settings.models:
                for init in settings.inits:
                    if init not in INITS:
                        raise BadInputError(f"init {init!r} is not one of {', '.join(INITS)}.")
                    name = None if init == "random" else weights.get((model, init))
                    missing = init != "random" and name is None
                    reason = f"no shipped {init} weights for {model}" if missing else ""
                    for seed in settings.seeds:
                        cells.append(Cell("pretraining", task, data, model, init, fraction, seed, settings.budget,
                                          weights=name, available=not missing, reason=reason))
    return cells


def receptive_field_grid(settings):
    """Every cell of the receptive-field study (segmentation, random init, ``rf_fraction``)."""
    cells = []
    for data in settings.rf_data:
        for model in settings.rf_models:
            for seed in settings.rf_seeds:
                cells.append(Cell("receptive_field", "segmentation", data, model, "random", settings.rf_fraction,
                                  seed, settings.rf_budget))
    return cells


def experiment_grid(settings, weights=None, studies=STUDIES):
    cells = []
    if "pretraining" in studies:
        cells += pretraining_grid(settings, weights)
    if "receptive_field" in studies and settings.rf_models and settings.rf_data:
        cells += receptive_field_grid(settings)
    check_budgets(cells)
    return cells


def check_budgets(cells):
    """Raise unless every cell of a (study, task, dataset) group has the same budget."""
    seen = {}
    for cell in cells:
        first = seen.setdefault(cell.group, cell.budget)
        if first != cell.budget:
            raise BadInputError(f"cells of {cell.group} have different budgets: {first} and {cell.budget}.")
    return True


def all_weights(settings):
    """A weights map that makes every pretrained cell available (for estimates of grids with all weights shipped)."""
    return {(m, i): f"{m}_{i}" for m in settings.models for i in settings.inits if i != "random"}
