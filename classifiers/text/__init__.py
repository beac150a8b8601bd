"""GenGuard classifiers.text."""
