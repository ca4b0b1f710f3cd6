"""``text_bytes``: a byte-level corpus as sequences for next-token prediction (``data.corpus``).

Examples are sequences: an item is (the L bytes of a window, the L bytes one further on) as
int64 token ids, so B counts sequences and a batch holds B·L tokens. The splits are map-style
datasets over one byte tensor each (a few MB for the default corpus): they stream like any
map-style dataset, and ``tensors()`` gives a whole split at once when it is kept in memory.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from scalestudy.data.corpus import VOCABULARY, corpus_files, corpus_hash, read_corpus
from scalestudy.data.options import TextBytesOptions
from scalestudy.data.stream import MapDataset


class TokenSequences(Dataset):
    """Sequence i of a byte string: inputs bytes [i·L, (i+1)·L), targets one byte further on."""

    def __init__(self, data: bytes, seq_len: int) -> None:
        self.tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return max(0, (self.tokens.numel() - 1) // self.seq_len)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.seq_len
        window = self.tokens[start:start + self.seq_len + 1].long()
        return window[:-1], window[1:]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """Every sequence at once: inputs and targets, (n, L) int64 each."""
        n, length = len(self), self.seq_len
        tokens = self.tokens[:n * length + 1].long()
        return tokens[:-1].view(n, length).clone(), tokens[1:].unfold(0, length, length).clone()


def load_text_bytes(options: TextBytesOptions) -> MapDataset:
    corpus = read_corpus(corpus_files(options.paths, options.pattern), options.max_bytes)
    found = corpus_hash(corpus)
    if found != options.corpus_hash:
        raise ValueError(f"text_bytes: the corpus read here has sha256 {found[:12]}…, the study's is "
                         f"{options.corpus_hash[:12]}…: the files under {options.paths or 'the standard library'} "
                         "differ from the ones the study was validated with (another Python version, changed files)")
    layout = options.layout()
    train = TokenSequences(corpus[:layout.train_bytes], options.seq_len)
    test = TokenSequences(corpus[layout.train_bytes:], options.seq_len)
    return MapDataset("text_bytes", train, test, num_classes=VOCABULARY, input_shape=(options.seq_len,))
