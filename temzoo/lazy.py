"""Lazy attributes for a package's public names, so importing it does not start TensorFlow.

    >>> __getattr__, __dir__ = lazy_attributes(__name__, globals(), {"load": "temzoo.zoo.pretrained:load"})

Each public name maps to ``"module:attribute"``; the module is imported on first
access and the value cached in the package's namespace.
"""

import importlib


def lazy_attributes(package, namespace, table):
    """``(__getattr__, __dir__)`` for ``package`` resolving the names of ``table`` on first use."""

    def __getattr__(name):
        try:
            target = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module_name, attr = target.split(":")
        value = getattr(importlib.import_module(module_name), attr)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
