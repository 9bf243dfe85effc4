"""Classical sequence and position baselines, all as BeamPredictors over the same batches:

- `gru`, `transformer`: beam history (the beams served in the last H frames and their RSRP feedback)
  → beams of the next F frames;
- `ar`: an autoregressive model of the beam index, b_t = b_{t−1} + Σ a_i (b_{t−i} − b_{t−i−1}) + c,
  rolled forward for later horizons, scored as a Gaussian over beam indices (learned spread);
- `kalman`: GPS fixes filtered by a constant-velocity (linear) or constant-turn-rate-and-velocity
  (extended) Kalman filter, the position predicted to each target frame and turned into the beam
  pointing at it (nothing to train);
- `mlp`: the DeepSense 6G challenge's position baseline, an MLP from the latest GPS fix to beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from learners.data import RF_INPUT
from learners.models.registry import BeamPredictor, ModelContext, Tensors, register_model
from learners.preprocess import GPS_FEATURES, features_to_metres
from twin.validation import at_least, between, each_between, one_of, spec


def rf_tokens(embedding: nn.Embedding, inputs: Tensors, masks: Tensors) -> torch.Tensor:
    """(B, H, E + 2): embedded served beam, its normalised RSRP and the frame's mask."""
    mask = masks[RF_INPUT].float()
    beams = embedding(inputs[RF_INPUT]) * mask.unsqueeze(-1)
    return torch.cat([beams, (inputs["beam_rsrp"] * mask).unsqueeze(-1), mask.unsqueeze(-1)], -1)


# --- beam history: GRU ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GruOptions:
    embedding: int = spec(32, check=between(1, 4096))
    hidden: int = spec(64, check=between(1, 4096))
    layers: int = spec(1, check=between(1, 16))
    dropout: float = spec(0.0, check=between(0, 0.9))


@register_model
class BeamGru(BeamPredictor):
    kind = "gru"
    Options = GruOptions

    def __init__(self, options: GruOptions, context: ModelContext):
        super().__init__(options, context)
        k = context.num_beams
        self.embedding = nn.Embedding(k, options.embedding)
        self.gru = nn.GRU(
            options.embedding + 2,
            options.hidden,
            num_layers=options.layers,
            batch_first=True,
            dropout=options.dropout if options.layers > 1 else 0.0,
        )
        self.head = nn.Linear(options.hidden, context.future * k)

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return (RF_INPUT,)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        _, last = self.gru(rf_tokens(self.embedding, inputs, masks))
        return self.head(last[-1]).view(-1, self.context.future, self.context.num_beams)


# --- beam history: Transformer ----------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerOptions:
    embedding: int = spec(32, check=between(1, 4096))
    dim: int = spec(64, check=between(4, 4096))
    heads: int = spec(4, check=between(1, 64))
    layers: int = spec(2, check=between(1, 32))
    ffn_ratio: int = spec(2, check=between(1, 16))
    dropout: float = spec(0.1, check=between(0, 0.9))


@register_model
class BeamTransformer(BeamPredictor):
    """Encoder over the history tokens plus a summary token that is never masked (so a drive's first
    frame, with no history at all, still gives finite logits)."""

    kind = "transformer"
    Options = TransformerOptions

    def __init__(self, options: TransformerOptions, context: ModelContext):
        super().__init__(options, context)
        k, d = context.num_beams, options.dim
        self.embedding = nn.Embedding(k, options.embedding)
        self.project = nn.Linear(options.embedding + 2, d)
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        self.position = nn.Parameter(torch.randn(1, context.history + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, options.heads, d * options.ffn_ratio, options.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, options.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, context.future * k))

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return (RF_INPUT,)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        tokens = self.project(rf_tokens(self.embedding, inputs, masks))
        batch = tokens.shape[0]
        tokens = torch.cat([self.summary.expand(batch, -1, -1), tokens], 1) + self.position
        ignore = torch.cat([torch.zeros(batch, 1, dtype=torch.bool), ~masks[RF_INPUT]], 1)
        out = self.encoder(tokens, src_key_padding_mask=ignore)
        return self.head(out[:, 0]).view(-1, self.context.future, self.context.num_beams)


# --- beam history: autoregressive -------------------------------------------------------------------


@dataclass(frozen=True)
class ArOptions:
    order: int = spec(3, check=between(1, 64))  # beam-index differences used
    spread_beams: float = spec(2.0, check=at_least(0.1))  # initial std of the Gaussian over beams


