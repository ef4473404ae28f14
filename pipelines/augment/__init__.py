"""Prompt augmentation methods: raw, template, learned, inversion, ensemble."""
