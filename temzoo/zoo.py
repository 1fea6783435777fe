"""``list_models()``: the table of what temzoo can build and load."""

from temzoo.models import registry


def _pretrained_entries():
    """Pretrained registry entries (name -> entry); empty until weights exist."""
    try:
        from temzoo.pretrained import pretrained_entries
    except ImportError:
        return {}
    return pretrained_entries()


def list_models(print_table=True, architectures=None):
    """Return (and print) one row per registered architecture and pretrained model.

    Each row is a dict with ``name``, ``family``, ``parameters``,
    ``receptive_field`` (pixels, :func:`temzoo.receptive_field`) and
    ``pretrained`` (weights available: yes/no). Pretrained entries are listed
    under their own names with their architecture's numbers.

    Every architecture is built once (random weights) to count its parameters
    and walk its graph; ``architectures`` limits the table to those names.
    """
    import keras

    from temzoo.receptive_field import receptive_field

    pretrained = _pretrained_entries()
    with_weights = {entry["architecture"] for entry in pretrained.values()}
    rows = []
    names = registry.list_architectures()
    if architectures is not None:
        for name in architectures:
            registry.architecture(name)  # unknown names fail with close matches
        names = [n for n in names if n in set(architectures)]
    for name in names:
        model = registry.build(name)
        rows.append(
            {
                "name": name,
                "family": registry.architecture(name)["family"],
                "parameters": model.count_params(),
                "receptive_field": receptive_field(model),
                "pretrained": "yes" if name in with_weights else "no",
            }
        )
        del model
        keras.backend.clear_session()
    by_arch = {row["name"]: row for row in rows}
    for name, entry in sorted(pretrained.items()):
        if architectures is not None and entry.get("architecture") not in by_arch:
            continue
        arch = by_arch.get(entry["architecture"], {})
        rows.append(
            {
                "name": name,
                "family": arch.get("family", "?"),
                "parameters": entry.get("parameters", arch.get("parameters")),
                "receptive_field": entry.get("receptive_field", arch.get("receptive_field")),
                "pretrained": "yes",
            }
        )
    if print_table:
        print(format_table(rows))
    return rows


def format_table(rows, columns=("name", "family", "parameters", "receptive_field", "pretrained")):
    """Plain-text table, one row per dict."""
    headers = [c.replace("_", " ") for c in columns]
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _fmt(value):
    if isinstance(value, bool):  # before int: True is an int and would print as 1
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)
