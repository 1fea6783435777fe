"""temzoo.training: see docs/architecture.md."""