@register_model
class BeamAutoregressive(BeamPredictor):
    """Linear AR model on beam-index increments; starts as "keep the last beam" (all a_i = c = 0)."""

    kind = "ar"
    Options = ArOptions

    def __init__(self, options: ArOptions, context: ModelContext):
        super().__init__(options, context)
        self.coefficients = nn.Parameter(torch.zeros(options.order))
        self.drift = nn.Parameter(torch.zeros(()))
        self.log_spread = nn.Parameter(torch.full((context.future,), math.log(options.spread_beams)))
        self.register_buffer("beams", torch.arange(context.num_beams, dtype=torch.float32), persistent=False)

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return (RF_INPUT,)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        beams, mask = inputs[RF_INPUT].float(), masks[RF_INPUT]
        k = self.context.num_beams
        # Masked frames (before the drive's start, missing feedback) hold the last known beam.
        filled = []
        known = torch.zeros(beams.shape[0], dtype=torch.bool)
        last = torch.full((beams.shape[0],), (k - 1) / 2)
        for h in range(beams.shape[1]):
            last = torch.where(mask[:, h], beams[:, h], last)
            known = known | mask[:, h]
            filled.append(last)
        series = list(filled)
        order = self.options.order
        out = []
        for f in range(self.context.future):
            steps = [
                series[-i] - series[-i - 1] if len(series) > i else torch.zeros_like(last)
                for i in range(1, order + 1)
            ]
            mean = series[-1] + sum(a * s for a, s in zip(self.coefficients, steps)) + self.drift
            mean = mean.clamp(0, k - 1)
            series.append(mean)
            spread = self.log_spread[f].exp()
            logits = -((self.beams[None] - mean[:, None]) ** 2) / (2 * spread**2)
            out.append(torch.where(known[:, None], logits, torch.zeros_like(logits)))  # no history: flat
        return torch.stack(out, 1)


# --- GPS: Kalman filter and the geometric beam -----------------------------------------------------


@dataclass(frozen=True)
class KalmanOptions:
    motion: str = spec("cv", check=one_of("cv", "ctrv"))  # constant velocity / constant turn rate
    accel_std: float = spec(2.0, check=at_least(1e-3))  # m/s², white-noise acceleration
    yaw_accel_std: float = spec(0.5, check=at_least(1e-4))  # rad/s², CTRV turn-rate noise
    gps_noise_m: float = spec(0.0, check=at_least(0))  # 0: the store's GPS noise (or 1 m)
    initial_speed_std: float = spec(15.0, check=at_least(0.1))  # m/s, before a velocity is seen
    ue_height_m: float = spec(1.6, check=between(-100, 1000))
    spread_deg: float = spec(1.5, check=at_least(0.01))  # logits −(θ_k − θ̂)² / 2σ²


def _cv_step(state: torch.Tensor, dt: float) -> torch.Tensor:
    x, y, vx, vy = state.unbind(-1)
    return torch.stack([x + vx * dt, y + vy * dt, vx, vy], -1)


def _ctrv_step(state: torch.Tensor, dt: float) -> torch.Tensor:
    x, y, v, yaw, rate = state.unbind(-1)
    turning = rate.abs() > 1e-4
    safe = torch.where(turning, rate, torch.ones_like(rate))
    dx = torch.where(
        turning, v / safe * (torch.sin(yaw + rate * dt) - torch.sin(yaw)), v * torch.cos(yaw) * dt
    )
    dy = torch.where(
        turning, v / safe * (torch.cos(yaw) - torch.cos(yaw + rate * dt)), v * torch.sin(yaw) * dt
    )
    return torch.stack([x + dx, y + dy, v, yaw + rate * dt, rate], -1)


