"""The autoregressive next-frame motion model.

::

    frame features (..., D) --MotionEncoder (stateless MLP)--> latent (..., H)
    control (..., Dc) --FiLM--> latent * (1 + gamma) + beta
    --trunk (linear, GELU, dropout)--> h
    period/phase head: attention over ``phase_bins`` phase bins + log period;
                       the attended phase embedding is added to h
    gait head: soft foot contacts (logits)
    pose head: 6D rotation increment per joint, change of root velocity and yaw rate

Every head predicts a change of the current frame: the rotation increment
``delta`` with ``R_next = R_prev @ delta``, the root trajectory as the current one
plus a change (``root_from`` "frame"; "control": the commanded root velocity and
yaw rate plus a change), contacts as the current logit plus a change. The heads start at
zero change (zero weights plus an identity bias), so an untrained model copies
the last frame, and training starts from that baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainer_core.data.features import COND_LAYOUT, frame_layout

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CONTACT_EPS = 1e-3


@dataclass(frozen=True)
class Arch:
    """What the weights' shapes depend on; stored in checkpoints."""

    d_in: int
    d_cond: int
    n_joints: int
    hidden_dim: int
    num_layers: int
    dropout: float
    phase_bins: int
    root_from: str = "frame"  # ``ModelConfig.root_from``; checkpoints from before it hold none: "frame"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelOutput:
    delta6d: torch.Tensor  # (..., J, 6) raw 6D increment, identity bias included
    traj: torch.Tensor  # (..., 3) normalized next root velocity (2) and yaw rate (1)
    contact_logits: torch.Tensor  # (..., 2)
    phase_attn: torch.Tensor  # (..., K) softmax over phase bins
    log_period: torch.Tensor  # (...,) log seconds
    latent: torch.Tensor  # (..., H) MotionEncoder output

    def float(self) -> ModelOutput:
        """fp32 copies for the geometry after a bf16 autocast forward."""
        return ModelOutput(*(t.float() for t in (
            self.delta6d, self.traj, self.contact_logits, self.phase_attn, self.log_period, self.latent
        )))  # fmt: skip


class MotionEncoder(nn.Module):
    """Stateless MLP over one frame's features: ``(..., D) -> (..., H)``."""

    def __init__(self, d_in: int, hidden: int, num_layers: int):
        super().__init__()
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(num_layers):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FiLM(nn.Module):
    """Feature-wise modulation ``h * (1 + gamma(c)) + beta(c)``; starts as the identity."""

    def __init__(self, d_cond: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(d_cond, 2 * hidden)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(c).chunk(2, dim=-1)
        return h * (1.0 + gamma) + beta


class MotionModel(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        H, J = arch.hidden_dim, arch.n_joints
        self.encoder = MotionEncoder(arch.d_in, H, arch.num_layers)
        self.film = FiLM(arch.d_cond, H)
        self.trunk = nn.Sequential(nn.Linear(H, H), nn.GELU(), nn.Dropout(arch.dropout))
        self.phase_logits = nn.Linear(H, arch.phase_bins)
        self.period = nn.Linear(H, 1)
        self.phase_embed = nn.Parameter(torch.randn(arch.phase_bins, H) * 0.02)
        self.gait = nn.Linear(H, 2)
        self.pose = nn.Linear(H, J * 6 + 3)
        nn.init.zeros_(self.pose.weight)
        nn.init.zeros_(self.pose.bias)
        nn.init.zeros_(self.gait.weight)
        nn.init.zeros_(self.gait.bias)
        self.register_buffer("identity6d", torch.tensor(IDENTITY_6D).repeat(J), persistent=False)
        self.layout = frame_layout(J)
        # The contact features are normalized; these undo it (set by ``set_contact_stats``).
        self.register_buffer("contacts_mean", torch.zeros(2))
        self.register_buffer("contacts_std", torch.ones(2))
        # The control's velocity and yaw rate in the trajectory's normalized units: c * scale + shift (set by
        # ``set_control_stats``); derived from the normalizer, so not saved with the weights.
        cond = COND_LAYOUT.slices()
        self.register_buffer("ctrl_index", torch.tensor([*range(cond["ctrl_vel"].start, cond["ctrl_vel"].stop),
                                                        cond["ctrl_yaw_rate"].start]), persistent=False)  # fmt: skip
        self.register_buffer("ctrl_scale", torch.ones(3), persistent=False)
        self.register_buffer("ctrl_shift", torch.zeros(3), persistent=False)

    def set_contact_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.contacts_mean.copy_(mean)
        self.contacts_std.copy_(std)

    def set_control_stats(self, c_mean: torch.Tensor, c_std: torch.Tensor,
                          traj_mean: torch.Tensor, traj_std: torch.Tensor) -> None:  # fmt: skip
        """The normalizer's stats of the control ``(Dc,)`` and of the root trajectory ``(3,)``, for
        ``root_from`` "control": a normalized control's velocity and yaw rate in the trajectory's units."""
        cm, cs = c_mean[self.ctrl_index.cpu()], c_std[self.ctrl_index.cpu()]
        self.ctrl_scale.copy_(cs / traj_std)
        self.ctrl_shift.copy_((cm - traj_mean) / traj_std)

    def root_base(self, now: dict[str, torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        """What the trajectory head's change is added to (normalized ``(..., 3)``): the current frame's root
        velocity and yaw rate, or with ``root_from`` "control" the commanded ones."""
        if self.arch.root_from == "control":
            return c.index_select(-1, self.ctrl_index) * self.ctrl_scale.to(c.dtype) + self.ctrl_shift.to(c.dtype)
        return torch.cat([now["root_vel"], now["yaw_rate"]], dim=-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The MotionEncoder's features of frames ``x (..., D)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> ModelOutput:
        """``x (..., D)`` frame features and ``c (..., Dc)`` control, both normalized."""
        latent = self.encoder(x)
        h = self.trunk(self.film(latent, c))
        attn = torch.softmax(self.phase_logits(h), dim=-1)
        h = h + attn @ self.phase_embed.to(h.dtype)
        out = self.pose(h)
        J = self.arch.n_joints
        delta = (out[..., : J * 6] + self.identity6d).unflatten(-1, (J, 6))
        now = self.layout.unpack(x)
        contacts = self.contacts_mean + now["contacts"] * self.contacts_std
        contact_logit = torch.logit(contacts.clamp(CONTACT_EPS, 1 - CONTACT_EPS))
        return ModelOutput(
            delta6d=delta,
            traj=self.root_base(now, c) + out[..., J * 6 :],
            contact_logits=contact_logit + self.gait(h),
            phase_attn=attn,
            log_period=self.period(h).squeeze(-1),
            latent=latent,
        )
