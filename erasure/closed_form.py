"""The UCE closed form: a ridge-regularised least-squares edit of one linear projection.

For a projection ``y = W c`` (``W``: ``d_out x d_in``; a bias, if any, is left untouched and is
*not* part of the targets), minimise::

    a_e Σ_E ‖W c_i - v*_i‖²  +  a_p Σ_P ‖W c_j - W_old c_j‖²  +  λ ‖W - W_old‖_F²

whose solution is ``W_new = A M⁻¹`` with ``M = λI + a_e Σ c_i c_iᵀ + a_p Σ c_j c_jᵀ`` (symmetric
positive definite for λ > 0) and ``A = λ W_old + a_e Σ v*_i c_iᵀ + a_p Σ (W_old c_j) c_jᵀ``.
The solve is done in float64 with a Cholesky factorisation (never an explicit inverse) and the
result is cast back to the weight's dtype. Independent of diffusers: tensors in, tensor out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from erasure.errors import ErasureError

__all__ = ["UceDiagnostics", "UceSystem", "uce_solve"]


@dataclass(frozen=True, slots=True)
class UceDiagnostics:
    """What the solve did: how far the edit moved the erased vectors and the conditioning of M."""

    erase_residual: float  # max_i ‖W_new c_i - v*_i‖ / ‖v*_i‖ (0 = targets reached exactly)
    preserve_drift: float  # max_j ‖(W_new - W_old) c_j‖ / ‖W_old c_j‖
    delta_norm: float  # ‖W_new - W_old‖_F
    condition_number: float  # cond(M)


class UceSystem:
    """The factorised left-hand side ``M = λI + s_e·Σ c_i c_iᵀ + s_p·Σ c_j c_jᵀ`` of one edit.

    M depends only on the input vectors, not on the weight, so every projection that reads the
    same embeddings (all K/V matrices of a UNet) shares one factorisation and one condition
    number; only the right-hand side ``A`` is built per weight.
    """

    def __init__(
        self,
        erase: torch.Tensor,
        preserve: torch.Tensor | None = None,
        *,
        lam: float = 0.5,
        erase_scale: float = 1.0,
        preserve_scale: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        if erase.ndim != 2:
            raise ErasureError(f"erase must be (k, d_in), got {tuple(erase.shape)}")
        d_in = erase.shape[1]
        if preserve is not None and (preserve.ndim != 2 or preserve.shape[1] != d_in):
            raise ErasureError(f"preserve must be (m, {d_in}), got {tuple(preserve.shape)}")
        if not lam > 0:
            raise ErasureError(f"lam must be > 0 (it keeps M positive definite), got {lam}")
        target = torch.device(device) if device is not None else erase.device
        self.d_in = d_in
        self.lam = lam
        self.erase_scale = erase_scale
        self.preserve_scale = preserve_scale
        self.c_e = erase.detach().to(device=target, dtype=torch.float64)
        self.c_p = (
            preserve.detach().to(device=target, dtype=torch.float64)
            if preserve is not None and preserve.shape[0] > 0
            else None
        )
        m = lam * torch.eye(d_in, dtype=torch.float64, device=target)
        m = m + erase_scale * self.c_e.T @ self.c_e
        if self.c_p is not None:
            m = m + preserve_scale * self.c_p.T @ self.c_p
        factor, info = torch.linalg.cholesky_ex(m)
        if int(info) != 0:
            raise ErasureError(
                f"M is numerically not positive definite (λ={lam} too small for these vectors)"
            )
        self._factor = factor
        # W_new - W_old = s_e (V - W_old C^T) C M^-1 (the W_old terms of A cancel against
        # W_old M), so each weight costs one (d_out, k) residual and a rank-k update
        self._erase_rows = torch.cholesky_solve(self.c_e.T.contiguous(), factor).T
        self.condition_number = _condition_number(m, lam, self._scaled_rows())

    def _scaled_rows(self) -> torch.Tensor:
        rows = [self.c_e * self.erase_scale**0.5]
        if self.c_p is not None:
            rows.append(self.c_p * self.preserve_scale**0.5)
        return torch.cat(rows)

    def solve(
        self, weight: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, UceDiagnostics]:
        """The edited weight solving ``W M = λW_old + s_e Σ v*_i c_iᵀ + s_p Σ W_old c_j c_jᵀ``."""
        if weight.ndim != 2:
            raise ErasureError(f"weight must be 2-D (d_out, d_in), got shape {tuple(weight.shape)}")
        d_out, d_in = weight.shape
        if d_in != self.d_in:
            raise ErasureError(f"weight has d_in={d_in}, the system was built for {self.d_in}")
        if targets.shape != (self.c_e.shape[0], d_out):
            raise ErasureError(
                f"targets must be ({self.c_e.shape[0]}, {d_out}), got {tuple(targets.shape)}"
            )
        w0 = weight.detach().to(device=self._factor.device, dtype=torch.float64)
        v_e = targets.detach().to(device=w0.device, dtype=torch.float64)
        residual = v_e.T - w0 @ self.c_e.T  # (d_out, k)
        delta = self.erase_scale * residual @ self._erase_rows
        w_new = w0 + delta
        c_p = self.c_p
        diagnostics = UceDiagnostics(
            erase_residual=_max_relative(self.c_e @ w_new.T - v_e, v_e),
            preserve_drift=0.0 if c_p is None else _max_relative(c_p @ delta.T, c_p @ w0.T),
            delta_norm=float(torch.linalg.matrix_norm(delta)),
            condition_number=self.condition_number,
        )
        return w_new.to(device=weight.device, dtype=weight.dtype), diagnostics


def uce_solve(
    weight: torch.Tensor,
    erase: torch.Tensor,
    targets: torch.Tensor,
    preserve: torch.Tensor | None = None,
    *,
    lam: float = 0.5,
    erase_scale: float = 1.0,
    preserve_scale: float = 1.0,
) -> tuple[torch.Tensor, UceDiagnostics]:
    """Return the edited weight and diagnostics (one projection; see ``UceSystem`` for many).

    ``weight``: (d_out, d_in); ``erase``: (k, d_in) input vectors c_i; ``targets``: (k, d_out)
    the outputs v*_i they must map to (for erasure ``W_old c*_i`` of the guide); ``preserve``:
    (m, d_in) vectors whose outputs must not change. Raises ``ErasureError`` on bad shapes or a
    non-positive λ.
    """
    if weight.ndim != 2:
        raise ErasureError(f"weight must be 2-D (d_out, d_in), got shape {tuple(weight.shape)}")
    if erase.ndim != 2 or erase.shape[1] != weight.shape[1]:
        raise ErasureError(f"erase must be (k, {weight.shape[1]}), got {tuple(erase.shape)}")
    system = UceSystem(
        erase,
        preserve,
        lam=lam,
        erase_scale=erase_scale,
        preserve_scale=preserve_scale,
        device=weight.device,
    )
    return system.solve(weight, targets)


def _condition_number(m: torch.Tensor, lam: float, rows: torch.Tensor) -> float:
    """cond(M) for M = λI + BᵀB: with fewer rows than columns its eigenvalues are λ and
    λ + eig(B Bᵀ), so the small Gram matrix is enough (no d_in³ eigen-decomposition)."""
    if rows.shape[0] < m.shape[0]:
        largest = float(torch.linalg.eigvalsh(rows @ rows.T)[-1]) if rows.shape[0] else 0.0
        return (lam + max(largest, 0.0)) / lam
    eig = torch.linalg.eigvalsh(m)
    return float(eig[-1] / eig[0])


def _max_relative(error: torch.Tensor, reference: torch.Tensor) -> float:
    if error.shape[0] == 0:
        return 0.0
    norms = torch.linalg.vector_norm(reference, dim=1).clamp_min(1e-30)
    return float((torch.linalg.vector_norm(error, dim=1) / norms).max())
