"""Building a pretraining trainer (generator, discriminator, optimizers, compile) inside a
``tf.distribute`` strategy's scope, and what its checkpoints hold."""

from temzoo.names import PRETRAIN_METHODS, SCHEDULES


def adam_optimizer(learning_rate, beta_1, schedule="constant", total_steps=None):
    """The Adam optimizer of both networks; ``schedule="cosine"`` decays the rate to 0 over ``total_steps``.

    The rate follows the optimizer's own step counter, which the checkpoints keep, so a
    resumed run continues on the same curve.
    """
    import keras

    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(total_steps), alpha=0.0)
    elif schedule != "constant":
        raise ValueError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


def build_trainer(
    strategy,
    method,
    make_generator,
    make_discriminator=None,
    *,
    g_optimizer=None,
    d_optimizer=None,
    l1_lambda=100.0,
    loss="l1",
    precision="float32",
    jit_compile=False,
    steps_per_execution=1,
    fused_batch_norm=True,
):
    """Build generator (and discriminator), both optimizers and compile, all inside ``strategy.scope()``.

    Args:
        strategy: from :func:`temzoo.training.distribute.get_strategy`.
        method: ``"pix2pix"`` or ``"autoencoder"``.
        make_generator, make_discriminator: zero-argument callables returning
            new models (called inside the scope and the precision policy).
        g_optimizer, d_optimizer: zero-argument callables returning optimizers
            (default Adam(2e-4, beta_1=0.5), as in Isola et al.).
        precision: ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        jit_compile: XLA on a single device; ignored under a replicating strategy.
        fused_batch_norm: train BatchNormalization through TensorFlow's fused kernel
            (:mod:`temzoo.training.fused_batch_norm`; same updates, less time).

    Returns:
        The compiled :class:`temzoo.pretraining.Pix2Pix` or
        :class:`temzoo.pretraining.Autoencoder`, its optimizers built.
    """
    from temzoo.inference.precision import policy_scope
    from temzoo.pretraining.autoencoder import Autoencoder
    from temzoo.pretraining.pix2pix import Pix2Pix, default_optimizer
    from temzoo.training.distribute import resolve_jit_compile

    if method not in PRETRAIN_METHODS:
        raise ValueError(f"method={method!r} is not supported; choose one of: {', '.join(PRETRAIN_METHODS)}.")
    if method == "pix2pix" and make_discriminator is None:
        raise ValueError("method='pix2pix' needs make_discriminator.")
    g_optimizer = g_optimizer or default_optimizer
    d_optimizer = d_optimizer or default_optimizer
    common = dict(precision=precision, jit_compile=resolve_jit_compile(strategy, jit_compile),
                  steps_per_execution=steps_per_execution, fused_batch_norm=fused_batch_norm)
    with strategy.scope():
        with policy_scope(precision):
            generator = make_generator()
            if method == "pix2pix":
                trainer = Pix2Pix(generator, make_discriminator())
            else:
                trainer = Autoencoder(generator)
        if method == "pix2pix":
            trainer.compile(g_optimizer=g_optimizer(), d_optimizer=d_optimizer(), l1_lambda=l1_lambda, **common)
        else:
            trainer.compile(optimizer=g_optimizer(), loss=loss, **common)
    return trainer


def trainer_from_config(strategy, config):
    """:func:`build_trainer` for a :class:`~temzoo.pretraining.config.PretrainConfig`."""
    from temzoo.models import registry

    def make_generator():
        return registry.build(config.model, **(config.model_overrides or {}))

    def make_discriminator():
        return registry.build(config.discriminator, **(config.discriminator_overrides or {}))

    def make_optimizer():
        return adam_optimizer(config.learning_rate, config.beta_1, config.learning_rate_schedule,
                              total_steps=config.epochs * config.steps_per_epoch)

    return build_trainer(
        strategy, config.method, make_generator, make_discriminator if config.method == "pix2pix" else None,
        g_optimizer=make_optimizer, d_optimizer=make_optimizer, l1_lambda=config.l1_lambda, loss=config.loss,
        precision=config.precision, jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution,
    )


def networks(trainer):
    """The trainer's models: the generator, and the discriminator of pix2pix."""
    return list(trainer.networks)


def checkpoint_objects(trainer):
    """What a checkpoint of ``trainer`` holds: networks, optimizers and dropout seed states."""
    objects = {"generator": trainer.generator, "g_optimizer": trainer.g_optimizer}
    if hasattr(trainer, "discriminator"):
        objects.update(discriminator=trainer.discriminator, d_optimizer=trainer.d_optimizer)
    # Keras' dropout seed states are not tracked by tf.train.Checkpoint through the models.
    seed_states = [v.value for net in networks(trainer) for v in net.variables if "seed_generator_state" in v.path]
    if seed_states:
        objects["seed_generators"] = {f"s{i}": v for i, v in enumerate(seed_states)}
    return objects
