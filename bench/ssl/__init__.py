"""Self-supervised (and supervised) pre-training: methods, augmentations, the stage runner."""
