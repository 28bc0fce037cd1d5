"""The 4D expression gallery: store, importers, synthetic generator, statistics."""
