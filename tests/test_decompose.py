"""Capture-time decompositions (neuron_emu/compiler/decompose.py, decompose_linalg.py): an op with no lowering is
compiled as the ops of its decomposition. The traced model is run on inputs other than the example's, so a pivot
or branch specialised to the example would show up as wrong numbers."""
import pytest
import torch

import torch_neuronx_emu
from neuron_emu.compiler.rejected import RejectedOpError


def _check(fn, example, others, rtol=1e-4, atol=1e-5):
    traced = torch_neuronx_emu.trace(fn, example)
    for args in others:
        torch.testing.assert_close(traced(*args), fn(*args), rtol=rtol, atol=atol, equal_nan=True)


def test_lu_pivots_are_found_on_the_device():
    g = torch.Generator().manual_seed(0)
    mats = [torch.randn(2, 5, 5, generator=g) for _ in range(3)]
    b = torch.randn(2, 5, 3, generator=g)
    _check(lambda a: torch.linalg.lu_factor(a), (mats[0],), [(m,) for m in mats[1:]])
    _check(lambda a, b: torch.linalg.solve(a, b), (mats[0], b), [(m, b.flip(0)) for m in mats[1:]])
    _check(lambda a: torch.linalg.slogdet(a), (mats[0],), [(m,) for m in mats[1:]])
    p = torch.eye(5)[[3, 0, 4, 1, 2]]  # a permutation: every step pivots away from the diagonal
    _check(lambda a: torch.linalg.lu(a), (mats[0],), [(p @ mats[1],), (p.expand(2, 5, 5).contiguous(),)])


def test_cholesky_and_triangular_solves():
    g = torch.Generator().manual_seed(1)
    def spd():
        x = torch.randn(3, 4, 4, generator=g)
        return x @ x.mT + 4 * torch.eye(4)
    a, b = spd(), torch.randn(3, 4, 2, generator=g)
    _check(lambda a, b: torch.cholesky_solve(b, torch.linalg.cholesky(a)), (a, b), [(spd(), b * 2)])
    _check(lambda a, b: torch.linalg.solve_triangular(a, b, upper=True, left=False),
           (a.triu(), b.mT), [(spd().triu(), b.mT + 1)])


def test_decomposition_keeps_rejected_ops_rejected():
    with pytest.raises(RejectedOpError, match="linalg_inv"):
        torch_neuronx_emu.trace(lambda a: torch.linalg.inv(a), torch.randn(3, 3))


@pytest.mark.parametrize("fn", [torch.i0, torch.special.i0e, torch.special.i1, torch.special.i1e, torch.digamma,
                                torch.special.spherical_bessel_j0, torch.special.modified_bessel_i0, torch.special.modified_bessel_i1,
                                torch.special.modified_bessel_k0, torch.special.modified_bessel_k1,
                                torch.special.scaled_modified_bessel_k0, torch.special.scaled_modified_bessel_k1,
                                torch.special.bessel_j0, torch.special.bessel_j1, torch.special.bessel_y0,
                                torch.special.bessel_y1, torch.erfinv])
def test_special_functions_match_eager_on_both_branches(fn):
    x = torch.linspace(-30, 30, 241)  # both sides of |x| = 8 (Bessel), negative non-integers and poles (digamma)
    y = torch.cat([torch.tensor([0.0, -0.0, 0.25, -2.0, 1e-3, 10.0, 1e20, float("inf")]), torch.randn(233) * 5])
    _check(fn, (x,), [(y,)], rtol=2e-4, atol=1e-5)


def test_masks_and_windows_are_computed_on_the_device():
    g = torch.Generator().manual_seed(2)
    x, m, s = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g) > 0.5, torch.randn(30, generator=g)
    _check(lambda x, m, s: x.masked_scatter(m, s), (x, m, s), [(x, ~m, s), (x, torch.ones_like(m), s)])
    img = torch.randn(2, 3, 7, 5, generator=g)
    pool = lambda x: torch.nn.functional.adaptive_max_pool2d(x, (3, 2), return_indices=True)
    _check(pool, (img,), [(torch.randn(2, 3, 7, 5, generator=g),)])
    a, b = torch.randn(2, 5, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    _check(lambda a, b: torch.cdist(a, b, p=1.5), (a, b), [(b[:, :1].expand(2, 5, 3).contiguous(), a[:, :4])])


def test_householder_qr_matches_lapack_signs():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 6, 4, generator=g)
    _check(lambda a: torch.linalg.qr(a, mode="complete"), (a,), [(torch.randn(2, 6, 4, generator=g),)])
    _check(lambda a: torch.geqrf(a), (a.mT.contiguous(),), [(torch.randn(2, 4, 6, generator=g),)])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_polygamma_and_zeta_match_eager(n):
    g = torch.Generator().manual_seed(4)
    x = torch.cat([torch.linspace(-20.5, 20.5, 83), torch.tensor([0.0, -3.0, 1e-3, 9.0, 40.0])])
    _check(lambda t: torch.polygamma(n, t), (x,), [(torch.randn(88, generator=g) * 8,), (x,)], rtol=2e-4)
    q = torch.rand(40, generator=g) * 30 - 5
    _check(lambda s, q: torch.special.zeta(s, q), (torch.full((40,), n + 1.0), q), [(torch.full((40,), 2.5), q * 2)],
           rtol=2e-4)


def test_zeta_past_its_unrolled_bound_is_nan_not_a_truncated_sum():
    q = torch.tensor([-60.5, 2.0])
    out = torch_neuronx_emu.trace(lambda q: torch.special.zeta(torch.full_like(q, 3.0), q), (q,))(q)
    assert torch.isnan(out[0]) and torch.isclose(out[1], torch.special.zeta(torch.tensor(3.0), q[1]))


def test_ndtri_matches_eager_in_the_middle_and_both_tails():
    y = torch.cat([torch.linspace(0, 1, 101), torch.tensor([1e-20, 1e-10, 1 - 1e-7, -0.5, 1.5])])
    _check(torch.special.ndtri, (y,), [(y.flip(0),)], rtol=2e-4)
