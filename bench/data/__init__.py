"""Dataset readers, splits, manifests and batch loading."""
