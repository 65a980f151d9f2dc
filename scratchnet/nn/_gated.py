"""What the two gated cells (gru.py, lstm.py) share: the small product of a step, the gate
functions of the kernels, and three small helpers.  Read gru.py first: this file only holds
the pieces that would otherwise be written twice.
"""
import math

import numpy as np
from numba import njit

from .activations import sigmoid_forward


def _sigmoid(a):
    return sigmoid_forward(a)[0]  # the overflow-free form: exp(-|a|) only


def _check_clip(clip):
    if clip is not None and not clip > 0:
        raise ValueError(f"{clip=} must be a positive number or None")


def _common_dtype(*arrays):
    return np.result_type(*arrays, np.float32)


# The product of a step, h_{t-1} Wh, has N rows only (10 in training, 1 in separation) against
# a (H, 3H) matrix.  BLAS packs all of Wh on every call, and from Numba it is SciPy's OpenBLAS,
# a second thread pool (see rnn.py).  A GRU's state, unlike a ReLU's, has no zeros to skip, so
# the product is written out dense, as dot products: C[n, m] += A[n] . Bt[m], with Bt the
# weights transposed once per sequence so that both operands run along memory.  Five rows of
# A against four rows of Bt keep 20 sums in registers while k runs, 9 loads for 20 multiply-
# adds; k goes in chunks that keep the five rows of A in L1 cache.  ``fastmath`` allows FMA
# ("contract") and summing each dot product in SIMD partial sums ("reassoc"), as BLAS does.
# Measured on one core at N = 10, H = 256 and 512: 150-190 GFLOP/s, against 50-65 for NumPy's
# GEMM on the same products and 85-115 for rnn.py's form (a row of W added to each output
# row, which loads and stores the outputs again for every four rows of W).
_K_CHUNK = 512


@njit(cache=True, fastmath={"contract", "reassoc"})
def _accumulate_dots(A, Bt, C):
    """``C += A @ Bt.T`` for C-contiguous A (N, K), Bt (M, K), C (N, M), with N small."""
    N, K = A.shape
    M = Bt.shape[0]
    zero = A.dtype.type(0)
    for k0 in range(0, K, _K_CHUNK):
        k1 = min(k0 + _K_CHUNK, K)
        m = 0
        while m < M:
            if m + 4 <= M:  # four rows of Bt ...
                b0, b1, b2, b3 = Bt[m, k0:k1], Bt[m + 1, k0:k1], Bt[m + 2, k0:k1], Bt[m + 3, k0:k1]
                n = 0
                while n + 5 <= N:  # ... against five rows of A: 20 sums
                    a0, a1, a2 = A[n, k0:k1], A[n + 1, k0:k1], A[n + 2, k0:k1]
                    a3, a4 = A[n + 3, k0:k1], A[n + 4, k0:k1]
                    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = zero
                    s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = zero
                    for k in range(k1 - k0):
                        w0, w1, w2, w3 = b0[k], b1[k], b2[k], b3[k]
                        v = a0[k]; s00 += v * w0; s01 += v * w1; s02 += v * w2; s03 += v * w3  # noqa: E702
                        v = a1[k]; s10 += v * w0; s11 += v * w1; s12 += v * w2; s13 += v * w3  # noqa: E702
                        v = a2[k]; s20 += v * w0; s21 += v * w1; s22 += v * w2; s23 += v * w3  # noqa: E702
                        v = a3[k]; s30 += v * w0; s31 += v * w1; s32 += v * w2; s33 += v * w3  # noqa: E702
                        v = a4[k]; s40 += v * w0; s41 += v * w1; s42 += v * w2; s43 += v * w3  # noqa: E702
                    for i, (t0, t1, t2, t3) in enumerate(((s00, s01, s02, s03), (s10, s11, s12, s13),
                                                          (s20, s21, s22, s23), (s30, s31, s32, s33),
                                                          (s40, s41, s42, s43))):
                        C[n + i, m] += t0
                        C[n + i, m + 1] += t1
                        C[n + i, m + 2] += t2
                        C[n + i, m + 3] += t3
                    n += 5
                while n < N:  # the last N % 5 rows of A, one at a time
                    a0 = A[n, k0:k1]
                    t0 = t1 = t2 = t3 = zero
                    for k in range(k1 - k0):
                        v = a0[k]
                        t0 += v * b0[k]
                        t1 += v * b1[k]
                        t2 += v * b2[k]
                        t3 += v * b3[k]
                    C[n, m] += t0
                    C[n, m + 1] += t1
                    C[n, m + 2] += t2
                    C[n, m + 3] += t3
                    n += 1
                m += 4
            else:  # the last M % 4 rows of Bt, one at a time
                b0 = Bt[m, k0:k1]
                for n in range(N):
                    a0 = A[n, k0:k1]
                    t0 = zero
                    for k in range(k1 - k0):
                        t0 += a0[k] * b0[k]
                    C[n, m] += t0
                m += 1


# The gate functions.  Numba has no SIMD maths library here: exp and tanh are scalar libm
# calls, and libm's tanh costs six of its exp.  So both come from one exp(-|a|), which never
# overflows, with the sign applied by a select (a branch on it would mispredict half the time).
# (An exp that LLVM can vectorise -- a polynomial times powers of two -- was measured at 1 ns
# against libm's 2: a few percent of a training step, not worth thirty lines.)
# The kernels that call them take ``error_model="numpy"``: a division is then IEEE's, without
# Numba's ZeroDivisionError test (a branch per division); none here can divide by zero.
@njit(cache=True, inline="always")
def _sigmoid_scalar(a, one):
    e = math.exp(-abs(a))  # in (0, 1]
    p = one / (one + e)  # sigmoid(|a|)
    return p if a >= 0 else e * p  # sigmoid(-|a|) = e / (1 + e)


@njit(cache=True, inline="always")
def _tanh_scalar(a, one):
    e = math.exp(-(abs(a) + abs(a)))  # exp(-2|a|) in (0, 1]
    t = (one - e) / (one + e)  # tanh(|a|), to within an ulp of 1
    return t if a >= 0 else -t
