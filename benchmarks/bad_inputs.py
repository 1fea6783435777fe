"""Bad and edge-case inputs against the CLI and the API: is every one handled cleanly?

Each case feeds temzoo one bad (or borderline but valid) input in a fresh temporary
folder and checks what a user would see:

* a bad input fails with temzoo's own error (the CLI: exit status 1, a message naming
  the file and the problem, no traceback; the API: a :class:`temzoo.errors.TemzooError`
  or ``ValueError`` whose message says the same), never a raw ``OSError``, NumPy,
  Keras or TensorFlow exception;
* nothing is lost or half-written: no ``*.partial*`` files, files that existed before
  are byte-for-byte the same, and no output is left for a failed input;
* a valid borderline input (RGB, 16-bit PNG, a flat image, a named 4-D stack...) works.

    python benchmarks/bad_inputs.py [--fast] [--only SUBSTRING] [--json PATH]

``--fast`` runs the quick subset that ``tests/test_bad_inputs.py`` runs in the test suite
(no pretraining); without it every case runs (a few minutes on 2 cores). Exit status 0
only when every case is clean.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@dataclasses.dataclass
class Case:
    name: str
    group: str
    run: object  # callable(Context) -> (clean: bool, detail: str)
    fast: bool = False  # in the quick subset (--fast) that tests/test_bad_inputs.py runs


class Context:
    """Shared fixtures (tiny models, a finished pretraining run) made once, and a fresh folder per case."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self._models = None
        self._loaded = {}
        self._run = None
        self.dir = None

    def loaded(self, key):
        if key not in self._loaded:
            import temzoo

            self._loaded[key] = temzoo.load(self.models[key])
        return self._loaded[key]

    def fresh(self, name):
        self.dir = self.root / "cases" / name.replace("/", "_").replace(" ", "_")
        self.dir.mkdir(parents=True)
        return self.dir

    @property
    def models(self):
        if self._models is None:
            import temzoo
            import temzoo.tasks as tasks

            folder = self.root / "models"
            folder.mkdir()
            backbone = temzoo.build("unet_b2_p22", base_filters=4)
            tasks.save(tasks.segmentation(backbone, num_classes=2), folder / "seg.keras", name="tiny_seg")
            tasks.save(tasks.denoising(backbone), folder / "den.keras", name="tiny_den")
            self._models = {"seg": str(folder / "seg.keras"), "den": str(folder / "den.keras")}
        return self._models

    @property
    def pretrain_run(self):
        """A finished tiny pretraining run (its folder is copied by each case that changes it)."""
        if self._run is None:
            from temzoo.pretraining import pretrain

            out = self.root / "pretrain_run"
            pretrain("unet_b2_p22", _images(), "autoencoder", out=out, **TINY_PRETRAIN)
            self._run = out
        return self._run


TINY_PRETRAIN = dict(patch_size=32, batch_size=4, epochs=1, steps_per_epoch=2, validation_steps=1, shuffle_buffer=0,
                     samples=1, model_overrides={"base_filters": 4}, verbose=0)


def _images(n=4, size=48):
    rng = np.random.default_rng(0)
    return (1.0 + rng.random((n, size, size))).astype("float32")


# ----------------------------------------------------------------------------- checks
def _snapshot(folder):
    folder = pathlib.Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _partials(folder):
    folder = pathlib.Path(folder)
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name] if folder.exists() else []


def _words_in(text, words):
    """The ``words`` missing from ``text`` (a tuple of words: any one of them will do)."""
    low = " ".join(text.lower().split())  # click wraps long messages
    return [w for w in words if not any(" ".join(x.lower().split()) in low for x in (w if isinstance(w, tuple) else (w,)))]


