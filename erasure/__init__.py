"""GenGuard erasure."""
