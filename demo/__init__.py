"""Gradio UI for Become Lab. Receives services and callables; never loads a model itself."""

from demo.layout import CSS, THEME, build_demo

__all__ = ["CSS", "THEME", "build_demo"]
