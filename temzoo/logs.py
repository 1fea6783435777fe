"""How loud temzoo and the libraries under it are: ``quiet``, ``normal`` or ``verbose``.

The CLI calls :func:`configure` before any command imports TensorFlow; from
Python, call it yourself (``temzoo.logs.configure("normal")``) if you want the
same terminal.

* ``normal``: temzoo's own messages (logger ``temzoo``, level INFO) and
  warnings; TensorFlow's start-up banner (printed twice by its C++ runtime
  before any log level applies, plus a ``cuInit`` error on machines without a
  GPU) is kept off the terminal by silencing file descriptor 2 while
  TensorFlow is imported; TensorFlow's C++ info/warning lines
  (``TF_CPP_MIN_LOG_LEVEL=2``) and absl warnings from TensorFlow Datasets
  (``FeatureConnector.dtype`` deprecations, "Variant folder ... has no
  dataset_info.json" for configurations that are not built) are hidden.
* ``quiet``: as ``normal``, and temzoo logs only warnings and errors.
* ``verbose``: nothing is hidden; temzoo logs at DEBUG level.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys

LEVELS = ("quiet", "normal", "verbose")
_TEMZOO_LEVEL = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


@contextlib.contextmanager
def stderr_silenced():
    """Send file descriptor 2 (C/C++ writes included) to /dev/null inside the block."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``tensorflow`` (and initialise its devices) with fd 2 silenced; removes itself after."""

    def __init__(self):
        self._loader = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with stderr_silenced():
            self._loader.exec_module(module)
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()  # device (CUDA) initialisation logs here


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(level="normal"):
    """Set temzoo's log level and quieten TensorFlow / TFDS for ``level`` (one of :data:`LEVELS`)."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not supported; choose one of: {', '.join(LEVELS)}.")
    logger = logging.getLogger("temzoo")
    logger.setLevel(_TEMZOO_LEVEL[level])
    if not any(getattr(h, "_temzoo", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._temzoo = True
        logger.addHandler(handler)
        logger.propagate = False
    if level == "verbose":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last N calls to <function F> triggered tf.function retracing" warning for
    the functions named in ``qualnames`` only: functions temzoo traces once per input shape on purpose."""

    def __init__(self):
        super().__init__()
        self.qualnames = set()

    def filter(self, record):
        message = record.getMessage()
        if "triggered tf.function retracing" not in message:
            return True
        return not any(f"<function {name} at " in message for name in self.qualnames)


_expected_retracing = _ExpectedRetracing()


def retraced_by_design(function):
    """Keep TensorFlow's frequent-retracing warning off the terminal for ``function`` (a Python function about to be
    wrapped in ``tf.function``), which is traced once per input shape by design: tiled prediction traces each tile
    shape once, and the particle scale search predicts one image at several sizes. Other functions keep the warning."""
    _expected_retracing.qualnames.add(function.__qualname__)
    tf_logger = logging.getLogger("tensorflow")
    if _expected_retracing not in tf_logger.filters:
        tf_logger.addFilter(_expected_retracing)
    return function
