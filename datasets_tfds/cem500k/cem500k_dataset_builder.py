"""cem500k: 0.5 M unlabelled 224x224 cellular EM images (Conrad & Narayan 2021, EMPIAR-10592).

Every ``*.tif``/``*.tiff`` below the extracted archive becomes one example with its source
data set (the top-level folder it sits in) and its file name. About 1% of the files form a
``validation`` split chosen by the SHA-1 of the file's path relative to the archive root.
Unreadable files are logged by name and skipped; more than 1% unreadable fails the build.
"""

import hashlib
import io
import logging
import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tifffile
from etils import epath

logger = logging.getLogger(__name__)

EMPIAR_URL = "https://www.ebi.ac.uk/empiar/EMPIAR-10592/"
IMAGE_SIZE = 224
# Published normalisation constants of CEM500K (pixel values scaled to [0, 1]).
MEAN = 0.57287007
STD = 0.12740536
TIFF_SUFFIXES = (".tif", ".tiff")
# Hash buckets out of 10000 that go to validation: 100 -> 1%.
VALIDATION_BUCKETS = 100


def split_of(relative_path):
    """``validation`` for ~1% of paths (SHA-1 bucket), else ``train``; stable everywhere."""
    bucket = int(hashlib.sha1(relative_path.encode("utf-8")).hexdigest(), 16) % 10_000
    return "validation" if bucket < VALIDATION_BUCKETS else "train"


def find_root(manual_dir):
    """The extracted archive: ``<manual_dir>/cem500k`` if present, else ``manual_dir``,
    descending through folders that hold nothing but one sub-folder (zip wrappers)."""
    root = manual_dir / "cem500k" if (manual_dir / "cem500k").is_dir() else manual_dir
    while True:
        entries = list(root.iterdir())
        folders = [p for p in entries if p.is_dir()]
        if len(folders) == 1 and not any(p.suffix.lower() in TIFF_SUFFIXES for p in entries):
            root = folders[0]
        else:
            return root


def list_tiffs(root):
    """``(relative posix path, path)`` of every TIFF below ``root``, sorted.

    On a local disk symbolic links are followed only while they stay inside ``root``
    (a link out of the folder is skipped with a warning), and every real file and
    folder is visited once, so a link cycle or a second link to the same file does
    not ingest an image twice. Folders are walked in sorted order: of several paths to
    one file, the first in that order is kept.
    """
    if not pathlib.Path(str(root)).is_dir():  # a remote folder (GCS ...): no symbolic links there
        found = []
        # tf.io.gfile.walk: epath's rglob refuses `**` (it could mean many GCS requests).
        for folder, _, filenames in tf.io.gfile.walk(str(root)):
            for filename in filenames:
                if filename.lower().endswith(TIFF_SUFFIXES):
                    path = epath.Path(folder) / filename
                    found.append((path.relative_to(root).as_posix(), path))
        return sorted(found)
    # pathlib, not os: TFDS's builder tests forbid `os` in builder modules
    top = pathlib.Path(str(root)).resolve()
    seen, found, outside = {top}, [], []
    repeats = _walk_local(top, top, "", seen, found, outside)
    if outside:
        logger.warning("cem500k: skipped %d symbolic link(s) that lead out of %s: %s", len(outside), root,
                       ", ".join(outside[:10]) + (" ..." if len(outside) > 10 else ""))
    if repeats:
        logger.warning("cem500k: %d symbolic link(s) lead to folders or files already read; each is read once.",
                       repeats)
    return sorted((relative, epath.Path(root) / relative) for relative in found)


def _walk_local(top, folder, prefix, seen, found, outside):
    """Depth first in sorted order below ``folder``; adds to ``found`` (relative paths of TIFFs) and
    ``outside`` (links out of ``top``); ``seen`` holds the real paths visited. Returns the repeats."""
    repeats = 0
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        relative = prefix + entry.name
        is_dir = entry.is_dir()
        if not is_dir and not entry.name.lower().endswith(TIFF_SUFFIXES):
            continue
        real = entry.resolve()
        if real != top and top not in real.parents:
            outside.append(relative)
        elif real in seen:
            repeats += 1
        else:
            seen.add(real)
            if is_dir:
                repeats += _walk_local(top, entry, relative + "/", seen, found, outside)
            else:
                found.append(relative)
    return repeats


def read_image(path):
    """The image as uint8 (224, 224, 1); raises ValueError saying what is wrong."""
    try:
        array = tifffile.imread(io.BytesIO(path.read_bytes()))
    except Exception as err:  # tifffile raises several types on broken files
        raise ValueError(f"not a readable TIFF ({type(err).__name__}: {err})") from err
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"shape {array.shape}, expected ({IMAGE_SIZE}, {IMAGE_SIZE})")
    if array.dtype != np.uint8:
        raise ValueError(f"dtype {array.dtype}, expected uint8")
    return array[..., None]


class UnreadableFilesError(ValueError):
    """Too many CEM500K files could not be read; the message gives the count and names."""


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for CEM500K."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    # A split fails when more than this fraction of its files cannot be read.
    MAX_UNREADABLE_FRACTION = 0.01
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download CEM500K (about 25 GB) from EMPIAR-10592: {EMPIAR_URL}
    and extract it into <manual_dir>/cem500k/, or give the extracted folder itself:
    `temzoo-cli data build cem500k --manual-dir DIR`. Every *.tif / *.tiff below it
    is read, at any depth; the top-level sub-folder a file sits in is its `source`.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
                    "source": tfds.features.Text(),
                    "filename": tfds.features.Text(),
                }
            ),
            supervised_keys=None,
            homepage=EMPIAR_URL,
        )

    def _split_generators(self, dl_manager):
        root = find_root(epath.Path(dl_manager.manual_dir))
        files = list_tiffs(root)
        if not files:
            raise FileNotFoundError(
                f"cem500k: no .tif/.tiff files below {root}. Extract the EMPIAR-10592 archive "
                f"into {dl_manager.manual_dir / 'cem500k'} (see {EMPIAR_URL})."
            )
        splits = {"train": [], "validation": []}
        for relative, path in files:
            splits[split_of(relative)].append((relative, path))
        logger.info(
            "cem500k: %d files below %s (%d train, %d validation)",
            len(files),
            root,
            len(splits["train"]),
            len(splits["validation"]),
        )
        # TFDS refuses an empty split; only a tiny tree (under ~100 files) can lack validation.
        return {
            name: self._generate_examples(name, items) for name, items in splits.items() if items
        }

    def _generate_examples(self, split, items):
        unreadable = []
        for relative, path in items:
            try:
                image = read_image(path)
            except ValueError as err:
                logger.warning("cem500k: skipping %s: %s", relative, err)
                unreadable.append(relative)
                continue
            parts = relative.split("/")
            yield (
                relative,
                {
                    "image": image,
                    "source": parts[0] if len(parts) > 1 else "",
                    "filename": parts[-1],
                },
            )
        if unreadable:
            logger.warning(
                "cem500k: skipped %d unreadable of %d files in %s",
                len(unreadable),
                len(items),
                split,
            )
        if items and len(unreadable) > self.MAX_UNREADABLE_FRACTION * len(items):
            shown = ", ".join(unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
            raise UnreadableFilesError(
                f"cem500k: {len(unreadable)} of {len(items)} files of the {split} split are "
                f"unreadable (more than {self.MAX_UNREADABLE_FRACTION:.0%}): {shown}. "
                "The download or the extraction is probably incomplete; extract it again."
            )
