"""The end of a pretraining run: the float32 generator and its model card, written atomically
(the card before the model: :func:`temzoo.zoo.cards.export_model`)."""

import json
import logging
import os

from temzoo.errors import BadInputError

logger = logging.getLogger(__name__)


def export_is_stale(model_path, step, recalibration_batches=0):
    """True unless ``model_path``'s card says it is the export of step ``step`` (with the same recalibration)."""
    from temzoo.zoo.cards import card_path, read_card

    try:
        card = read_card(card_path(model_path))
    except BadInputError:
        return True
    if not card:
        return True
    recalibrated = card.get("batch_norm_recalibration", {}).get("batches", 0)
    return card.get("steps") != step or recalibrated != recalibration_batches


def recalibrated_generator(generator, dataset, batches, batch_size):
    """Precise BN on a float32 copy of ``generator`` from ``batches`` fresh training batches
    (the data of the epoch after the last). The training generator keeps its statistics, so
    checkpoints and resumed runs are unaffected. Returns the copy and the card's record."""
    from temzoo.inference.precision import float32_copy
    from temzoo.training.batch_norm import (
        batch_norm_layers,
        recalibrate_batch_norm,
        training_forward,
    )

    copy = float32_copy(generator, always=True)
    used = recalibrate_batch_norm(copy, (noisy for noisy, _ in dataset.take(batches)), training_forward(copy))
    return copy, {
        "batches": batches, "images": used * batch_size, "layers": len(batch_norm_layers(copy)),
        "method": "precise BN (Wu & Johnson 2021): each BatchNormalization layer's moving mean and "
                  "variance set to the mean of its batch statistics over fresh training batches",
    }


def export(trainer, config, data, state, strategy, model_path, resume_changes, log):
    """The card of the run in ``model_path`` (up to date, or written now with the generator).

    ``data``: the run's :class:`~temzoo.pretraining.inputs.PretextData`; ``state``: its final
    :class:`~temzoo.pretraining.callbacks.RunState`; ``log``: the level of the message.
    """
    from temzoo.zoo.cards import card_path, read_card

    recalibration = config.batch_norm_recalibration_batches
    if os.path.exists(model_path) and not export_is_stale(model_path, state.step, recalibration):
        logger.log(log, "%s is complete (%d steps); %s is up to date.", os.path.dirname(model_path), state.step,
                   model_path)
        return read_card(card_path(model_path))
    card = make_card(trainer, config, data, state, strategy)
    if resume_changes:
        card["changes_on_resume"] = resume_changes
    generator = None
    if recalibration:
        generator, card["batch_norm_recalibration"] = recalibrated_generator(
            trainer.generator, data.train(config.epochs, 0), recalibration, config.batch_size)
    card = trainer.export_generator(model_path, card, generator=generator)
    logger.log(log, "exported %s (%d steps, %d images); metrics: %s", model_path, state.step, state.images_seen,
               json.dumps({k: round(v, 4) for k, v in state.metrics.items()}))
    return card


def _method_info(trainer, config, strategy):
    from temzoo.inference.precision import resolve_precision

    pix2pix = config.method == "pix2pix"
    info = {
        "name": config.method,
        "reference": "Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks"
        if pix2pix else "encoder-decoder trained with an L1/L2 loss",
        "optimizer": {"name": "Adam", "learning_rate": config.learning_rate, "beta_1": config.beta_1,
                      "schedule": config.learning_rate_schedule},
        "batch_size": config.batch_size,
        "replicas": int(strategy.num_replicas_in_sync),
        "strategy": type(strategy).__name__,
        "precision": resolve_precision(config.precision),  # what "auto" chose on this machine
        "seed": config.seed,
    }
    if pix2pix:
        info.update(l1_lambda=config.l1_lambda, discriminator=config.discriminator,
                    discriminator_config=trainer.discriminator.get_config())
    else:
        info["loss"] = config.loss
    return info


def make_card(trainer, config, data, state, strategy):
    """The model card of the run's generator (:func:`temzoo.zoo.cards.make_card`)."""
    from temzoo.models import registry
    from temzoo.zoo.cards import make_card as card_of

    return card_of(
        trainer.generator,
        name=config.run_name,
        architecture=config.model,
        description=registry.architecture(config.model).get("description"),
        pretext={
            "task": "restore the clean image from a Poisson-noised copy",
            "noise_model": "poisson",
            "dose_range": list(config.dose_range),
            "dose_units": "counts per pixel at the image's mean intensity, drawn log-uniformly per image",
            "read_noise": config.read_noise,
            "patch_size": config.patch_size,
            "augment": config.augment,
        },
        normalization=config.resolved_normalizer.get_config(),
        data={**data.info, "validation_split": data.validation_split, "images_seen": state.images_seen},
        method=_method_info(trainer, config, strategy),
        steps=state.step,
        epochs=state.epoch,
        metrics=dict(state.metrics),
    )
