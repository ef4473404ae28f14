"""Faces: photo decoding with the app's own checks (photo.py) and insightface detection and
recognition (analysis.py)."""
