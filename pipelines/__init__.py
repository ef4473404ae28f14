"""Model code for Become Lab: face analysis, generation engines and prompt augmentation.

Nothing in this package imports gradio; the UI lives in ``demo/``.
"""
