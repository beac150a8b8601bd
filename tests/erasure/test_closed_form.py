"""The UCE closed form against its algebraic invariants (pure tensors, float64)."""

from __future__ import annotations

import pytest
import torch

from erasure.closed_form import uce_solve
from erasure.errors import ErasureError

D_OUT, D_IN = 40, 32


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def test_erased_embedding_maps_to_the_guide_output_for_small_lambda(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN)
    erase, guide = _rand(gen, 3, D_IN), _rand(gen, 3, D_IN)
    new, diag = uce_solve(w, erase, guide @ w.T, lam=1e-9)
    relative = (erase @ new.T - guide @ w.T).norm(dim=1) / (guide @ w.T).norm(dim=1)
    assert float(relative.max()) <= 1e-4
    assert diag.erase_residual <= 1e-4


def test_preserved_and_orthogonal_directions_are_unchanged(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN)
    erase, guide, keep = _rand(gen, 2, D_IN), _rand(gen, 2, D_IN), _rand(gen, 4, D_IN)
    new, _ = uce_solve(w, erase, guide @ w.T, keep, lam=1e-7)
    delta = new - w
    assert float((keep @ delta.T).norm() / (keep @ w.T).norm()) < 1e-4
    basis = torch.linalg.qr(torch.cat([erase, keep]).T).Q  # span(E u P)
    x = _rand(gen, 5, D_IN)
    orthogonal = x - (x @ basis) @ basis.T
    regularised, _ = uce_solve(w, erase, guide @ w.T, keep, lam=0.5)
    assert float((orthogonal @ (regularised - w).T).abs().max()) < 1e-10


def test_rank_of_change_is_at_most_number_of_erased_concepts(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN)
    erase, guide, keep = _rand(gen, 3, D_IN), _rand(gen, 3, D_IN), _rand(gen, 6, D_IN)
    new, _ = uce_solve(w, erase, guide @ w.T, keep, lam=0.5)
    assert int(torch.linalg.matrix_rank(new - w, rtol=1e-9)) <= 3


@pytest.mark.parametrize("case", ["preserve_only", "guide_is_erase"])
def test_noop_edits(gen: torch.Generator, case: str) -> None:
    w = _rand(gen, D_OUT, D_IN)
    concepts, keep = _rand(gen, 2, D_IN), _rand(gen, 3, D_IN)
    if case == "preserve_only":
        new, _ = uce_solve(w, concepts[:0], torch.empty(0, D_OUT, dtype=w.dtype), keep)
    else:
        new, _ = uce_solve(w, concepts, concepts @ w.T, keep)
    assert float((new - w).abs().max()) < 1e-12


def test_single_concept_matches_sherman_morrison(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN)
    c, target = _rand(gen, 1, D_IN), _rand(gen, 1, D_OUT)
    lam, alpha = 0.5, 2.0
    new, _ = uce_solve(w, c, target, lam=lam, erase_scale=alpha)
    norm2 = float(c @ c.T)
    expected = (lam * (c @ w.T) + alpha * norm2 * target) / (lam + alpha * norm2)
    assert torch.allclose(c @ new.T, expected, atol=1e-12)


def test_float32_weight_is_solved_in_float64_and_returned_as_float32(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN).float()
    erase, guide = _rand(gen, 1, D_IN).float(), _rand(gen, 1, D_IN).float()
    new, _ = uce_solve(w, erase, guide @ w.T, lam=0.5)
    assert new.dtype == torch.float32 and new.shape == w.shape


def test_bad_inputs_are_refused_with_a_precise_message(gen: torch.Generator) -> None:
    w = _rand(gen, D_OUT, D_IN)
    with pytest.raises(ErasureError, match="erase must be"):
        uce_solve(w, _rand(gen, 1, D_IN + 1), _rand(gen, 1, D_OUT))
    with pytest.raises(ErasureError, match="lam must be > 0"):
        uce_solve(w, _rand(gen, 1, D_IN), _rand(gen, 1, D_OUT), lam=0.0)
