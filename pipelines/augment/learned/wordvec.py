"""Static word vectors distilled from all-MiniLM-L6-v2 for the learned scorer.

Each vocabulary word is run through MiniLM on its own (mean-pooled), and the table is reduced
to a few PCA dimensions, so a prompt's vector is a lookup and a mean: microseconds, no encoder
at run time. Built once by ``build_word_vectors`` (needs the pinned MiniLM:
``python -m pipelines.weights fetch``); the table ships as an ``.npz`` beside the bundled model
and is copied into every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDVEC_FILE = "wordvec-minilm-pca64.npz"  # under <assets>/learned/


@dataclass(frozen=True)
class WordVectors:
    """A static word-vector table (words and their vectors), looked up by word."""

    vocab: np.ndarray  # (v,) str
    table: np.ndarray  # (v, d) float32, centred

    def __post_init__(self) -> None:
        if self.table.ndim != 2 or self.table.shape[0] != len(self.vocab):
            raise ValueError(
                f"word-vector table has shape {self.table.shape} for {len(self.vocab)} words"
            )
        object.__setattr__(self, "_index", {str(w): i for i, w in enumerate(self.vocab)})

    @property
    def dim(self) -> int:
        """Vector length."""
        return self.table.shape[1]

    def mean(self, words: Sequence[str]) -> np.ndarray:
        """(dim,) L2-normalised mean of the known words' vectors; zeros if none is known."""
        idx = [i for i in map(self._index.get, words) if i is not None]  # type: ignore[attr-defined]
        if not idx:
            return np.zeros(self.dim, np.float64)
        v = self.table[idx].mean(0, dtype=np.float64)
        n = float(np.sqrt(v @ v))
        return v / n if n > 1e-12 else v

    @classmethod
    def load(cls, path: str | Path) -> WordVectors:
        """Reads a table written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z["vocab"], z["table"].astype(np.float32))

    def save(self, path: str | Path) -> None:
        """Writes the table as float16 to a compressed ``.npz``."""
        np.savez_compressed(path, vocab=self.vocab, table=self.table.astype(np.float16))


def build_word_vectors(
    model_dir: str | Path, words: Sequence[str], dim: int = 64, batch: int = 512
) -> WordVectors:
    """Encodes each word with the MiniLM at ``model_dir`` (local files only) and keeps ``dim``
    PCA components."""
    import torch
    from sklearn.decomposition import PCA
    from transformers import AutoModel, AutoTokenizer

    vocab = sorted(set(words))
    if len(vocab) <= dim:
        raise ValueError(f"need more than dim={dim} distinct words, got {len(vocab)}")
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(vocab), batch):
            enc = tok(vocab[i : i + batch], padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state  # (b, t, 384)
            m = enc["attention_mask"].unsqueeze(-1).float()  # (b, t, 1)
            out.append(((h * m).sum(1) / m.sum(1)).numpy())
    emb = np.concatenate(out)  # (v, 384)
    table = PCA(dim, random_state=0).fit_transform(emb)  # (v, dim), centred
    # Stored as float16: keep the runtime table identical to what training saw.
    return WordVectors(np.array(vocab), table.astype(np.float16).astype(np.float32))


def minilm_dir() -> Path:
    """The pinned all-MiniLM-L6-v2's checked folder (HF cache or Hub; raises
    :class:`~pipelines.weights.WeightsRefused` saying how to fetch it)."""
    from pipelines.weights import fetch_pinned
    from pipelines.weights.pins import MINILM_PIN

    return fetch_pinned(MINILM_PIN)[0]
