"""Rotary position embedding on the decoupled RoPE columns.

MLA and the indexer rotate only their RoPE columns: the query's per-head rope part and the
one rope key shared by all heads. Pairs are (i, i + d/2) ("rotate half"); all our modules
use that one convention, so trained weights agree with every path that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def rope_tables(dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position × frequency.

    Returns:
        cos, sin: (max_seq_len, dim // 2) float32.
    """
    freqs = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), freqs)
    return angles.cos().float(), angles.sin().float()


@dataclass(frozen=True)
class Rope:
    """The RoPE tables sliced to the positions of one forward call.

    Attributes:
        cos: (T, d/2) float32, or (B, T, d/2) when each row has its own positions (a
            left-padded batch decoding from a cache).
        sin: same shape as cos.
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate x's last dimension by position.

        Args:
            x: (B, T, d) or (B, T, H, d) with d = 2 · cos.shape[-1].

        Returns:
            Same shape and dtype as x.
        """
        cos, sin = self.cos, self.sin
        if x.dim() == 4:
            cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        x1, x2 = x.float().chunk(2, dim=-1)
        rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        return rotated.to(x.dtype)
