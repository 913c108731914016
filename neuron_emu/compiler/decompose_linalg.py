"""Dense linear algebra as ops the compiler lowers (capture-time decompositions, decompose.py): LU with partial
pivoting (LAPACK getrf: the first row of largest magnitude is the pivot, the column is scaled by the pivot's
reciprocal), triangular solves by substitution, Cholesky by columns. Loops run over the static matrix size, so the
graph is unrolled; every row swap is a gather with the pivot found on the device (argmax), never a Python value.
Everything is written out of place (masks and `where`), as the IR is functional."""
from __future__ import annotations


import torch

from neuron_emu.compiler.decompose_table import DecompTable

aten = torch.ops.aten
TABLE = DecompTable()


def _idx(n, like):
    return torch.arange(n, device=like.device)


def _lu(a):
    """(LU, pivots) of a (..., m, n) matrix: getrf's packed factors and its 1-based int32 pivots."""
    m, n = a.shape[-2], a.shape[-1]
    rows, cols = _idx(m, a).unsqueeze(-1), _idx(n, a)
    pivots = []
    for j in range(min(m, n)):
        p = a[..., j:, j].abs().argmax(-1) + j                          # first row of largest magnitude
        pivots.append(p)
        pe = p.unsqueeze(-1)
        r = _idx(m, a)
        perm = torch.where(r == j, pe, torch.where(r == pe, torch.full_like(pe, j), r))   # swap rows j, p
        a = torch.gather(a, -2, perm.unsqueeze(-1).expand(a.shape))
        recip = 1.0 / a[..., j:j + 1, j:j + 1]
        below = (rows > j) & (cols == j)
        a = torch.where(below, a * recip, a)
        trailing = (rows > j) & (cols > j)
        a = torch.where(trailing, a - a[..., :, j:j + 1] * a[..., j:j + 1, :], a)
    piv = torch.stack(pivots, -1) if pivots else torch.zeros(a.shape[:-2] + (0,), dtype=torch.int64)
    return a, (piv + 1).to(torch.int32)


def _perm_of(pivots, m):
    """The row order getrf's interchanges give: LU = A[perm]."""
    perm = _idx(m, pivots).expand(pivots.shape[:-1] + (m,))
    r = _idx(m, pivots)
    for j in range(pivots.shape[-1]):
        p = (pivots[..., j:j + 1] - 1).to(torch.int64)
        pj = torch.gather(perm, -1, p)
        cur = perm[..., j:j + 1]
        perm = torch.where(r == j, pj, torch.where(r == p, cur, perm))
    return perm


def _trisolve(t, b, upper: bool, unit: bool):
    """X with t @ X = b, t (..., n, n) triangular, b (..., n, k): substitution row by row."""
    n = t.shape[-1]
    shape = torch.broadcast_shapes(t.shape[:-2], b.shape[:-2])
    t = t.expand(shape + t.shape[-2:])
    b = b.expand(shape + b.shape[-2:])
    if n == 0 or b.numel() == 0:
        return torch.zeros(b.shape, dtype=b.dtype)   # nothing to solve (an empty matrix or batch)
    xs = [None] * n
    order = range(n - 1, -1, -1) if upper else range(n)
    done = []
    for i in order:
        rhs = b[..., i:i + 1, :]
        if done:
            idx = sorted(done)
            lo, hi = idx[0], idx[-1] + 1
            rhs = rhs - t[..., i:i + 1, lo:hi] @ torch.cat([xs[k] for k in range(lo, hi)], -2)
        xs[i] = rhs if unit else rhs / t[..., i:i + 1, i:i + 1]
        done.append(i)
    return torch.cat(xs, -2)


def _tri(t, b, upper, left=True, unit=False):
    if left:
        return _trisolve(t, b, upper, unit)
    return _trisolve(t.mT, b.mT, not upper, unit).mT   # X t = b  <=>  t^T X^T = b^T


def _lu_solve(lu, pivots, b, adjoint=False):
    """X with A X = b (A^T X = b when adjoint) from A's packed LU factors."""
    m = lu.shape[-1]
    perm = _perm_of(pivots, m)
    shape = torch.broadcast_shapes(lu.shape[:-2], b.shape[:-2])
    lu, b = lu.expand(shape + lu.shape[-2:]), b.expand(shape + b.shape[-2:])
    perm = perm.expand(shape + (m,))
    if not adjoint:
        pb = torch.gather(b, -2, perm.unsqueeze(-1).expand(b.shape))
        y = _trisolve(lu, pb, upper=False, unit=True)
        return _trisolve(lu, y, upper=True, unit=False)
    y = _trisolve(lu.mT, b, upper=False, unit=False)   # U^T y = b
    z = _trisolve(lu.mT, y, upper=True, unit=True)     # L^T z = y
    return torch.gather(z, -2, _inverse_perm(perm).unsqueeze(-1).expand(z.shape))   # A^T = U^T L^T P^T


