"""The demandcast forecaster (layer 3): a ``transformers`` ``PreTrainedModel`` in PyTorch.

A patch transformer: the history is cut into patches of ``P`` steps (one token per week for
daily data), each token carrying the scaled values, the observed mask and the per-step
covariates of its patch; the horizon is represented by ``ceil(H / P)`` extra tokens that
carry only the known-future covariates. One encoder pass (own pre-LN encoder, or GPT-2's
blocks when ``backbone="gpt2"``) and a monotone quantile head give every quantile of every
horizon step at once (direct multi-horizon; no sampling).

No pandas, no I/O here: tensors in, tensors out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model, PreTrainedModel
from transformers.utils import ModelOutput

from models.config import DemandcastConfig
from models.exceptions import InputError
from models.layers import (
    MonotoneQuantileHead,
    PatchEncoder,
    mean_abs_scale,
    patchify,
    pinball_loss,
    robust_clip,
)


@dataclass
class ForecastOutput(ModelOutput):
    """What :meth:`DemandcastForecaster.forward` returns.

    Attributes:
        quantiles: ``(B, H, Q)`` forecasts in the series' own units, >= 0, non-decreasing in Q.
        loss: scalar mean pinball loss in scaled units (only when ``future_values`` is given).
        scale: ``(B, 1)`` per-series scale used for the inputs.
    """

    quantiles: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    scale: torch.Tensor | None = None


class DemandcastPreTrainedModel(PreTrainedModel):
    """Weight init and the config class shared by the forecaster's models."""

    config_class = DemandcastConfig
    config: DemandcastConfig
    base_model_prefix = "forecaster"
    main_input_name = "past_values"
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_gpt2_config(config: DemandcastConfig, num_tokens: int) -> GPT2Config:
    """GPT-2 config matching ``config``'s width and depth (vocabulary of 1: inputs are embeds)."""
    return GPT2Config(
        vocab_size=1,
        n_positions=max(num_tokens, 8),
        n_embd=config.d_model,
        n_layer=config.num_layers,
        n_head=config.num_heads,
        n_inner=config.ffn_dim,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        use_cache=False,
    )


