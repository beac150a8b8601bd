"""GenGuard generators."""
