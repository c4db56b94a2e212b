"""Geometry by properties: round trips in float64, orthonormal outputs, finite gradients, FK vs a naive loop."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from trainer_core.geometry import (
    depth_levels,
    forward_kinematics,
    geodesic_angle,
    matrix_to_rot6d,
    rot6d_ortho_penalty,
    rot6d_to_matrix,
    rotation_angle,
    so3_exp,
    so3_log,
    wrap_angle,
    yaw_matrix,
    yaw_of_direction,
)

D = torch.float64


def random_rotvecs(n: int, seed: int = 0, max_angle: float = math.pi) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(n, 3, generator=g, dtype=D)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    return axis * torch.rand(n, 1, generator=g, dtype=D) * max_angle


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


def is_rotation(R: torch.Tensor, tol: float) -> bool:
    eye = torch.eye(3, dtype=R.dtype)
    return bool(((R.transpose(-1, -2) @ R - eye).abs().max() < tol) and ((torch.linalg.det(R) - 1).abs().max() < tol))


def test_any_6d_gives_an_orthonormal_matrix():
    g = torch.Generator().manual_seed(1)
    d6 = torch.randn(5000, 6, generator=g, dtype=D) * torch.logspace(-3, 3, 5000, dtype=D)[:, None]
    assert is_rotation(rot6d_to_matrix(d6), 1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_6d_round_trip_float64(seed):
    R = random_rotations(1000, seed)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-12)


def test_6d_of_identity_is_the_first_two_columns():
    assert matrix_to_rot6d(torch.eye(3, dtype=D)).tolist() == [1, 0, 0, 0, 1, 0]


def test_exp_matches_scipy_and_log_inverts_it():
    v = random_rotvecs(2000)
    R = so3_exp(v)
    assert torch.allclose(R, torch.from_numpy(Rotation.from_rotvec(v.numpy()).as_matrix()), atol=1e-12)
    assert torch.allclose(so3_log(R), v, atol=1e-9)


def test_log_near_pi_gives_the_angle_and_an_axis_up_to_sign():
    v = random_rotvecs(500, seed=3)
    v = v / v.norm(dim=-1, keepdim=True) * (math.pi - 1e-6)
    w = so3_log(so3_exp(v))
    assert torch.allclose(w.norm(dim=-1), v.norm(dim=-1), atol=1e-6)
    assert torch.allclose(so3_exp(w), so3_exp(v), atol=1e-6)


def test_fast_log_agrees_for_small_angles():
    R = so3_exp(random_rotvecs(500, seed=4, max_angle=2.0))
    assert torch.allclose(so3_log(R, near_pi=False), so3_log(R), atol=1e-12)


def test_geodesic_angle_matches_scipy_and_is_symmetric_and_invariant():
    A, B = random_rotations(500, 5), random_rotations(500, 6)
    ref = (Rotation.from_matrix(A.numpy()).inv() * Rotation.from_matrix(B.numpy())).magnitude()
    ang = geodesic_angle(A, B)
    assert torch.allclose(ang, torch.from_numpy(ref), atol=1e-7)
    assert torch.allclose(ang, geodesic_angle(B, A), atol=1e-12)
    C = random_rotations(500, 7)  # left-invariance: d(CA, CB) = d(A, B)
    assert torch.allclose(geodesic_angle(C @ A, C @ B), ang, atol=1e-9)


def test_rot6d_ortho_penalty_is_zero_on_rotations_and_positive_off_them():
    R = random_rotations(100, 8)
    assert rot6d_ortho_penalty(matrix_to_rot6d(R)).abs().max() < 1e-12
    assert (rot6d_ortho_penalty(matrix_to_rot6d(R) * 1.5) > 0.1).all()


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-3, 1.0, math.pi - 1e-4, math.pi])
def test_gradients_are_finite_everywhere(angle):
    v = torch.tensor([[0.3, -0.5, 0.8]], dtype=D)
    v = (v / v.norm() * angle).requires_grad_(True)
    R = so3_exp(v)
    d6 = matrix_to_rot6d(R) + 0.0
    loss = rotation_angle(rot6d_to_matrix(d6)).sum() + so3_log(R).square().sum() + geodesic_angle(R, R.detach()).sum()
    loss = loss + so3_log(R, near_pi=False).square().sum()
    (grad,) = torch.autograd.grad(loss, v)
    assert torch.isfinite(grad).all()


def test_yaw_matrix_turns_forward_towards_the_direction():
    for yaw in torch.linspace(-3.1, 3.1, 13, dtype=D):
        fwd = yaw_matrix(yaw) @ torch.tensor([0.0, 0.0, 1.0], dtype=D)
        assert torch.allclose(yaw_of_direction(fwd), yaw, atol=1e-12)
    assert torch.allclose(
        wrap_angle(torch.tensor([3 * math.pi, -3 * math.pi], dtype=D)).abs(), torch.tensor([math.pi] * 2, dtype=D)
    )


def naive_fk(local_R, offsets, parents):
    """One joint at a time, the textbook loop."""
    J = len(parents)
    gR, gp = [None] * J, [None] * J
    for j in range(J):
        if parents[j] < 0:
            gR[j], gp[j] = local_R[..., j, :, :], offsets[j].expand(*local_R.shape[:-3], 3)
        else:
            p = parents[j]
            gR[j] = gR[p] @ local_R[..., j, :, :]
            gp[j] = gp[p] + (gR[p] @ offsets[j][:, None]).squeeze(-1)
    return torch.stack(gR, -3), torch.stack(gp, -2)


@pytest.mark.parametrize("parents", [[-1, 0, 1, 2], [-1, 0, 0, 1, 2, 2, 0, 6, 6, 8], [-1, 0, 1, 1, 3, 3, 2]])
def test_fk_matches_the_naive_loop(parents):
    J = len(parents)
    local_R = random_rotations(7 * J, 9).reshape(7, J, 3, 3)
    offsets = torch.randn(J, 3, dtype=D, generator=torch.Generator().manual_seed(2))
    R, p = forward_kinematics(local_R, offsets, parents)
    R_ref, p_ref = naive_fk(local_R, offsets, parents)
    assert torch.allclose(R, R_ref, atol=1e-12) and torch.allclose(p, p_ref, atol=1e-12)
    assert is_rotation(R, 1e-10)


def test_fk_keeps_bone_lengths(bundled):
    sk = bundled.skeleton
    local_R = random_rotations(11 * sk.n_joints, 10).reshape(11, sk.n_joints, 3, 3)
    _, p = forward_kinematics(local_R, torch.from_numpy(sk.offsets).double(), sk.parents)
    for j, par in enumerate(sk.parents):
        if par >= 0:
            length = (p[:, j] - p[:, par]).norm(dim=-1)
            assert torch.allclose(
                length, torch.tensor(float(torch.from_numpy(sk.offsets[j]).double().norm()), dtype=D), atol=1e-6
            )


def test_depth_levels_reject_children_before_parents():
    with pytest.raises(ValueError, match="parents must come before children"):
        depth_levels([-1, 2, 0])


def test_bad_shapes_are_rejected_at_entry():
    with pytest.raises(ValueError, match=r"must end in \(6,\)"):
        rot6d_to_matrix(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"must end in \(3, 3\)"):
        so3_log(torch.zeros(4, 3))
