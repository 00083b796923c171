"""The model runtime: registries, the model resolver, presets, weights on disk, devices and placement."""
