"""GenGuard gateway."""
