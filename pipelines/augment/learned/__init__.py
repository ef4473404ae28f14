"""The learned method: a prompt scorer trained on (prompt, score) pairs (model.py, on features.py,
kernel.py and wordvec.py, read by data.py), with an optional contextual second stage that
re-ranks the fast stage's best candidates (contextual.py, on encoder.py), and the beam search
that adds the modifiers it predicts will score higher (search.py)."""
