"""A random-weight stand-in for the learned scorer's contextual encoder (all-MiniLM-L6-v2): a
6-layer BERT with a small WordPiece vocabulary, loaded and read by the same code as MiniLM."""

from __future__ import annotations

from pathlib import Path


def write_tiny_encoder(directory: str | Path, seed: int = 0) -> Path:
    """A random-weight 6-layer BERT with a small WordPiece vocabulary: the same loading and
    encoding code as MiniLM, in milliseconds, offline. Returns ``directory``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "'", *letters]
    vocab += [f"##{c}" for c in letters]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=6,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=160,
        # wide random weights: at BERT's 0.02 every prompt would encode to nearly the same vector
        initializer_range=0.5,
    )
    BertModel(config).save_pretrained(directory)
    return directory