def _inverse_perm(perm):
    """inv with inv[perm[i]] = i, as a one-hot reduction (no scatter of indices)."""
    m = perm.shape[-1]
    onehot = perm.unsqueeze(-1) == _idx(m, perm)                        # [i, r] = perm[i] == r
    return (onehot.to(torch.int64) * _idx(m, perm).unsqueeze(-1)).sum(-2)


@TABLE.register(aten.linalg_lu_factor_ex.default)
def linalg_lu_factor_ex(a, pivot=True, check_errors=False):
    if not pivot:
        return NotImplemented
    lu, piv = _lu(a)
    return lu, piv, torch.zeros(a.shape[:-2], dtype=torch.int32)


@TABLE.register(aten.lu_unpack.default)
def lu_unpack(lu, pivots, unpack_data=True, unpack_pivots=True):
    m, n = lu.shape[-2], lu.shape[-1]
    k = min(m, n)
    if unpack_pivots:
        perm = _perm_of(pivots, m)
        p = (perm.unsqueeze(-2) == _idx(m, perm).unsqueeze(-1)).to(lu.dtype)   # P[r, c] = perm[c] == r
    else:
        p = lu.new_empty((0,))
    if unpack_data:
        eye = torch.eye(m, k, dtype=lu.dtype)
        low = torch.tril(lu[..., :, :k], -1) + eye
        up = torch.triu(lu[..., :k, :])
    else:
        low, up = lu.new_empty((0,)), lu.new_empty((0,))
    return p, low, up


@TABLE.register(aten.linalg_lu.default)
def linalg_lu(a, pivot=True):
    if not pivot:
        return NotImplemented
    lu, piv = _lu(a)
    return lu_unpack(lu, piv)


@TABLE.register(aten.linalg_lu_solve.default)
def linalg_lu_solve(lu, pivots, b, left=True, adjoint=False):
    if left:
        return _lu_solve(lu, pivots, b, adjoint)
    return _lu_solve(lu, pivots, b.mT, not adjoint).mT      # X A = B  <=>  A^T X^T = B^T


@TABLE.register(aten._linalg_solve_ex.default)
def linalg_solve_ex(a, b, left=True, check_errors=False):
    vector = b.dim() == 1 or (left and b.dim() == a.dim() - 1 and b.shape == a.shape[:-1])
    bb = b.unsqueeze(-1) if vector else b
    lu, piv = _lu(a)
    x = linalg_lu_solve(lu, piv, bb, left=left)
    if vector:
        x = x.squeeze(-1)
    return x, lu, piv, torch.zeros(a.shape[:-2], dtype=torch.int32)


def _perm_sign(pivots, dtype):
    swaps = (pivots != (_idx(pivots.shape[-1], pivots) + 1).to(pivots.dtype)).to(torch.int64).sum(-1)
    return 1.0 - 2.0 * torch.remainder(swaps, 2).to(dtype)


@TABLE.register(aten._linalg_det.default)
def linalg_det(a):
    lu, piv = _lu(a)
    d = torch.diagonal(lu, 0, -2, -1)
    return _perm_sign(piv, a.dtype) * d.prod(-1), lu, piv


@TABLE.register(aten._linalg_slogdet.default)
def linalg_slogdet(a):
    lu, piv = _lu(a)
    d = torch.diagonal(lu, 0, -2, -1)
    sign = _perm_sign(piv, a.dtype) * torch.sign(d).prod(-1)
    return sign, d.abs().log().sum(-1), lu, piv


@TABLE.register(aten.linalg_solve_triangular.default)
def linalg_solve_triangular(a, b, *, upper, left=True, unitriangular=False):
    return _tri(a, b, upper, left, unitriangular)


@TABLE.register(aten.triangular_solve.default)
def triangular_solve(b, a, upper=True, transpose=False, unitriangular=False):
    t, up = (a.mT, not upper) if transpose else (a, upper)
    return _trisolve(t, b, up, unitriangular), a.clone()


def _cholesky_lower(a):
    n = a.shape[-1]
    if n == 0 or a.numel() == 0:
        return torch.zeros_like(a)   # nothing to factor (an empty matrix or batch)
    rows = _idx(n, a).unsqueeze(-1)
    cols = []
    for j in range(n):
        c = a[..., :, j:j + 1]
        if j:
            c = c - torch.cat(cols, -1) @ torch.cat(cols, -1)[..., j:j + 1, :].mT
        d = torch.sqrt(c[..., j:j + 1, :])
        cols.append(torch.where(rows > j, c / d, torch.where(rows == j, d, torch.zeros_like(c))))
    return torch.cat(cols, -1)


