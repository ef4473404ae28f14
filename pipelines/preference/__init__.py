"""Human-preference scorers (PickScore, HPSv2): CLIP models fine-tuned on people's choices,
loaded lazily through transformers, each giving a value or the reason it could not run."""
