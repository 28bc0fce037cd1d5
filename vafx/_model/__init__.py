"""Face models: the MorphableModel pytree, its loaders and its cache format."""
