"""Model families. Each family is a ``keras.Model`` subclass built functionally
whose constructor arguments are all returned by ``get_config``.

Registered named variants live beside their family in ``<family>_presets.py``;
``temzoo.models.registry`` collects them.
"""
