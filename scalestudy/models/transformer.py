"""A small decoder-only transformer for byte-level language modelling (the GPT-2 layout, small).

Token and learned position embeddings, ``n_layers`` pre-LayerNorm blocks (causal self-attention
through ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``, then a 4×-wide GELU
MLP, each added to the residual stream), a final LayerNorm and an output head tied to the token
embedding. Weights are N(0, 0.02), and the two projections into the residual stream of every
block N(0, 0.02/√(2·n_layers)) (GPT-2). No batch norm: ghost batch norm does not apply.

Built with the model contract ``build(input_shape, num_classes, **options)``: ``input_shape`` is
(L,), a sequence of L token ids, and ``num_classes`` the vocabulary; the output is (n, L, V) logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (n, heads, L, head width)
        return self.proj(out.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Decoder-only transformer: (n, L) int64 tokens → (n, L, V) next-token logits."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, seq_len: int | None = None, norm: str = "layer") -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"transformer: inputs must be sequences of token ids (L,), got shape {tuple(input_shape)}")
        positions = seq_len or int(input_shape[0])
        if positions < input_shape[0]:
            raise ValueError(f"transformer: seq_len {positions} is shorter than the data's sequences ({input_shape[0]})")
        if d_model % n_heads:
            raise ValueError(f"transformer: d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.tokens = nn.Embedding(num_classes, d_model)
        self.positions = nn.Embedding(positions, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes, bias=False)
        self.head.weight = self.tokens.weight  # tied
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for projection in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(projection.weight, 0.0, 0.02 / math.sqrt(2 * n_layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.tokens(tokens) + self.positions(torch.arange(length, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))
