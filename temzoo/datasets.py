"""Datasets: list the TFDS builders of ``temzoo_datasets``, build them, load their splits.

Names are ``builder/config`` (``synthetic_tem/au_np``, ``temimagenet/denoise``)
or just ``builder`` for its default config. Builders are the ``tfds new``-style folders
of ``temzoo_datasets`` (the repository's folder ``datasets_tfds/``, installed
under that name as ``cli/`` is as ``temzoo_cli``), one folder per builder named like it,
looked up in tfds' registry (``tfds.builder_cls``) once the package's ``__init__.py``
has imported them; nothing is hard-coded here.

Generated datasets (builders with ``GENERATED = True``, e.g. ``synthetic_tem``)
are built on first :func:`load`; datasets that need files downloaded by hand
must be built first with ``temzoo-cli data build NAME --manual-dir DIR``
(or :func:`build_dataset`).
"""

import logging
import os
import pkgutil

from temzoo.errors import BadInputError, UnknownNameError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "TEMZOO_DATA_DIR"


def default_data_dir():
    """``$TEMZOO_DATA_DIR`` or ``~/tensorflow_datasets``."""
    return os.environ.get(DATA_DIR_ENV) or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def builder_classes():
    """Builder name -> class, for every TFDS builder defined in a ``temzoo_datasets`` module."""
    import tensorflow_datasets as tfds

    try:
        import temzoo_datasets  # imports, hence registers with tfds, every builder
    except ModuleNotFoundError as err:
        if err.name != "temzoo_datasets":
            raise
        raise ModuleNotFoundError(
            "temzoo_datasets (the dataset builders, folder datasets_tfds/ of the repository) is not installed; "
            "reinstall temzoo (pip install -e . in a checkout).", name=err.name
        ) from err

    found = {}
    for package in pkgutil.iter_modules(temzoo_datasets.__path__):
        if not package.ispkg:  # one ``tfds new``-style folder per builder, named like it
            continue
        cls = tfds.builder_cls(package.name)  # tfds' registry: the class the package's import registered
        if cls.__module__.startswith(f"temzoo_datasets.{package.name}."):
            found[cls.name] = cls
    return found


def dataset_names():
    """Every ``builder/config`` name (and the bare builder name for builders without configs)."""
    names = []
    for name, cls in sorted(builder_classes().items()):
        configs = cls.BUILDER_CONFIGS
        names.extend(f"{name}/{c.name}" for c in configs) if configs else names.append(name)
    return names


def resolve(name):
    """(builder class, config name or None) for ``builder`` or ``builder/config``."""
    classes = builder_classes()
    builder_name, _, config_name = str(name).partition("/")
    known = dataset_names() + [n for n, c in classes.items() if c.BUILDER_CONFIGS]
    cls = classes.get(builder_name)
    if cls is None:
        raise UnknownNameError("dataset", name, known)
    configs = {c.name for c in cls.BUILDER_CONFIGS}
    if config_name:
        if config_name not in configs:
            raise UnknownNameError("dataset", name, known)
        return cls, config_name
    if configs:
        return cls, cls.DEFAULT_BUILDER_CONFIG_NAME or cls.BUILDER_CONFIGS[0].name
    return cls, None


def get_builder(name, data_dir=None, config=None):
    """A TFDS builder for ``name`` in ``data_dir``; ``config`` (a BuilderConfig object) overrides the named one."""
    cls, config_name = resolve(name)
    return cls(config=config if config is not None else config_name, data_dir=data_dir or default_data_dir())


def needs_manual_download(builder_or_cls):
    return bool(getattr(builder_or_cls, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))


def list_datasets(data_dir=None, print_table=False):
    """One row per dataset: ``name``, ``description``, ``manual_download`` (bool), ``prepared`` (bool).

    ``prepared`` says whether the dataset is built in ``data_dir``
    (default: :func:`default_data_dir`). ``print_table=True`` also logs the table
    (logger ``temzoo.datasets``, INFO).
    """
    import textwrap

    data_dir = data_dir or default_data_dir()
    rows = []
    for name in dataset_names():
        cls, config_name = resolve(name)
        config = next((c for c in cls.BUILDER_CONFIGS if c.name == config_name), None)
        description = (config.description if config is not None else None) or (cls.__doc__ or "").strip()
        builder = cls(config=config_name, data_dir=data_dir)
        rows.append(
            {
                "name": name,
                "description": textwrap.shorten(" ".join(description.split()), 90),
                "manual_download": needs_manual_download(cls),
                "generated": bool(getattr(cls, "GENERATED", False)),
                "prepared": builder.is_prepared(),
            }
        )
    if print_table:
        logger.info("%s", format_datasets(rows, data_dir))
    return rows


def format_datasets(rows, data_dir=None):
    """The text table of :func:`list_datasets` rows, with the data dir under it."""
    from temzoo.zoo.table import format_table

    text = format_table(rows, columns=("name", "manual_download", "prepared", "description"))
    return f"{text}\n\ndata dir: {data_dir or default_data_dir()}"


