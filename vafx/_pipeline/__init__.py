"""The jobs: synthesis on photos, files and folders, augmentation, animation, the demo."""
