"""Styles: the catalog (assets/styles/*.json and the modifier banks), modifiers and their
conflicts, the load-time checks of the asset files, and each style's reference images."""
