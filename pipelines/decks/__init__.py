"""Evaluation decks: many selfies x styles x methods rendered ahead, measured, reported, rated."""
