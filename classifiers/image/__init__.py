"""GenGuard classifiers.image."""
