"""Renderers: N prompts with one face and one seed in one call, one class per kind of model."""
