"""GenGuard policies."""
