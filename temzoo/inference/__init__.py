"""temzoo.inference: see docs/architecture.md."""
