"""Make every serialisable temzoo object known to Keras before a ``.keras`` file is loaded."""


def register_custom_objects():
    """Import every module that registers serialisable temzoo objects.

    Model families and their layers, and the task losses and metrics: a saved
    temzoo model deserialises in a fresh process whatever it contains.
    """
    import temzoo.tasks.losses  # noqa: F401
    from temzoo.models import registry

    registry.family_classes()
