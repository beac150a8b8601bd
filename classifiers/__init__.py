"""GenGuard classifiers."""
