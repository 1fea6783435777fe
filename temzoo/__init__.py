"""temzoo: a Keras 3 model zoo for transmission electron microscopy.

The public API is small and imported lazily, so ``import temzoo`` (and the
``temzoo-cli --help`` pages) does not start TensorFlow until a model is needed.

    >>> import temzoo
    >>> temzoo.list_models()                 # rows (a list of dicts) that show as a table
    >>> model = temzoo.build("unet_b3_p222")  # random weights
    >>> temzoo.receptive_field(model)
"""

from temzoo._version import __version__
from temzoo.lazy import lazy_attributes

# Imported eagerly (it needs no Keras): the function shares its module's name,
# and a lazy attribute would be shadowed by the submodule once anything imports
# ``temzoo.receptive_field``, making ``temzoo.receptive_field(model)`` a module.
from temzoo.receptive_field import receptive_field

# public name -> "module:attribute"
_LAZY = {
    "build": "temzoo.models.registry:build",
    "list_architectures": "temzoo.models.registry:list_architectures",
    "list_models": "temzoo.zoo.table:list_models",
    "load": "temzoo.zoo.pretrained:load",
    "register": "temzoo.zoo.pretrained:register",
    "card": "temzoo.zoo.pretrained:card",
    "predict": "temzoo.inference.tiling:predict",
    "adapt": "temzoo.adaptation:adapt",
    # the module is analysis.particles, so the package attribute is the function
    "particles": "temzoo.analysis.particles:particles",
}

__all__ = ["__version__", "receptive_field", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