def build_dataset(name, data_dir=None, manual_dir=None, progress=True, config=None):
    """Download (where possible) and prepare ``name`` in ``data_dir``; return the builder.

    Calls ``builder.download_and_prepare`` directly (the ``tfds build`` tool
    needs apache-beam and mlcroissant). ``manual_dir`` is where files
    downloaded by hand are (default: ``<data_dir>/downloads/manual``).
    ``config`` (a BuilderConfig object, e.g. a smaller ``SyntheticTemConfig``)
    replaces the named config. Missing or unusable manual files raise
    :class:`BadInputError` with the builder's download instructions.
    """
    import tensorflow_datasets as tfds

    builder = get_builder(name, data_dir, config)
    if progress:
        tfds.enable_progress_bar()
        logger.info("Building %s into %s", _full_name(builder), builder.data_dir)
    else:
        tfds.disable_progress_bar()
    download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
    try:
        builder.download_and_prepare(download_config=download_config)
    except (AssertionError, FileNotFoundError, ValueError) as err:
        if not needs_manual_download(builder):
            raise
        if isinstance(err, AssertionError) and "Manual directory" not in str(err):
            raise
        where = manual_dir or os.path.join(builder.data_dir_root, "downloads", "manual")
        raise BadInputError(
            f"Cannot build dataset {_full_name(builder)!r} from the manual files in {where}: {_first_line(err)}\n"
            f"What to do:\n{_dedent(builder.MANUAL_DOWNLOAD_INSTRUCTIONS)}\n"
            f"then run: temzoo-cli data build {_full_name(builder)} --manual-dir DIR"
        ) from err
    if progress:
        logger.info("Prepared %s in %s", _full_name(builder), builder.data_dir)
    return builder


def load(name, split, data_dir=None, config=None, shuffle_files=False):
    """``tf.data.Dataset`` of feature dicts for ``split`` of ``name``.

    Generated datasets are built on first use; datasets that need manual files
    raise :class:`BadInputError` until built with ``temzoo-cli data build``.
    """
    builder = get_builder(name, data_dir, config)
    if not builder.is_prepared():
        if needs_manual_download(builder) or not getattr(builder, "GENERATED", False):
            raise BadInputError(
                f"Dataset {_full_name(builder)!r} is not prepared in {builder.data_dir_root}. "
                f"Download its files by hand, then run: temzoo-cli data build {_full_name(builder)} "
                f"--manual-dir DIR --data-dir {builder.data_dir_root}"
            )
        examples = _planned_examples(builder)
        logger.info(
            "%s is not prepared in %s: generating it now (locally, nothing is downloaded%s; once only)...",
            _full_name(builder), builder.data_dir_root, f", {examples} images" if examples else "",
        )
        builder = build_dataset(name, data_dir=data_dir, config=config,
                                progress=logging.getLogger("temzoo").isEnabledFor(logging.INFO))
    splits = builder.info.splits
    if split not in splits and "[" not in str(split):
        raise BadInputError(
            f"Dataset {_full_name(builder)!r} has no split {split!r}; it has {', '.join(sorted(splits))}."
        )
    return without_autotune_thread(builder.as_dataset(split=split, shuffle_files=shuffle_files))


def without_autotune_thread(ds):
    """``ds`` with ``tf.data``'s autotuning, and its background thread, switched off.

    Every temzoo input pipeline carries this (the TFDS splits :func:`load` returns and
    :mod:`temzoo.data.pairs`). With autotuning on, each ``tf.data`` iterator starts a thread
    that re-optimises the pipeline at doubling intervals, up to one a minute. In TensorFlow
    2.21 deleting the iterator waits for that thread's current sleep to end: a training
    iterator that had lived 90-130 s took 32 s or more to delete in 4 of 17 trials, at no
    CPU cost (a debugger showed the main thread in the iterator's destructor joining the
    thread in ``Model::OptimizeLoop``); with autotuning off, none of 10 waited. Keras
    deletes its training iterator when ``fit`` returns, so README's quick start sat silent
    for up to a minute after training. Without the thread, ``AUTOTUNE`` parallelism becomes
    the number of cores and ``prefetch(AUTOTUNE)`` buffers still grow on their own
    (TensorFlow's per-iterator prefetch autotuner).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _planned_examples(builder):
    """Images a generated builder will write (its config's ``num_*`` fields), or None."""
    config = builder.builder_config
    counts = [getattr(config, f"num_{split}", None) for split in ("train", "validation", "test")]
    counts = [c for c in counts if isinstance(c, int)]
    return sum(counts) or None


def feature_keys(name, config=None):
    """Feature names of ``name`` (from the builder's info; nothing needs to be prepared)."""
    builder = get_builder(name, default_data_dir(), config)
    return list(builder.info.features.keys())


def _full_name(builder):
    return f"{builder.name}/{builder.builder_config.name}" if builder.builder_config else builder.name


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _dedent(text):
    import textwrap

    return textwrap.indent(textwrap.dedent(text or "").strip(), "  ")
