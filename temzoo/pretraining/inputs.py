"""The data of a pretraining run: seeded pretext pipelines (noisy, clean) for training and
validation, and a check that both give a batch before the run directory changes."""

import dataclasses

from temzoo.errors import BadInputError
from temzoo.pretraining.config import in_memory_fingerprint


def epoch_seed(seed, epoch):
    """The seed of epoch ``epoch``'s training pipeline (a resumed run rebuilds the same one)."""
    return int((seed * 1_000_003 + epoch * 7919 + 17) % (2**31 - 1))


def _load_images(dataset, split, data_dir, verbose):
    """(images dataset or array, dataset info dict) for a name or in-memory images."""
    if not isinstance(dataset, str):
        return dataset, {"dataset": "in-memory", "fingerprint": in_memory_fingerprint(dataset)}
    from temzoo import datasets

    builder = datasets.get_builder(dataset, data_dir)
    if not builder.is_prepared() and getattr(builder, "GENERATED", False):
        datasets.build_dataset(dataset, data_dir=data_dir, progress=bool(verbose))
        builder = datasets.get_builder(dataset, data_dir)
    ds = datasets.load(dataset, split, data_dir=data_dir)
    info = {"dataset": dataset, "version": str(builder.version), "split": split, "data_dir": builder.data_dir_root}
    return ds, info


def _validation_split(dataset, data_dir):
    from temzoo import datasets

    splits = datasets.get_builder(dataset, data_dir).info.splits
    for name in ("validation", "test"):
        if name in splits:
            return name
    return "train"


@dataclasses.dataclass
class PretextData:
    """The run's pipelines. ``train(epoch, skip)`` is epoch ``epoch``'s training data with its
    first ``skip`` batches dropped; ``validation`` is None when ``validation_steps`` is 0."""

    config: object
    train_images: object
    info: dict
    validation_split: str
    validation: object

    @classmethod
    def load(cls, config, verbose=1):
        from temzoo.data import pretext_pairs

        train_images, info = _load_images(config.dataset, "train", config.data_dir, verbose)
        if isinstance(config.dataset, str):
            val_split = _validation_split(config.dataset, config.data_dir)
            val_images, _ = _load_images(config.dataset, val_split, config.data_dir, 0)
        elif config.validation_dataset is not None:
            val_split, val_images = "in-memory", config.validation_dataset
        else:
            val_split, val_images = "in-memory (training images, other seed)", config.dataset
        data = cls(config, train_images, info, val_split, None)
        if config.validation_steps:
            data.validation = pretext_pairs(val_images, seed=epoch_seed(config.seed, 10**6), augment=False,
                                            repeat=True, shuffle_buffer=0, **data._pretext())
            data.validation = data.validation.take(config.validation_steps).cache().with_options(_options())
        return data

    def _pretext(self):
        c = self.config
        return dict(patch_size=c.patch_size, batch_size=c.batch_size, dose_range=tuple(c.dose_range),
                    read_noise=c.read_noise, normalizer=c.resolved_normalizer)

    def train(self, epoch, skip=0):
        from temzoo.data import pretext_pairs

        c = self.config
        ds = pretext_pairs(self.train_images, seed=epoch_seed(c.seed, epoch), augment=c.augment, repeat=True,
                           shuffle_buffer=c.shuffle_buffer, **self._pretext())
        return ds.skip(skip).with_options(_options())

    def first_batches(self, samples):
        """Make one batch of each pipeline (images the patch does not fit, or any other problem
        with the data, fail here, before the run directory changes); returns ``samples`` noisy
        and clean validation patches for the sample grids, or ``(None, None)``."""
        import tensorflow as tf

        try:
            next(iter(self.train(0, 0)))
            if self.validation is not None:
                noisy, clean = next(iter(self.validation))
                if samples:
                    return noisy.numpy()[:samples], clean.numpy()[:samples]
        except tf.errors.OpError as exc:
            source = self.config.dataset if isinstance(self.config.dataset, str) else "the in-memory images"
            raise BadInputError(
                f"{source}: the first training batch could not be made ({type(exc).__name__}: "
                f"{(exc.message or str(exc)).strip().splitlines()[0][:300]}). Check --patch-size "
                f"({self.config.patch_size}) against the images' size and that the dataset is complete."
            ) from exc
        return None, None


def _options():
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
