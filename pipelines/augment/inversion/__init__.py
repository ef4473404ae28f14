"""The inversion method: a prompt recovered from style reference images with CLIP, by an
interrogator-style ranking of the modifier banks (interrogate.py) or PEZ hard-prompt
optimisation (pez.py); method.py is the AugmentMethod, args.py its checked arguments."""
