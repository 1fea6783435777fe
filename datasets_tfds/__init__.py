"""TFDS builders of temzoo's datasets.

Importing this package registers every builder with TFDS. Each builder lives
in its own ``tfds new``-style folder and is imported explicitly, one line per
builder (``temzoo.datasets`` looks up each folder's builder in tfds' registry).
"""

from temzoo_datasets.au_np import au_np_dataset_builder  # noqa: F401
from temzoo_datasets.cem500k import cem500k_dataset_builder  # noqa: F401
from temzoo_datasets.synthetic_tem import synthetic_tem_dataset_builder  # noqa: F401
from temzoo_datasets.temimagenet import temimagenet_dataset_builder  # noqa: F401
