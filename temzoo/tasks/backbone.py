"""Resolve what a user passes as a backbone: :func:`temzoo.resolve.resolve_model` (re-exported here)."""

from temzoo.resolve import ResolvedModel, resolve_model  # noqa: F401
