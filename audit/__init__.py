"""GenGuard audit."""
