"""The learned method: a prompt scorer trained on (prompt, score) pairs (model.py, on features.py,
kernel.py and wordvec.py, read by data.py) and the beam search that adds the modifiers it
predicts will score higher (search.py)."""
