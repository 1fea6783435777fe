"""Deterministic labelled fractions of a split (the 2 % / 10 % / 100 % experiments)."""

import numpy as np
import tensorflow as tf

from temzoo.errors import BadInputError


def fraction_indices(num_examples, fraction, seed=0):
    """Sorted indices of ``round(fraction * num_examples)`` examples (at least 1).

    The indices are a prefix of one seeded permutation, so for the same seed a
    smaller fraction is a subset of a larger one (2 % within 10 % within 100 %).
    """
    if not 0 < fraction <= 1:
        raise BadInputError(f"fraction must be in (0, 1], got {fraction}.")
    count = max(1, int(round(fraction * num_examples)))
    return np.sort(np.random.default_rng(seed).permutation(num_examples)[:count])


def take_fraction(ds, fraction, seed=0, num_examples=None):
    """The examples of ``ds`` at :func:`fraction_indices`, in their original order.

    ``num_examples`` is needed when ``ds``'s cardinality is unknown.
    """
    if num_examples is None:
        num_examples = int(ds.cardinality())
        if num_examples < 0:
            raise BadInputError("the dataset's size is unknown; pass num_examples= to take_fraction.")
    keep = np.zeros(num_examples, dtype=bool)
    keep[fraction_indices(num_examples, fraction, seed)] = True
    keep = tf.constant(keep)
    count = int(keep.numpy().sum())
    out = ds.enumerate().filter(lambda i, _: keep[i]).map(lambda _, example: example)
    return out.apply(tf.data.experimental.assert_cardinality(count))
