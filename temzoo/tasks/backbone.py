"""Resolve what a user passes as a backbone: :func:`temzoo.zoo.resolve.resolve_model` (re-exported here)."""

from temzoo.zoo.resolve import ResolvedModel, resolve_model  # noqa: F401
