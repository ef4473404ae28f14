"""Model code for Become Lab, one package per job, in layers (top to bottom):

``app`` (wiring) -> ``decks`` -> ``feedback`` -> ``measurer`` -> ``augment`` -> ``preview`` |
``tiny`` -> ``models`` -> ``faces`` | ``styles`` -> ``core``. A module imports only from the
layers below its own; ``lint-imports`` checks it (pyproject.toml). Nothing in this package
imports gradio; the UI lives in ``demo/``.
"""