@register_model
class GpsKalman(BeamPredictor):
    """Filters the GPS track of the window and points the beam at the predicted position.

    Between GPS updates a receiver repeats its last fix; a repeated value is not a new measurement
    (it would pull the velocity to zero), so only frames whose fix changed update the filter.
    """

    kind = "kalman"
    Options = KalmanOptions
    needs_training = False

    def __init__(self, options: KalmanOptions, context: ModelContext):
        super().__init__(options, context)
        deployment = context.deployment
        noise = options.gps_noise_m or float(deployment.sensors.get("gps", {}).get("noise_m", 1.0)) or 1.0
        if context.preprocess.gps_source == "position":
            noise = options.gps_noise_m or 0.05
        self.noise_m = max(noise, 0.01)
        self.dt = 1.0 / deployment.frame_rate_hz
        bs = deployment.bs_position_m or (0.0, 0.0, 0.0)
        yaw = math.radians(deployment.bs_yaw_deg or 0.0)
        self.register_buffer(
            "angles", torch.tensor(deployment.angles_deg, dtype=torch.float32), persistent=False
        )
        self.axis = (-math.sin(yaw), math.cos(yaw))  # the array axis: 90° counter-clockwise from boresight
        self.height = options.ue_height_m - bs[2]
        self.size = 4 if options.motion == "cv" else 5

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return ("gps",)

    def _step(self, state: torch.Tensor) -> torch.Tensor:
        return _cv_step(state, self.dt) if self.options.motion == "cv" else _ctrv_step(state, self.dt)

    def _process_noise(self, state: torch.Tensor) -> torch.Tensor:
        dt, o = self.dt, self.options
        batch = state.shape[0]
        if o.motion == "cv":
            g = torch.tensor([[dt * dt / 2, 0], [0, dt * dt / 2], [dt, 0], [0, dt]]).expand(batch, 4, 2)
            return g @ g.transpose(1, 2) * o.accel_std**2
        yaw = state[:, 3]
        g = torch.zeros(batch, 5, 2)
        g[:, 0, 0] = dt * dt / 2 * torch.cos(yaw)
        g[:, 1, 0] = dt * dt / 2 * torch.sin(yaw)
        g[:, 2, 0] = dt
        g[:, 3, 1] = dt * dt / 2
        g[:, 4, 1] = dt
        return g @ torch.diag(torch.tensor([o.accel_std**2, o.yaw_accel_std**2])) @ g.transpose(1, 2)

    def _predict(self, state: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.options.motion == "cv":  # linear: the Jacobian is the transition matrix
            jacobian = torch.eye(4)
            jacobian[0, 2] = jacobian[1, 3] = self.dt
        else:  # extended Kalman filter: linearise the turn at the current state
            jacobian = torch.func.vmap(torch.func.jacrev(self._step))(state)
        return self._step(state), jacobian @ cov @ jacobian.transpose(-1, -2) + self._process_noise(state)

    def _initial(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = z.shape[0]
        state = torch.zeros(batch, self.size)
        state[:, :2] = z
        r2, v2 = self.noise_m**2, self.options.initial_speed_std**2
        diag = [r2, r2, v2, v2] if self.size == 4 else [r2, r2, v2, math.pi**2, 0.1**2]
        return state, torch.diag(torch.tensor(diag)).expand(batch, -1, -1).clone()

    def track(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Filtered state and covariance after the window's last frame, and whether any fix was seen."""
        metres = features_to_metres(features.double(), self.context.preprocess).float()  # (B, H, 2)
        batch, frames = metres.shape[:2]
        state, cov = self._initial(torch.zeros(batch, 2))
        seen = torch.zeros(batch, dtype=torch.bool)
        observe = torch.zeros(2, self.size)
        observe[0, 0] = observe[1, 1] = 1.0
        noise = torch.eye(2) * self.noise_m**2
        previous = torch.full((batch, 2), float("nan"))
        for h in range(frames):
            if h > 0:
                state, cov = self._predict(state, cov)
            z = metres[:, h]
            fresh = mask[:, h] & ~(z == previous).all(-1)
            previous = torch.where(mask[:, h, None], z, previous)
            first = fresh & ~seen
            start_state, start_cov = self._initial(z)
            innovation = z - state[:, :2]
            gain = cov @ observe.T @ torch.linalg.inv(observe @ cov @ observe.T + noise)
            updated = state + (gain @ innovation.unsqueeze(-1)).squeeze(-1)
            updated_cov = (torch.eye(self.size) - gain @ observe) @ cov
            update = fresh & seen
            state = torch.where(first[:, None], start_state, torch.where(update[:, None], updated, state))
            cov = torch.where(
                first[:, None, None], start_cov, torch.where(update[:, None, None], updated_cov, cov)
            )
            seen = seen | fresh
        return state, cov, seen

    def positions(self, inputs: Tensors, masks: Tensors) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, 2) predicted positions (metres from the base station) of the target frames, and
        (B,) whether the window had any GPS fix (without one the position is meaningless)."""
        state, cov, seen = self.track(inputs["gps"], masks["gps"])
        out = []
        for f in range(self.context.future):
            if f > 0:
                state, cov = self._predict(state, cov)
            out.append(state[:, :2])
        return torch.stack(out, 1), seen

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        positions, seen = self.positions(inputs, masks)
        out = []
        for f in range(self.context.future):
            dx, dy = positions[:, f, 0], positions[:, f, 1]
            distance = torch.sqrt(dx**2 + dy**2 + self.height**2).clamp_min(1e-6)
            theta = torch.rad2deg(
                torch.asin(((dx * self.axis[0] + dy * self.axis[1]) / distance).clamp(-1, 1))
            )
            logits = -((self.angles[None] - theta[:, None]) ** 2) / (2 * self.options.spread_deg**2)
            out.append(torch.where(seen[:, None], logits, torch.zeros_like(logits)))
        return torch.stack(out, 1)


# --- GPS: position MLP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlpOptions:
    hidden: tuple[int, ...] = spec((128, 128, 128), check=each_between(1, 8192))
    frames: int = spec(1, check=between(1, 1000))  # latest GPS frames fed (1: the DeepSense baseline)
    dropout: float = spec(0.1, check=between(0, 0.9))


@register_model
class PositionMlp(BeamPredictor):
    kind = "mlp"
    Options = MlpOptions

    def __init__(self, options: MlpOptions, context: ModelContext):
        super().__init__(options, context)
        self.frames = min(options.frames, context.history)
        layers: list[nn.Module] = []
        width = self.frames * (GPS_FEATURES + 1)
        for hidden in options.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(options.dropout)]
            width = hidden
        layers.append(nn.Linear(width, context.future * context.num_beams))
        self.net = nn.Sequential(*layers)

    @classmethod
    def inputs_of(cls, options: Any) -> tuple[str, ...]:
        return ("gps",)

    def forward(self, inputs: Tensors, masks: Tensors) -> torch.Tensor:
        gps = inputs["gps"][:, -self.frames :]
        mask = masks["gps"][:, -self.frames :].float().unsqueeze(-1)
        features = torch.cat([gps * mask, mask], -1).flatten(1)
        return self.net(features).view(-1, self.context.future, self.context.num_beams)
