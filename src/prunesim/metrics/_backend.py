"""Array namespaces: the same metric code runs on numpy arrays and on torch tensors (any device).

Why not import torch here: similarity jobs run tens of thousands of times and must start fast,
so torch is imported only when a tensor arrives (``type(x).__module__`` starts with "torch").
Every backend computes in float64; only the operations the metrics need are wrapped.
"""

from __future__ import annotations

import numpy as np


def is_torch(x) -> bool:
    """True for torch tensors, checked without importing torch."""
    return type(x).__module__.startswith("torch")


class NumpyBackend:
    """float64 numpy (+ LAPACK through numpy/scipy)."""

    name = "numpy"
    lib = np

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def empty(self, shape):
        return np.empty(shape, dtype=np.float64)

    def zeros(self, shape):
        return np.zeros(shape, dtype=np.float64)

    def from_numpy(self, a):
        return np.asarray(a, dtype=np.float64)

    def to_numpy(self, a):
        return np.asarray(a)

    def item(self, a) -> float:
        return float(a)

    def inner(self, a, b) -> float:
        """Σ a∘b without an n×n temporary (BLAS dot on the flattened arrays)."""
        return float(np.vdot(a, b))

    def eigh(self, a):
        return np.linalg.eigh(a)

    def eigvalsh(self, a):
        """Ascending eigenvalues of a symmetric matrix (``_two_stage``: two stages above 1024
        when BLAS runs on one thread, else LAPACK syevd through numpy)."""
        from ._two_stage import eigvalsh

        return eigvalsh(a)

    def svdvals(self, a):
        return np.linalg.svd(a, compute_uv=False)

    def cholesky(self, a):
        return np.linalg.cholesky(a)

    def solve_lower(self, low, b):
        from scipy.linalg import solve_triangular

        return solve_triangular(low, b, lower=True)

    def clip(self, a, lo=None, hi=None):
        return np.clip(a, lo, hi)

    def zero_diagonal_(self, a):
        np.fill_diagonal(a, 0.0)
        return a

    def median(self, a):
        return np.median(a)

    def psd_factor(self, k, rtol):
        """G with K = G Gᵀ, G (n, r), r = numerical rank, by pivoted Cholesky (LAPACK dpstrf)."""
        from scipy.linalg.lapack import dpstrf

        n = k.shape[0]
        tol = rtol * rtol * max(float(np.max(np.diag(k))), 0.0)
        c, piv, rank, _ = dpstrf(k, lower=1, tol=tol)
        g = np.empty((n, rank))
        g[piv - 1] = np.tril(c)[:, :rank]
        return g


class TorchBackend:
    """float64 torch on the inputs' device; torch.linalg for the decompositions."""

    name = "torch"

    def __init__(self, device):
        import torch

        self.lib = torch
        self.device = device

    def asarray(self, x):
        if is_torch(x):
            return x.detach().to(device=self.device, dtype=self.lib.float64)
        return self.lib.as_tensor(np.asarray(x), dtype=self.lib.float64, device=self.device)

    def empty(self, shape):
        return self.lib.empty(shape, dtype=self.lib.float64, device=self.device)

    def zeros(self, shape):
        return self.lib.zeros(shape, dtype=self.lib.float64, device=self.device)

    def from_numpy(self, a):
        return self.lib.as_tensor(np.asarray(a), dtype=self.lib.float64, device=self.device)

    def to_numpy(self, a):
        return a.detach().cpu().numpy()

    def item(self, a) -> float:
        return float(a)

    def inner(self, a, b) -> float:
        return float((a * b).sum())

    def eigh(self, a):
        return self.lib.linalg.eigh(a)

    def eigvalsh(self, a):
        return self.lib.linalg.eigvalsh(a)

    def svdvals(self, a):
        return self.lib.linalg.svdvals(a)

    def cholesky(self, a):
        return self.lib.linalg.cholesky(a)

    def solve_lower(self, low, b):
        return self.lib.linalg.solve_triangular(low, b, upper=False)

    def clip(self, a, lo=None, hi=None):
        return self.lib.clamp(a, lo, hi)

    def zero_diagonal_(self, a):
        a.diagonal().zero_()
        return a

    def median(self, a):
        # torch.median returns the lower middle; match numpy's mean of the two middles
        flat = a.reshape(-1).sort().values
        m = flat.numel()
        return 0.5 * (flat[(m - 1) // 2] + flat[m // 2])

    def psd_factor(self, k, rtol):
        """G with K = G Gᵀ from an eigendecomposition (torch has no pivoted Cholesky)."""
        w, v = self.lib.linalg.eigh(k)
        keep = w > rtol * rtol * self.lib.clamp(w.max(), min=0.0)
        return v[:, keep] * self.lib.sqrt(w[keep])


NUMPY = NumpyBackend()


def backend_for(*arrays):
    """The backend of the inputs: torch (on the first tensor's device) if any is a tensor."""
    for a in arrays:
        if is_torch(a):
            return TorchBackend(a.device)
    return NUMPY
