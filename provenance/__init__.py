"""GenGuard provenance."""
