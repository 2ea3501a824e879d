"""Building blocks of the forecaster (layer 2): scaling, patching, attention, quantile head.

Pure torch: no pandas, no I/O. Shapes use ``B`` batch, ``L`` context steps, ``P`` patch
length, ``N`` tokens, ``D`` model width, ``H`` horizon, ``Q`` quantile levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def robust_clip(values: torch.Tensor, mask: torch.Tensor, q: float | None) -> torch.Tensor:
    """Clip each series at its ``q``-quantile of observed values (one-off huge orders).

    Args:
        values: ``(B, L)`` history.
        mask: ``(B, L)`` 1.0 where observed, 0.0 where padding.
        q: quantile level in [0.5, 1]; ``None`` or 1.0 returns ``values`` unchanged.

    Returns:
        ``(B, L)`` values with ``min(values, cap_b)`` per row; rows without observations
        are returned as they are.
    """
    if q is None or q >= 1.0:
        return values
    masked = torch.where(mask > 0, values, torch.full_like(values, float("nan")))
    cap = torch.nanquantile(masked.float(), q, dim=1, keepdim=True).to(values.dtype)
    cap = torch.nan_to_num(cap, nan=float("inf"))
    return torch.minimum(values, cap)


def mean_abs_scale(values: torch.Tensor, mask: torch.Tensor, minimum: float = 1e-3) -> torch.Tensor:
    """Per-series scale: mean of ``|values|`` over observed steps.

    ``scale_b = sum_t |x_bt| m_bt / max(sum_t m_bt, 1)``; rows whose mean is below
    ``minimum`` (all-zero or empty histories) get scale 1 so that a new or dormant SKU
    is forecast in its own units.

    Args:
        values: ``(B, L)``; mask: ``(B, L)``.

    Returns:
        ``(B, 1)`` strictly positive scale.
    """
    total = (values.abs() * mask).sum(dim=1, keepdim=True)
    count = mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    scale = total / count
    return torch.where(scale < minimum, torch.ones_like(scale), scale)


def patchify(x: torch.Tensor, patch_length: int) -> torch.Tensor:
    """``(B, T, C)`` → ``(B, T / P, P * C)``; ``T`` must be a multiple of ``P``."""
    b, t, c = x.shape
    return x.reshape(b, t // patch_length, patch_length * c)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm encoder block: ``x + MHA(LN(x))`` then ``x + FFN(LN(x))``.

    Input and output: ``(B, N, D)``. Bidirectional attention through
    ``F.scaled_dot_product_attention`` (fused kernels on CPU and CUDA).
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` → ``(B, N, D)``."""
        b, n, d = x.shape
        h = self.num_heads
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_dropout if self.training else 0.0
        )
        x = x + self.dropout(self.out(attn.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class PatchEncoder(nn.Module):
    """Stack of :class:`TransformerBlock` with a final LayerNorm: ``(B, N, D)`` → ``(B, N, D)``."""

    def __init__(
        self, d_model: int, num_layers: int, num_heads: int, ffn_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def relu_softplus_grad(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)`` in the forward pass, the gradient of ``softplus(x)`` (``sigmoid(x)``) in the
    backward pass: outputs can be exactly 0 (zero-demand days) without dead units."""
    if not torch.is_grad_enabled() or not x.requires_grad:
        return torch.relu(x)
    soft = F.softplus(x)
    return soft + (torch.relu(x) - soft).detach()


class MonotoneQuantileHead(nn.Module):
    """Token → ``P`` steps × ``Q`` quantiles, non-negative and non-crossing by construction.

    ``q_1 = g(r_1)``, ``q_k = q_{k-1} + g(r_k)`` with ``g`` = :func:`relu_softplus_grad`:
    every quantile is >= 0 (exactly 0 allowed, as on the days a shop is closed) and each
    level is >= the one below, whatever the weights are.

    Input ``(B, N, D)``; output ``(B, N * P, Q)`` in scaled units.
    """

    def __init__(self, d_model: int, patch_length: int, num_quantiles: int) -> None:
        super().__init__()
        self.patch_length = patch_length
        self.num_quantiles = num_quantiles
        self.proj = nn.Linear(d_model, patch_length * num_quantiles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        raw = self.proj(x).reshape(b, n * self.patch_length, self.num_quantiles)
        return torch.cumsum(relu_softplus_grad(raw.float()), dim=-1)


def pinball_loss(
    quantiles: torch.Tensor,
    target: torch.Tensor,
    levels: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pinball (quantile) loss.

    ``rho_q(y, yhat) = max(q (y - yhat), (q - 1)(y - yhat))`` averaged over levels and the
    observed (mask 1) entries.

    Args:
        quantiles: ``(B, H, Q)``; target: ``(B, H)``; levels: ``(Q,)``; mask: ``(B, H)``.

    Returns:
        scalar tensor.
    """
    diff = target.unsqueeze(-1) - quantiles
    loss = torch.maximum(levels * diff, (levels - 1.0) * diff).mean(dim=-1)
    if mask is None:
        return loss.mean()
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = [
    "MonotoneQuantileHead",
    "PatchEncoder",
    "TransformerBlock",
    "mean_abs_scale",
    "patchify",
    "pinball_loss",
    "robust_clip",
]