class DemandcastForecaster(DemandcastPreTrainedModel):
    """Quantile forecaster: history + covariates + static ids → ``(B, H, Q)`` quantiles.

    Inputs (``L = context_length``, ``H = prediction_length``, ``F = num_covariates``,
    ``S = num_static_features``):

    - ``past_values`` ``(B, L)`` float, finite; left-pad short histories with zeros and
      mark the padding with 0 in ``past_observed_mask`` ``(B, L)``.
    - ``covariates`` ``(B, L + H, F)``: calendar, holiday and known-future covariates for the
      context steps followed by the horizon steps (required when ``F > 0``).
    - ``static_ids`` ``(B, S)`` long in ``[0, num_static_buckets)``: hashed static features.
    - ``year_back`` and ``year_back_mask`` ``(B, L + H, W)`` (only when ``W =
      config.year_back_width > 0``): per step, the values ``year_back_period - K … + K``
      periods before it (raw units, 0 where unknown) and 1 where each was observed; the
      model scales them like the history. ``None``: every year-back value unknown.
    - ``future_values`` ``(B, H)`` and ``future_observed_mask`` ``(B, H)``: targets for the loss;
      ``sample_weight`` ``(B,)`` optionally weights each window in it.
    """

    def __init__(self, config: DemandcastConfig) -> None:
        super().__init__(config)
        c = config
        p = c.patch_length
        self.num_context_patches = c.context_length // p
        self.num_future_patches = math.ceil(c.prediction_length / p)
        num_tokens = self.num_context_patches + self.num_future_patches
        f = max(c.num_covariates, 1)
        self.seasonal_lags = c.effective_seasonal_lags
        extra = self.seasonal_lags + 1 if self.seasonal_lags else 0
        self.year_back_width = c.year_back_width
        yb = 2 * self.year_back_width  # values and their observed mask
        self.context_embed = nn.Linear(p * (2 + yb + f), c.d_model)
        self.future_embed = nn.Linear(p * (f + extra + yb), c.d_model)
        self.scale_embed = nn.Linear(1, c.d_model)
        self.static_embed = nn.Embedding(c.num_static_buckets, c.d_model)
        self.input_dropout = nn.Dropout(c.dropout)
        self.backbone: nn.Module
        if c.backbone == "gpt2":
            # GPT-2 adds its own learned position embeddings (wpe) to inputs_embeds.
            self.backbone = GPT2Model(build_gpt2_config(c, num_tokens))
            self.position_embed = None
        else:
            self.backbone = PatchEncoder(c.d_model, c.num_layers, c.num_heads, c.ffn_dim, c.dropout)
            self.position_embed = nn.Embedding(num_tokens, c.d_model)
        self.head = MonotoneQuantileHead(c.d_model, p, len(c.quantile_levels))
        # Not a buffer: from_pretrained (meta-device init) would leave a non-persistent
        # buffer uninitialised. Built from the config on first use per device instead.
        self._levels: torch.Tensor | None = None
        self.post_init()

    # ------------------------------------------------------------------ validation
    def _check_inputs(
        self,
        past_values: torch.Tensor,
        past_observed_mask: torch.Tensor | None,
        covariates: torch.Tensor | None,
        static_ids: torch.Tensor | None,
        future_values: torch.Tensor | None,
        year_back: torch.Tensor | None = None,
        year_back_mask: torch.Tensor | None = None,
    ) -> None:
        c = self.config
        if past_values.ndim != 2 or past_values.shape[1] != c.context_length:
            raise InputError(
                f"past_values must have shape (batch, context_length={c.context_length}), got "
                f"{tuple(past_values.shape)}; left-pad shorter histories with zeros and a mask"
            )
        b = past_values.shape[0]
        if not torch.isfinite(past_values).all():
            raise InputError(
                "past_values contains NaN or infinity; replace missing steps with 0 and set "
                "past_observed_mask to 0 there"
            )
        if past_observed_mask is not None and past_observed_mask.shape != past_values.shape:
            raise InputError(
                f"past_observed_mask shape {tuple(past_observed_mask.shape)} != past_values "
                f"shape {tuple(past_values.shape)}"
            )
        want = (b, c.context_length + c.prediction_length, c.num_covariates)
        if c.num_covariates > 0:
            if covariates is None:
                raise InputError(
                    f"this model needs covariates of shape {want} ({', '.join(c.covariate_names)})"
                )
            if tuple(covariates.shape) != want:
                raise InputError(
                    f"covariates must have shape (batch, context+horizon, num_covariates)={want}, "
                    f"got {tuple(covariates.shape)}"
                )
            if not torch.isfinite(covariates).all():
                raise InputError("covariates contain NaN or infinity; fill them before forecasting")
        elif covariates is not None and covariates.numel() > 0:
            raise InputError(
                f"this model was built without covariates but got a tensor of shape "
                f"{tuple(covariates.shape)}"
            )
        s = c.num_static_features
        if s > 0:
            if static_ids is None or tuple(static_ids.shape) != (b, s):
                got = None if static_ids is None else tuple(static_ids.shape)
                raise InputError(f"static_ids must have shape ({b}, {s}), got {got}")
            if static_ids.dtype not in (torch.int32, torch.int64):
                raise InputError(f"static_ids must be an integer tensor, got {static_ids.dtype}")
            if static_ids.numel() and (
                int(static_ids.min()) < 0 or int(static_ids.max()) >= c.num_static_buckets
            ):
                raise InputError(f"static_ids must lie in [0, {c.num_static_buckets})")
        wy = (b, c.context_length + c.prediction_length, self.year_back_width)
        for name, t in (("year_back", year_back), ("year_back_mask", year_back_mask)):
            if t is None:
                continue
            if not self.year_back_width:
                raise InputError(f"this model was built without year-back inputs but got {name}")
            if tuple(t.shape) != wy:
                raise InputError(f"{name} must have shape {wy}, got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise InputError(f"{name} contains NaN or infinity; write 0 and mask it")
        if future_values is not None and tuple(future_values.shape) != (b, c.prediction_length):
            raise InputError(
                f"future_values must have shape ({b}, {c.prediction_length}), got "
                f"{tuple(future_values.shape)}"
            )

    def levels(self, device: torch.device) -> torch.Tensor:
        """``(Q,)`` float32 quantile levels on ``device``."""
        if self._levels is None or self._levels.device != device:
            self._levels = torch.tensor(
                self.config.quantile_levels, dtype=torch.float32, device=device
            )
        return self._levels

    def _seasonal_inputs(self, scaled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per horizon step, the sorted scaled values at the same season position in the last
        ``k`` seasons, ``sign·log1p``'d, plus the observed share of those values.

        ``scaled``, ``mask``: ``(B, L)`` → ``(B, ceil(H/P)·P, k + 1)``.
        """
        m, k = self.config.lag_period, self.seasonal_lags
        b = scaled.shape[0]
        recent = scaled[:, -m * k :].reshape(b, k, m)
        seen = mask[:, -m * k :].reshape(b, k, m).mean(dim=1, keepdim=True)  # (B, 1, m)
        ordered = recent.sort(dim=1).values
        ordered = torch.sign(ordered) * torch.log1p(ordered.abs())
        feats = torch.cat([ordered, seen], dim=1)  # (B, k + 1, m)
        steps = (
            torch.arange(self.num_future_patches * self.config.patch_length, device=scaled.device)
            % m
        )
        return feats[:, :, steps].transpose(1, 2)

    def _year_back_inputs(
        self,
        values: torch.Tensor | None,
        mask: torch.Tensor | None,
        scale: torch.Tensor,
        b: int,
        steps: int,
    ) -> torch.Tensor:
        """``(B, L + H, 2W)``: the year-back values scaled like the history (``sign·log1p``
        of value / scale, 0 where unobserved), then their observed mask."""
        w = self.year_back_width
        if values is None:
            return scale.new_zeros(b, steps, 2 * w)
        m = torch.ones_like(values, dtype=scale.dtype) if mask is None else mask.to(scale.dtype)
        v = values.to(scale.dtype) * m / scale.unsqueeze(-1)
        v = torch.sign(v) * torch.log1p(v.abs())
        return torch.cat([v, m], dim=-1)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        past_values: torch.Tensor,
        past_observed_mask: torch.Tensor | None = None,
        covariates: torch.Tensor | None = None,
        static_ids: torch.Tensor | None = None,
        future_values: torch.Tensor | None = None,
        future_observed_mask: torch.Tensor | None = None,
        sample_weight: torch.Tensor | None = None,
        validate: bool = True,
        year_back: torch.Tensor | None = None,
        year_back_mask: torch.Tensor | None = None,
    ) -> ForecastOutput:
        """Forecast every quantile of every horizon step; shapes in the class docstring.

        Returns:
            :class:`ForecastOutput` with ``quantiles`` ``(B, H, Q)`` (and ``loss`` when
            ``future_values`` is given).
        """
        c = self.config
        if validate:
            self._check_inputs(
                past_values,
                past_observed_mask,
                covariates,
                static_ids,
                future_values,
                year_back,
                year_back_mask,
            )
        b, length = past_values.shape
        p, h = c.patch_length, c.prediction_length
        x = past_values.float()
        mask = torch.ones_like(x) if past_observed_mask is None else past_observed_mask.to(x.dtype)
        x = robust_clip(x * mask, mask, c.clip_quantile)
        scale = mean_abs_scale(x, mask)  # (B, 1)
        xs = x / scale
        xs = torch.sign(xs) * torch.log1p(xs.abs())

        if c.num_covariates > 0 and covariates is not None:
            cov = covariates.to(x.dtype)
        else:
            cov = x.new_zeros(b, length + h, 1)
        # Calendar covariates shared by the whole batch (the pipeline's inference batches
        # broadcast one window with stride 0): embed them once and broadcast the tokens.
        shared = b > 1 and cov.stride(0) == 0
        if shared:
            cov = cov[:1]
        cov_past, cov_future = cov[:, :length], cov[:, length:]
        pad = self.num_future_patches * p - h
        if pad:
            cov_future = nn.functional.pad(cov_future, (0, 0, 0, pad))
        seasonal = self._seasonal_inputs(x / scale, mask) if self.seasonal_lags else None

        own = torch.stack([xs, mask], dim=-1)  # (B, L, 2)
        if self.year_back_width:
            yb = self._year_back_inputs(year_back, year_back_mask, scale, b, length + h)
            own = torch.cat([own, yb[:, :length]], dim=-1)
            yb_future = yb[:, length:]
            if pad:
                yb_future = nn.functional.pad(yb_future, (0, 0, 0, pad))
            seasonal = yb_future if seasonal is None else torch.cat([seasonal, yb_future], dim=-1)
        if shared:
            ctx_tokens = _split_embed(self.context_embed, p, own, cov_past, own_first=True)
            if seasonal is None:
                fut_tokens = self.future_embed(patchify(cov_future, p)).expand(b, -1, -1)
            else:
                fut_tokens = _split_embed(
                    self.future_embed, p, seasonal, cov_future, own_first=False
                )
        else:
            ctx_tokens = self.context_embed(patchify(torch.cat([own, cov_past], dim=-1), p))
            if seasonal is not None:
                cov_future = torch.cat([cov_future, seasonal], dim=-1)
            fut_tokens = self.future_embed(patchify(cov_future, p))
        tokens = torch.cat([ctx_tokens, fut_tokens], dim=1)  # (B, N, D)
        tokens = tokens + self.scale_embed(torch.log(scale)).unsqueeze(1)
        if c.num_static_features > 0 and static_ids is not None:
            tokens = tokens + self.static_embed(static_ids).sum(dim=1, keepdim=True)
        if self.position_embed is not None:
            tokens = tokens + self.position_embed.weight.unsqueeze(0)
            hidden = self.backbone(self.input_dropout(tokens))
        else:
            hidden = self.backbone(inputs_embeds=tokens).last_hidden_state
        scaled_q = self.head(hidden[:, self.num_context_patches :])[:, :h]  # (B, H, Q)
        loss = None
        if future_values is not None:
            fmask = None if future_observed_mask is None else future_observed_mask.to(x.dtype)
            if sample_weight is not None:  # (B,) per-window loss weights
                w = sample_weight.to(x.dtype).unsqueeze(1)
                fmask = w.expand(b, h) if fmask is None else fmask * w
            target = torch.nan_to_num(future_values.float()) / scale
            loss = pinball_loss(scaled_q, target, self.levels(scaled_q.device), fmask)
        return ForecastOutput(quantiles=scaled_q * scale.unsqueeze(-1), loss=loss, scale=scale)


def _split_embed(
    linear: nn.Linear, patch: int, own: torch.Tensor, shared: torch.Tensor, own_first: bool
) -> torch.Tensor:
    """``linear(patchify(cat([own, shared], -1)))`` (``shared`` first when not
    ``own_first``) with ``shared`` ``(1, T, Cs)`` common to the batch: its part of the
    product is computed once and broadcast. ``own`` ``(B, T, Co)`` → ``(B, T / P, D)``."""
    co, cs = own.shape[-1], shared.shape[-1]
    w = linear.weight.view(linear.out_features, patch, co + cs)  # patchify: step-major
    w_own, w_shared = (w[..., :co], w[..., co:]) if own_first else (w[..., cs:], w[..., :cs])
    out = nn.functional.linear(patchify(own, patch), w_own.reshape(-1, patch * co))
    common = nn.functional.linear(
        patchify(shared, patch), w_shared.reshape(-1, patch * cs), linear.bias
    )
    return out + common


def load_gpt2_weights(model: DemandcastForecaster, path: str) -> None:
    """Copy a local GPT-2 checkpoint's blocks into ``model``'s GPT-2 backbone.

    The checkpoint's width (``n_embd``) and head count must equal ``d_model`` and
    ``num_heads``; extra layers in the checkpoint are dropped, missing ones stay random. The
    position embeddings are copied for the first ``num_tokens`` positions.
    """
    if model.config.backbone != "gpt2":
        raise InputError("load_gpt2_weights needs a model built with backbone='gpt2'")
    pretrained = GPT2Model.from_pretrained(path)
    pc = pretrained.config
    if pc.n_embd != model.config.d_model or pc.n_head != model.config.num_heads:
        raise InputError(
            f"GPT-2 checkpoint at {path} has n_embd={pc.n_embd}, n_head={pc.n_head}; set "
            f"d_model={pc.n_embd} and num_heads={pc.n_head} (and ffn_dim={4 * pc.n_embd})"
        )
    own = model.backbone.state_dict()
    src = pretrained.state_dict()
    for name, tensor in own.items():
        if name in src and src[name].shape == tensor.shape:
            tensor.copy_(src[name])
        elif name == "wpe.weight" and name in src:
            tensor.copy_(src[name][: tensor.shape[0]])


__all__ = [
    "DemandcastForecaster",
    "DemandcastPreTrainedModel",
    "ForecastOutput",
    "build_gpt2_config",
    "load_gpt2_weights",
]