@TABLE.register(aten.linalg_cholesky_ex.default)
def linalg_cholesky_ex(a, upper=False, check_errors=False):
    low = _cholesky_lower(a)
    return (low.mT if upper else low), torch.zeros(a.shape[:-2], dtype=torch.int32)


@TABLE.register(aten.cholesky.default)
def cholesky(a, upper=False):
    low = _cholesky_lower(a)
    return low.mT if upper else low


@TABLE.register(aten.cholesky_solve.default)
def cholesky_solve(b, f, upper=False):
    low = f.mT if upper else f
    return _trisolve(low.mT, _trisolve(low, b, upper=False, unit=False), upper=True, unit=False)


@TABLE.register(aten.cholesky_inverse.default)
def cholesky_inverse(f, upper=False):
    n = f.shape[-1]
    eye = torch.eye(n, dtype=f.dtype).expand(f.shape)
    return cholesky_solve(eye, f, upper)


def _geqrf(a):
    """(packed reflectors and R, tau) as LAPACK geqr2 gives them: column j's reflector maps A[j:, j] to
    beta e1 with beta = -sign(alpha) * ||A[j:, j]||, tau = (beta - alpha) / beta, v = A[j+1:, j] / (alpha - beta); a
    column already zero below the diagonal gets tau = 0 (H = I)."""
    m, n = a.shape[-2], a.shape[-1]
    rows, cols = _idx(m, a).unsqueeze(-1), _idx(n, a)
    taus = []
    for j in range(min(m, n)):
        x = a[..., :, j:j + 1]
        alpha = a[..., j:j + 1, j:j + 1]
        below = rows > j
        xnorm = torch.sqrt(torch.where(below, x * x, torch.zeros_like(x)).sum(-2, keepdim=True))
        trivial = xnorm == 0.0
        beta = -torch.copysign(torch.sqrt(alpha * alpha + xnorm * xnorm), alpha)
        safe_beta = torch.where(trivial, torch.ones_like(beta), beta)
        tau = torch.where(trivial, torch.zeros_like(beta), (beta - alpha) / safe_beta)
        scale = torch.where(trivial, torch.ones_like(beta), 1.0 / (alpha - safe_beta))
        v = torch.where(below, x * scale, torch.where(rows == j, torch.ones_like(x), torch.zeros_like(x)))
        # apply H = I - tau v v^T to the columns right of j, then store beta and v in column j
        w = (v * a).sum(-2, keepdim=True)                                  # v^T A
        a = torch.where(cols > j, a - tau * v * w, a)
        col = torch.where(rows == j, torch.where(trivial, alpha, beta), torch.where(below, v, x))
        a = torch.where(cols == j, col, a)
        taus.append(tau.reshape(tau.shape[:-2]))
    tau = torch.stack(taus, -1) if taus else a.new_zeros(a.shape[:-2] + (0,))
    return a, tau


def _reflectors_apply(a, tau, q):
    """H_0 H_1 ... H_{k-1} q for the reflectors packed in a (below the diagonal, unit diagonal implied)."""
    m = a.shape[-2]
    rows = _idx(m, a).unsqueeze(-1)
    for j in range(tau.shape[-1] - 1, -1, -1):
        v = torch.where(rows > j, a[..., :, j:j + 1], torch.where(rows == j, torch.ones_like(a[..., :, :1]),
                                                                   torch.zeros_like(a[..., :, :1])))
        t = tau[..., j:j + 1].unsqueeze(-1)
        q = q - t * v * (v * q).sum(-2, keepdim=True)
    return q


@TABLE.register(aten.geqrf.default)
def geqrf(a):
    return _geqrf(a)


@TABLE.register(aten.linalg_householder_product.default)
def householder_product(a, tau):
    m, n = a.shape[-2], a.shape[-1]
    eye = torch.eye(m, n, dtype=a.dtype).expand(a.shape)
    return _reflectors_apply(a, tau, eye)


@TABLE.register(aten.ormqr.default)
def ormqr(a, tau, c, left=True, transpose=False):
    m = a.shape[-2]
    q = _reflectors_apply(a, tau, torch.eye(m, dtype=a.dtype).expand(a.shape[:-2] + (m, m)))
    q = q.mT if transpose else q
    return q @ c if left else c @ q


@TABLE.register(aten.linalg_qr.default)
def linalg_qr(a, mode="reduced"):
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    packed, tau = _geqrf(a)
    rows = m if mode == "complete" else k
    r = torch.triu(packed[..., :rows, :])
    if mode == "r":
        return a.new_zeros((0,)), r
    qcols = m if mode == "complete" else k
    q = _reflectors_apply(packed, tau, torch.eye(m, qcols, dtype=a.dtype).expand(a.shape[:-2] + (m, qcols)))
    return q, r
