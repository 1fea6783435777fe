"""Self-supervised pretraining on the pretext task of restoring clean images from
Poisson-noised ones: Pix2Pix (conditional GAN with a PatchGAN) or a plain
autoencoder, on one device, several GPUs or several machines.

    >>> from temzoo.pretraining import pretrain
    >>> result = pretrain(model="unet_b2_p22", dataset="synthetic_tem/unlabeled",
    ...                   method="pix2pix", patch_size=64, batch_size=8, epochs=2,
    ...                   steps_per_epoch=50, out="runs/unet_p2p")
    >>> result.model_path       # the exported generator (.keras) with its JSON card beside it

Every setting, its default and its help text: :class:`PretrainConfig`
(``help(temzoo.pretraining.PretrainConfig)``); ``pretrain(config=...)`` takes one.

Modules: ``config`` (the settings, TF-free), ``rundir`` (the run directory's rules),
``inputs`` (the pretext pipelines), ``trainer`` (building the trainer in a strategy's
scope), ``run`` (``pretrain``), ``export`` (generator and card), ``callbacks``,
``checkpoints``, ``pix2pix``/``autoencoder``/``generator_trainer`` (the Keras models).
"""

from temzoo.lazy import lazy_attributes

_LAZY = {
    "Pix2Pix": "temzoo.pretraining.pix2pix:Pix2Pix",
    "Autoencoder": "temzoo.pretraining.autoencoder:Autoencoder",
    "pretrain": "temzoo.pretraining.run:pretrain",
    "PretrainResult": "temzoo.pretraining.run:PretrainResult",
    "PretrainConfig": "temzoo.pretraining.config:PretrainConfig",
    "RunExistsError": "temzoo.pretraining.rundir:RunExistsError",
    "build_trainer": "temzoo.pretraining.trainer:build_trainer",
    "METHODS": "temzoo.pretraining.run:METHODS",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
