"""temzoo.analysis: see docs/architecture.md."""
