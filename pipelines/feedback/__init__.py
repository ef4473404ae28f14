"""Ratings: SQLite store, training exports, leaderboard statistics, HF dataset sync.

Import from the submodules (``pipelines.feedback.store`` etc.); this package imports nothing
heavy so that ``python -m pipelines.feedback`` starts fast.
"""
