"""temzoo.zoo: see docs/architecture.md."""
