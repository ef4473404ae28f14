"""The weight-free preview engine: the selfie stylised with OpenCV/Pillow from the style's
recipe (render.py, ops.py, effects.py, pixels.py), and its renderer (renderer.py)."""
