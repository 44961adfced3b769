"""The training data: the pinned sources, verified, de-duplicated, split by group and laid out."""
