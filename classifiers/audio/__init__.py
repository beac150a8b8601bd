"""GenGuard classifiers.audio."""