def cli_error(args, words, watch=(), keep_new=()):
    """The CLI exits 1 (2: click's usage error) with all ``words`` in its message, no traceback; ``watch`` folders unchanged
    (apart from ``keep_new``, names that may appear) and free of partial files."""
    def check(ctx):
        from click.testing import CliRunner
        from temzoo_cli.main import cli

        argv = [str(a(ctx)) if callable(a) else str(a) for a in args]  # may create the case's files
        folders = [ctx.dir / w for w in watch] or [ctx.dir]
        before = [_snapshot(f) for f in folders]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(cli, argv)
        problems = []
        if result.exit_code not in (1, 2):
            problems.append(f"exit {result.exit_code}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problems.append(f"raised {type(result.exception).__name__}: {result.exception}")
        if "Traceback" in result.output:
            problems.append("traceback")
        missing = _words_in(result.output, [w(ctx) if callable(w) else w for w in words])
        if missing:
            problems.append(f"message lacks {missing}")
        for folder, old in zip(folders, before, strict=True):
            new = _snapshot(folder)
            changed = [k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in keep_new]
            if changed:
                problems.append(f"changed {sorted(changed)[:3]}")
            if _partials(folder):
                problems.append("partial files")
        message = " ".join(result.output.strip().splitlines()[-1:])[:160]
        return not problems, "; ".join(problems) or message
    return check


def cli_ok(args, produced=(), contains=()):
    def check(ctx):
        from click.testing import CliRunner
        from temzoo_cli.main import cli

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(cli, [str(a(ctx)) if callable(a) else str(a) for a in args])
        problems = []
        if result.exit_code != 0:
            problems.append(f"exit {result.exit_code}: {result.output.strip()[-200:]}")
        problems += [f"no {p}" for p in produced if not (ctx.dir / p).exists()]
        problems += [f"output lacks {w}" for w in _words_in(result.output, contains)]
        if _partials(ctx.dir):
            problems.append("partial files")
        return not problems, "; ".join(problems) or "ok"
    return check


def api_error(call, words, watch=None):
    """``call(ctx)`` raises a TemzooError or ValueError with all ``words``; ``watch`` unchanged."""
    def check(ctx):
        from temzoo.errors import TemzooError

        folder = ctx.dir / watch if watch else ctx.dir
        before = _snapshot(folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call(ctx)
        except (TemzooError, ValueError) as exc:
            problems = []
            missing = _words_in(str(exc), [w(ctx) if callable(w) else w for w in words])
            if missing:
                problems.append(f"{type(exc).__name__} lacks {missing}: {str(exc)[:150]}")
            if _snapshot(folder) != before:
                problems.append("files changed")
            if _partials(folder):
                problems.append("partial files")
            return not problems, "; ".join(problems) or f"{type(exc).__name__}: {str(exc)[:140]}"
        except Exception as exc:  # noqa: BLE001 - an untyped error is what this benchmark looks for
            return False, f"raw {type(exc).__name__}: {str(exc)[:150]}"
        return False, "no error"
    return check


def api_ok(call):
    def check(ctx):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detail = call(ctx)
        except Exception as exc:  # noqa: BLE001
            return False, f"{type(exc).__name__}: {str(exc)[:150]}"
        return detail is not False, "ok" if detail in (None, True) else str(detail)
    return check


# ----------------------------------------------------------------------------- input files
def _tif(data, **kwargs):
    def make(path):
        import tifffile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tifffile.imwrite(path, data, **kwargs)
    return make


def _bytes(data):
    return lambda path: path.write_bytes(data)


def _truncated_tif(path):
    _tif(np.random.default_rng(2).random((64, 64)).astype("float32"))(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bomb(side):
    def make(path):
        import tifffile

        tile = 4096
        with tifffile.TiffWriter(path) as tif:
            tif.write(shape=(side, side), dtype="uint8", tile=(tile, tile), compression="zlib",
                      data=(np.zeros((tile, tile), "uint8") for _ in range((-(-side // tile)) ** 2)))
    return make


def _png(array, mode=None):
    def make(path):
        from PIL import Image

        Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return make


def _truncated_png(path):
    _png((np.random.default_rng(0).random((40, 40)) * 255).astype("uint8"))(path)
    path.write_bytes(path.read_bytes()[:60])


def _mrc(data):
    def make(path):
        data_ = np.asarray(data, "<f4")
        if data_.ndim == 2:
            data_ = data_[None]
        nz, ny, nx = data_.shape
        header = bytearray(1024)
        struct.pack_into("<4i", header, 0, nx, ny, nz, 2)
        struct.pack_into("<3i", header, 28, nx, ny, nz)
        struct.pack_into("<6f", header, 40, nx, ny, nz, 90, 90, 90)
        struct.pack_into("<3i", header, 64, 1, 2, 3)
        struct.pack_into("<i", header, 108, 20140)
        header[208:212] = b"MAP "
        header[212:216] = bytes([0x44, 0x44, 0, 0])
        path.write_bytes(bytes(header) + data_.tobytes())
    return make


def _nan_frame(path):
    data = np.ones((3, 20, 20), "float32")
    data[1, 2, 2] = np.nan
    _tif(data, photometric="minisblack")(path)


def _with(value, at=(2, 2), shape=(24, 24), dtype="float64"):
    data = np.ones(shape, dtype)
    data[at] = value
    return _tif(data)


def _directory(path):
    path.mkdir()


def _dangling(path):
    path.symlink_to(path.parent / "missing-target.tif")


_RNG = np.random.default_rng(5)
# (file name, maker or None for "does not exist", words of the expected message, or None: valid input)
# Files that are readable but too small to predict.
TOO_SMALL = ("one_pixel.tif", "thin.tif")
INPUT_FILES = [
    ("missing.tif", None, ["no such file"]),
    ("empty.tif", _bytes(b""), ["empty"]),
    ("garbage.tif", _bytes(b"II*\0" + bytes(range(256)) * 4), ["not a readable TIFF"]),
    ("random.tif", _bytes(_RNG.bytes(5000)), ["TIFF"]),
    ("truncated.tif", _truncated_tif, ["corrupt or truncated"]),
    ("nan.tif", _with(np.nan), ["NaN or infinite"]),
    ("inf.tif", _with(np.inf), ["NaN or infinite"]),
    ("neginf.tif", _with(-np.inf), ["NaN or infinite"]),
    ("nan_frame.tif", _nan_frame, ["frame 1", "NaN"]),
    ("huge_float64.tif", _with(1e300), ["beyond the float32 range"]),
    ("neg_huge_float64.tif", _with(-1e300), ["beyond the float32 range"]),
    ("one_pixel.tif", _tif(np.ones((1, 1), "float32")), ["1x1"]),  # readable, too small to predict
    ("thin.tif", _tif(np.ones((1, 300), "float32")), ["too small"]),
    ("complex.tif", _tif(np.ones((16, 16), "complex64")), ["not a real number type"]),
    ("bomb.tif", _bomb(20000), ["20000 x 20000", "above the limit"]),
    ("4d_unknown.tif", _tif(np.zeros((2, 5, 32, 32), "uint8")), ["does not say"]),
    ("4d_rgb_guess.tif", _tif(np.zeros((2, 3, 32, 32), "uint8")), ["does not say"]),
    ("5d_unknown.tif", _tif(np.zeros((2, 3, 4, 32, 32), "uint8")), ["does not say"]),
    ("five_samples.tif", _tif(np.zeros((32, 32, 5), "uint8"), photometric="minisblack", planarconfig="contig",
                              extrasamples=[0, 0, 0, 0]), ["5 samples per pixel"]),
    ("image.jpg", _bytes(b"\xff\xd8\xff\xe0" + b"0" * 100), ["unsupported file type"]),
    ("noextension", _bytes(b"x" * 100), ["unsupported file type"]),
    ("folder.tif", _directory, [("not a file", "is a directory")]),
    ("dangling.tif", _dangling, ["no such file"]),
    ("garbage.png", _bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 200), ["not a readable PNG"]),
    ("empty.png", _bytes(b""), ["empty"]),
    ("truncated.png", _truncated_png, ["PNG"]),
    ("text.png", _bytes(b"hello, this is not an image\n" * 10), ["not a readable PNG"]),
    ("garbage.mrc", _bytes(b"\0" * 100), ["mrc"]),
    ("empty.mrc", _bytes(b""), ["empty"]),
    ("garbage.dm3", _bytes(_RNG.bytes(3000)), ["dm3"]),
    ("garbage.dm4", _bytes(_RNG.bytes(3000)), ["dm4"]),
    ("garbage.ser", _bytes(_RNG.bytes(3000)), ["ser"]),
    ("garbage.emd", _bytes(_RNG.bytes(3000)), ["emd"]),
    # valid borderline inputs: must work
    ("bool.tif", _tif(np.eye(24, dtype=bool)), None),
    ("flat.tif", _tif(np.zeros((24, 24), "float32")), None),
    ("large_values.tif", _tif(np.full((24, 24), 1e30, "float32")), None),
    ("int8_negative.tif", _tif((_RNG.integers(-128, 127, (24, 24))).astype("int8")), None),
    ("uint32.tif", _tif(_RNG.integers(0, 2**32 - 1, (24, 24), dtype="uint32")), None),
    ("rgb.tif", _tif(np.full((24, 24, 3), 90, "uint8"), photometric="rgb"), None),
    ("rgba.tif", _tif(np.full((24, 24, 4), 90, "uint8"), photometric="rgb", extrasamples=[1]), None),
    ("tzyx_named.tif", _tif(np.zeros((2, 2, 24, 24), "uint8"), metadata={"axes": "TZYX"}), None),
    ("stack.tif", _tif(_RNG.random((3, 24, 24)).astype("float32"), photometric="minisblack"), None),
    ("upper.TIF", _tif(np.ones((24, 24), "uint16")), None),
    ("sixteen.png", _png((_RNG.random((24, 24)) * 65535).astype("uint16")), None),
    ("palette.png", lambda p: __import__("PIL.Image", fromlist=["Image"]).fromarray(
        (_RNG.random((24, 24)) * 255).astype("uint8")).convert("P").save(p), None),
    ("gray_alpha.png", lambda p: __import__("PIL.Image", fromlist=["Image"]).fromarray(
        np.full((24, 24, 2), 100, "uint8"), mode="LA").save(p), None),
    ("stack.mrc", _mrc(_RNG.random((2, 24, 24))), None),
]


def _make_input(ctx, name, maker):
    path = ctx.dir / name
    if maker is not None:
        maker(path)
    return path


def _input_cases():
    cases = []
    for name, maker, words in INPUT_FILES:

        def file_words(ctx, name=name, words=words):
            return [str(ctx.dir / name), *words]

        # CLI: temzoo-cli predict
        def cli_run(ctx, name=name, maker=maker, words=words):
            path = _make_input(ctx, name, maker)
            if words is None:
                stem = os.path.splitext(name)[0]
                return cli_ok(["predict", "--model", ctx.models["seg"], path, "--out", ctx.dir / "out"],
                              produced=[f"out/{stem}_segmentation.tif"])(ctx)
            return cli_error(["predict", "--model", ctx.models["seg"], path, "--out", ctx.dir / "out"],
                             [str(path), *words])(ctx)

        # API: temzoo.io.read_image
        def api_read(ctx, name=name, maker=maker, words=words):
            from temzoo import io

            path = _make_input(ctx, name, maker)
            if words is None or name in TOO_SMALL:
                return api_ok(lambda c: io.read_image(path).ndim in (2, 3))(ctx)
            return api_error(lambda c: io.read_image(path), [str(path), *words])(ctx)

        # API: temzoo.inference.predict_files.predict_files (the library side of the CLI)
        def api_predict(ctx, name=name, maker=maker, words=words):
            from temzoo.inference.predict_files import predict_files

            path = _make_input(ctx, name, maker)
            if words is None:
                return api_ok(lambda c: bool(predict_files(c.models["den"], [path], c.dir / "out")))(ctx)
            return api_error(lambda c: predict_files(c.models["den"], [path], c.dir / "out"),
                             [str(path), *words])(ctx)

        del file_words
        cases += [Case(f"predict CLI: {name}", "input file", cli_run),
                  Case(f"io.read_image: {name}", "input file", api_read, fast=name != "bomb.tif"),
                  Case(f"predict_files API: {name}", "input file", api_predict)]
    return cases


# ----------------------------------------------------------------------------- models
def _bad_keras(kind):
    def make(ctx):
        path = ctx.dir / "x.keras"
        if kind == "random":
            path.write_bytes(np.random.default_rng(0).bytes(4096))
        elif kind == "folder":
            path.mkdir()
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "zip":
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("readme.txt", "not a model")
        elif kind == "truncated":
            data = pathlib.Path(ctx.models["seg"]).read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif kind == "tampered":
            shutil.copy(ctx.models["seg"], path)
            shutil.copy(ctx.models["seg"][:-6] + ".json", ctx.dir / "x.json")
            with open(path, "ab") as f:
                f.write(b"tampered")
        elif kind == "bad_card":
            shutil.copy(ctx.models["seg"], path)
            (ctx.dir / "x.json").write_text("{not json")
        elif kind == "missing":
            pass
        return path
    return make


MODELS = [
    ("random", ["not a .keras model archive"]),
    ("folder", ["is a folder, not a .keras"]),
    ("empty", ["not a .keras model archive", "empty"]),
    ("zip", ["without config.json"]),
    ("truncated", ["not a .keras model archive"]),
    ("tampered", ["does not match the sha256"]),
    ("bad_card", ["x.json: the model card is not valid JSON"]),
    ("missing", ["no such model file"]),
]


def _named(path, words):
    """The words a message about ``path`` must hold (a bad card is named by its own path)."""
    return list(words) if words[0].startswith("x.json") else [str(path), *words]


def _model_cases():
    cases = []
    for kind, words in MODELS:
        def cli_run(ctx, kind=kind, words=words):
            path = _bad_keras(kind)(ctx)
            image = ctx.dir / "a.tif"
            _tif(np.ones((24, 24), "uint8"))(image)
            return cli_error(["predict", "--model", path, image, "--out", ctx.dir / "out"], _named(path, words))(ctx)

        def api_run(ctx, kind=kind, words=words):
            import temzoo

            path = _bad_keras(kind)(ctx)
            return api_error(lambda c: temzoo.load(str(path)), _named(path, words))(ctx)

        def evaluate_run(ctx, kind=kind, words=words):
            path = _bad_keras(kind)(ctx)
            return cli_error(["evaluate", "--model", path, "--dataset", "synthetic_tem/au_np"], _named(path, words))(ctx)

        cases += [Case(f"predict --model {kind}.keras", "model file", cli_run),
                  Case(f"temzoo.load {kind}.keras", "model file", api_run),
                  Case(f"evaluate --model {kind}.keras", "model file", evaluate_run)]
    names = [
        ("unknown name", ["predict", "--model", "tiny_sgementation"], ["Unknown model"]),
        ("architecture, no weights", ["predict", "--model", "unet_b2_p22"], ["without trained weights"]),
        ("not .keras extension", ["predict", "--model", lambda c: _existing(c, "m.h5")], [".keras"]),
    ]
    for label, args, words in names:
        def run(ctx, args=args, words=words):
            image = ctx.dir / "a.tif"
            _tif(np.ones((24, 24), "uint8"))(image)
            return cli_error([*args, image, "--out", ctx.dir / "out"], words)(ctx)
        cases.append(Case(f"predict --model: {label}", "model file", run))
    return cases


def _existing(ctx, name, data=b"x" * 100):
    path = ctx.dir / name
    path.write_bytes(data)
    return str(path)


# ----------------------------------------------------------------------------- outputs and options
def _output_cases():
    def image(ctx, name="a.tif"):
        path = ctx.dir / name
        if not path.exists():
            _tif(np.ones((24, 24), "uint8"))(path)
        return str(path)

    def existing_output(ctx):
        (ctx.dir / "out").mkdir(exist_ok=True)
        (ctx.dir / "out" / "a_segmentation.tif").write_bytes(b"keep me")
        return str(ctx.dir / "out")

    def file_as_out(ctx):
        return _existing(ctx, "afile")

    def under_file(ctx):
        return os.path.join(_existing(ctx, "afile"), "out")

    def same_stem(ctx):
        (ctx.dir / "b").mkdir(exist_ok=True)
        _tif(np.ones((24, 24), "uint8"))(ctx.dir / "b" / "a.tif")
        return str(ctx.dir / "b" / "a.tif")

    def unwritable(ctx):
        if os.geteuid() == 0:  # root writes anywhere, except in /sys (sysfs refuses new files)
            return "/sys/temzoo-out"
        folder = ctx.dir / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return str(folder)

    def seg(ctx):
        return ctx.models["seg"]

    cases = [
        ("existing output", ["predict", "--model", seg, image, "--out", existing_output],
         ["the output file exists", "--overwrite"]),
        ("--out is a file", ["predict", "--model", seg, image, "--out", file_as_out], ["afile", "is a file"]),
        ("--out under a file", ["predict", "--model", seg, image, "--out", under_file], ["is a file, not a folder"]),
        ("--out not writable", ["predict", "--model", seg, image, "--out", unwritable], ["not writable"]),
        ("two inputs, one output name", ["predict", "--model", seg, image, same_stem, "--out", lambda c: c.dir / "out"],
         ["would also be written"]),
        ("same input twice", ["predict", "--model", seg, image, image, "--out", lambda c: c.dir / "out"],
         ["would also be written"]),
        ("--tile-size 0", ["predict", "--model", seg, image, "--out", lambda c: c.dir / "out", "--tile-size", "0"],
         ["tile-size"]),
        ("--tile-size text", ["predict", "--model", seg, image, "--out", lambda c: c.dir / "out", "--tile-size", "big"],
         ["tile-size"]),
        ("--max-pixels 0", ["predict", "--model", seg, image, "--out", lambda c: c.dir / "out", "--max-pixels", "0"],
         ["max-pixels"]),
        ("--max-pixels below the image", ["predict", "--model", seg, image, "--out", lambda c: c.dir / "out",
                                          "--max-pixels", "100"], ["above the limit of 100 pixels"]),
        ("no inputs", ["predict", "--model", seg, "--out", lambda c: c.dir / "out"], ["INPUTS"]),
        ("evaluate --json exists", ["evaluate", "--model", seg, "--dataset", "synthetic_tem/au_np", "--json",
                                    lambda c: _existing(c, "m.json", b"{}")], ["the output file exists"]),
        ("evaluate --json under a file", ["evaluate", "--model", seg, "--dataset", "synthetic_tem/au_np", "--json",
                                          lambda c: os.path.join(_existing(c, "afile"), "m.json")],
         ["is a file, not a folder"]),
        ("evaluate unknown dataset", ["evaluate", "--model", seg, "--dataset", "synthetic_tem/au_nq"],
         ["Unknown dataset"]),
    ]
    out = []
    for label, args, words in cases:
        keep = ("out/a_segmentation.tif",) if label == "existing output" else ()
        out.append(Case(f"CLI: {label}", "outputs and options", cli_error(args, words, keep_new=keep)))

    def overwrite_ok(ctx):
        existing_output(ctx)
        ok, detail = cli_ok(["predict", "--model", seg(ctx), image(ctx), "--out", ctx.dir / "out", "--overwrite"],
                            produced=["out/a_segmentation.tif"])(ctx)
        return ok and (ctx.dir / "out" / "a_segmentation.tif").read_bytes() != b"keep me", detail
    out.append(Case("CLI: --overwrite replaces the output", "outputs and options", overwrite_ok))

    def concurrent(ctx):
        import tifffile

        from temzoo.inference.predict_files import predict_files

        real = tifffile.TiffWriter

        class OtherRunFirst(real):
            def __init__(self, *a, **k):
                (ctx.dir / "out").mkdir(exist_ok=True)
                (ctx.dir / "out" / "a_segmentation.tif").write_bytes(b"other run")
                super().__init__(*a, **k)

        tifffile.TiffWriter = OtherRunFirst
        try:
            ok, detail = api_error(lambda c: predict_files(seg(c), [image(c)], c.dir / "out"),
                                   ["created by another process"], watch="missing")(ctx)
        finally:
            tifffile.TiffWriter = real
        kept = (ctx.dir / "out" / "a_segmentation.tif").read_bytes() == b"other run"
        left = sorted(os.listdir(ctx.dir / "out"))
        return ok and kept and left == ["a_segmentation.tif"], detail if ok else f"{detail}; kept={kept}, left {left}"
    out.append(Case("predict_files: output created meanwhile by another run", "outputs and options", concurrent))
    return out


# ----------------------------------------------------------------------------- arrays given to temzoo.predict
ARRAYS = [
    ("1-D", lambda: np.ones(100, "float32"), ["shape"]),
    ("4-D", lambda: np.ones((1, 32, 32, 1, 1), "float32"), ["shape"]),
    ("3 channels for a 1-channel model", lambda: np.ones((32, 32, 3), "float32"), ["shape"]),
    ("complex", lambda: np.ones((32, 32), "complex64"), ["real-valued"]),
    ("strings", lambda: np.full((32, 32), "a"), ["real-valued"]),
    ("objects", lambda: np.full((32, 32), None, object), ["real-valued"]),
    ("NaN", lambda: np.where(np.eye(32, dtype=bool), np.nan, 1.0), ["NaN or infinite"]),
    ("inf", lambda: np.where(np.eye(32, dtype=bool), np.inf, 1.0), ["NaN or infinite"]),
    ("float64 1e300", lambda: np.full((32, 32), 1e300), ["beyond the float32 range"]),
    ("float64 -1e300", lambda: np.full((32, 32), -1e300), ["beyond the float32 range"]),
    ("empty", lambda: np.ones((0, 0), "float32"), ["too small"]),
    ("bool", lambda: np.eye(32, dtype=bool), ["dtype bool"]),
    ("1 x 500", lambda: np.ones((1, 500), "float32"), ["too small"]),
    # valid borderline arrays
    ("2x2", lambda: np.ones((2, 2), "float32"), None),
    ("int64 large", lambda: np.full((32, 32), 2**62, "int64"), None),
    ("float16", lambda: np.ones((32, 32), "float16"), None),
    ("float64 1e30", lambda: np.full((32, 32), 1e30), None),
    ("list of lists", lambda: [[float(i + j) for i in range(32)] for j in range(32)], None),
    ("odd size 33 x 47", lambda: np.ones((33, 47), "float32"), None),
    ("non-contiguous view", lambda: np.ones((64, 64), "float32")[::2, ::2], None),
]


def _array_cases():
    cases = []
    for label, make, words in ARRAYS:
        def run(ctx, make=make, words=words):
            import temzoo

            model = ctx.loaded("den")
            if words is None:
                def ok(c):
                    result = temzoo.predict(model, make())
                    return bool(np.isfinite(result).all()) or "non-finite output"
                return api_ok(ok)(ctx)
            return api_error(lambda c: temzoo.predict(model, make()), words)(ctx)
        cases.append(Case(f"temzoo.predict: {label}", "arrays", run, fast=True))
    return cases


# ----------------------------------------------------------------------------- pretraining
def _pretrain_cases():
    from temzoo.errors import InputSizeError  # noqa: F401  (import check)

    def copy_run(ctx):
        target = ctx.dir / "run"
        shutil.copytree(ctx.pretrain_run, target)
        return target

    def api(kwargs, words, dataset=None, on_copy=False):
        def run(ctx):
            from temzoo.pretraining import pretrain

            out = copy_run(ctx) if on_copy else ctx.dir / "run"
            args = {**TINY_PRETRAIN, "data_dir": str(ctx.dir / "no_data"), **kwargs}
            return api_error(lambda c: pretrain(args.pop("model", "unet_b2_p22"), dataset if dataset is not None
                                                else _images(), args.pop("method", "autoencoder"), out=out, **args),
                             words)(ctx)
        return run

    specs = [
        ("patch 66 (not a stride multiple)", {"patch_size": 66}, ["total stride"]),
        ("patch 1024 (larger than the images)", {"patch_size": 1024}, ["smaller than patch_size=1024"]),
        ("patch 8 (below SSIM's 11)", {"patch_size": 8}, ["too small"]),
        ("batch 0", {"batch_size": 0}, ["batch_size"]),
        ("epochs 0", {"epochs": 0}, ["epochs"]),
        ("steps 0", {"steps_per_epoch": 0}, ["steps_per_epoch"]),
        ("dose range reversed", {"dose_range": (50.0, 5.0)}, ["dose_range"]),
        ("dose range negative", {"dose_range": (-1.0, 5.0)}, ["dose_range"]),
        ("unknown method", {"method": "gan"}, ["pix2pix"]),
        ("unknown model", {"model": "unet_b9_p22"}, ["Unknown"]),
        ("classifier as model", {"model": "patchgan_16"}, ["not a dense model"]),
        ("unknown discriminator", {"method": "pix2pix", "discriminator": "patchgan_99"}, ["Unknown"]),
        ("model as discriminator", {"method": "pix2pix", "discriminator": "unet_b2_p22"}, ["not a discriminator"]),
        ("unknown schedule", {"learning_rate_schedule": "linear"}, ["cosine"]),
        ("unknown precision", {"precision": "float8"}, ["precision"]),
        ("model override unknown", {"model_overrides": {"base_filterz": 4}}, ["base_filterz"]),
    ]
    cases = [Case(f"pretrain: {label}", "pretraining", api(kwargs, words)) for label, kwargs, words in specs]
    cases.append(Case("pretrain: unknown dataset", "pretraining",
                      api({}, ["Unknown dataset"], dataset="synthetic_tem/unlabelled")))
    cases.append(Case("pretrain: cem500k not prepared", "pretraining",
                      api({}, ["not prepared"], dataset="cem500k")))
    for label, kwargs, words, dataset in [
        ("--overwrite, patch 66", {"patch_size": 66, "overwrite": True}, ["total stride"], None),
        ("--overwrite, patch 1024", {"patch_size": 1024, "overwrite": True}, ["smaller than patch_size"], None),
        ("--overwrite, cem500k not prepared", {"overwrite": True}, ["not prepared"], "cem500k"),
        ("another run in the folder", {"epochs": 3}, ["--resume", "--overwrite"], None),
        ("resume with another method", {"resume": True, "method": "pix2pix"}, ["cannot be resumed"], None),
    ]:
        cases.append(Case(f"pretrain over a run: {label}", "pretraining",
                          api(kwargs, words, dataset=dataset, on_copy=True)))

    def corrupt_manifest(ctx):
        from temzoo.pretraining import pretrain

        out = copy_run(ctx)
        (out / "run.json").write_text("{")
        return api_error(lambda c: pretrain("unet_b2_p22", _images(), "autoencoder", out=out, **TINY_PRETRAIN),
                         ["run.json", "not valid JSON"])(ctx)
    cases.append(Case("pretrain: corrupt run.json", "pretraining", corrupt_manifest))

    def non_run_folder(ctx):
        from temzoo.pretraining import pretrain

        (ctx.dir / "run").mkdir()
        (ctx.dir / "run" / "notes.txt").write_text("mine")
        return api_error(lambda c: pretrain("unet_b2_p22", _images(), "autoencoder", out=c.dir / "run",
                                            **TINY_PRETRAIN), ["not empty"])(ctx)
    cases.append(Case("pretrain: a folder that holds no run", "pretraining", non_run_folder))

    def locked(ctx):
        from temzoo.pretraining import pretrain
        from temzoo.runlock import RunLock

        lock = RunLock(ctx.dir / "run", "pretraining run").acquire()
        try:
            return api_error(lambda c: pretrain("unet_b2_p22", _images(), "autoencoder", out=c.dir / "run",
                                                **TINY_PRETRAIN), ["in use by another pretraining run",
                                                                   f"process {os.getpid()}"])(ctx)
        finally:
            lock.release()
    cases.append(Case("pretrain: a second run into the same folder", "pretraining", locked, fast=True))

    def cli(args, words):
        def run(ctx):
            return cli_error(["pretrain", "--model", "unet_b2_p22", "--out", ctx.dir / "run", "--quiet", *args],
                             words)(ctx)
        return run
    for label, args, words in [
        ("--patch-size 66", ["--patch-size", "66"], ["total stride"]),
        ("--dataset cem500k (not built)", ["--dataset", "cem500k", "--data-dir", lambda c: c.dir / "d"],
         ["not prepared"]),
        ("--model-overrides not JSON", ["--model-overrides", "{base"], ["not valid JSON"]),
        ("--model-overrides a list", ["--model-overrides", "[1]"], ["JSON object"]),
        ("--batch-size 0", ["--batch-size", "0"], ["batch-size"]),
    ]:
        cases.append(Case(f"pretrain CLI: {label}", "pretraining", cli(args, words)))
    return cases


# ----------------------------------------------------------------------------- files temzoo writes and reads back
def _state_cases():
    def interrupted_export(ctx):
        import temzoo
        from temzoo.atomic import _host
        from temzoo.zoo.cards import export_model

        model = temzoo.load(ctx.models["den"])
        path = ctx.dir / "m.keras"
        (ctx.dir / f".m.keras.{_host()}-{2**22 + 7}.abcdefgh.partial.keras").write_bytes(b"half")
        (ctx.dir / ".m.json.abcdefgh.partial.json").write_text("{")
        export_model(model, path, {"name": "m"})
        left = sorted(os.listdir(ctx.dir))
        return left == ["m.json", "m.keras"], f"left {left}"

    def cycle(ctx):
        from temzoo_datasets.cem500k import cem500k_dataset_builder as cem

        root = ctx.dir / "cem500k"
        (root / "a").mkdir(parents=True)
        for i in range(3):
            _tif(np.zeros((8, 8), "uint8"))(root / "a" / f"{i}.tif")
        (root / "a" / "loop").symlink_to(root)
        (root / "b").symlink_to(root / "a")
        found = [r for r, _ in cem.list_tiffs(root)]
        return found == ["a/0.tif", "a/1.tif", "a/2.tif"], f"found {len(found)} files"

    def outside(ctx):
        from temzoo_datasets.cem500k import cem500k_dataset_builder as cem

        root, elsewhere = ctx.dir / "cem500k", ctx.dir / "elsewhere"
        root.mkdir()
        elsewhere.mkdir()
        _tif(np.zeros((8, 8), "uint8"))(elsewhere / "secret.tif")
        _tif(np.zeros((8, 8), "uint8"))(root / "mine.tif")
        (root / "out").symlink_to(elsewhere)
        (root / "link.tif").symlink_to(elsewhere / "secret.tif")
        found = [r for r, _ in cem.list_tiffs(root)]
        return found == ["mine.tif"], f"found {found}"

    def data_build_missing(ctx):
        return cli_error(["data", "build", "cem500k", "--manual-dir", ctx.dir / "nothing", "--data-dir",
                          ctx.dir / "data"], ["cem500k"])(ctx)

    def write_tiff_existing(ctx):
        from temzoo import io

        (ctx.dir / "o.tif").write_bytes(b"keep")
        return api_error(lambda c: io.write_tiff(c.dir / "o.tif", np.ones((4, 4))), ["exists"])(ctx)

    def write_png_existing(ctx):
        from temzoo import io

        (ctx.dir / "o.png").write_bytes(b"keep")
        return api_error(lambda c: io.write_png(c.dir / "o.png", np.ones((4, 4))), ["exists"])(ctx)

    def max_pixels_env(ctx):
        from temzoo import io

        old = os.environ.get("TEMZOO_MAX_PIXELS")
        os.environ["TEMZOO_MAX_PIXELS"] = "-5"
        try:
            _tif(np.ones((8, 8), "uint8"))(ctx.dir / "a.tif")
            return api_error(lambda c: io.read_image(c.dir / "a.tif"), ["TEMZOO_MAX_PIXELS", "at least 1"])(ctx)
        finally:
            if old is None:
                os.environ.pop("TEMZOO_MAX_PIXELS")
            else:
                os.environ["TEMZOO_MAX_PIXELS"] = old

    return [
        Case("export over stale partial files", "state", interrupted_export, fast=True),
        Case("cem500k: symlink cycle", "state", cycle, fast=True),
        Case("cem500k: links out of the folder", "state", outside, fast=True),
        Case("data build cem500k, missing --manual-dir", "state", data_build_missing),
        Case("io.write_tiff over an existing file", "state", write_tiff_existing, fast=True),
        Case("io.write_png over an existing file", "state", write_png_existing, fast=True),
        Case("$TEMZOO_MAX_PIXELS invalid", "state", max_pixels_env, fast=True),
    ]


def all_cases():
    return _input_cases() + _model_cases() + _output_cases() + _array_cases() + _pretrain_cases() + _state_cases()


def run_cases(cases, root, on_row=None):
    ctx = Context(root)
    rows = []
    for case in cases:
        ctx.fresh(case.name)
        started = time.perf_counter()
        try:
            clean, detail = case.run(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken case is reported, not fatal
            clean, detail = False, f"case crashed: {type(exc).__name__}: {exc} {traceback.format_exc(limit=-2)}"
        rows.append({"case": case.name, "group": case.group, "clean": bool(clean), "detail": detail,
                     "seconds": round(time.perf_counter() - started, 2)})
        if on_row is not None:
            on_row(len(rows), len(cases), rows[-1])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only the quick subset the test suite runs")
    parser.add_argument("--only", default=None, help="only cases whose name contains this")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    logging.getLogger("temzoo").setLevel(logging.ERROR)
    logging.getLogger("datasets_tfds").setLevel(logging.ERROR)
    cases = [c for c in all_cases() if (not args.fast or c.fast) and (not args.only or args.only in c.name)]
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="temzoo-bad-inputs-") as root:
        def progress(done, total, row):
            print(f"[{done}/{total}] {'clean' if row['clean'] else 'NOT CLEAN'}: {row['case']}", file=sys.stderr,
                  flush=True)

        rows = run_cases(cases, root, on_row=progress)
    seconds = time.time() - started
    for r in rows:
        r["detail"] = r["detail"].replace(root, "$TMP")
    width = max(len(r["case"]) for r in rows)
    for r in rows:
        print(f"{r['case']:<{width}}  {'clean' if r['clean'] else 'NOT CLEAN':<9}  {r['seconds']:6.2f}s  {r['detail']}")
    clean = sum(r["clean"] for r in rows)
    print(f"\n{clean} of {len(rows)} cases clean ({len(rows) - clean} not) in {seconds:.0f} s; "
          f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after.")
    if args.json:
        from _report import machine, write_json

        write_json(args.json, {"machine": machine(), "cases": rows, "clean": clean, "total": len(rows),
                               "seconds": round(seconds, 1), "load_average": [load_before, os.getloadavg()]})
    return 0 if clean == len(rows) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
