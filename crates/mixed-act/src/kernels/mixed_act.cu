// Fused per-neuron activation kernels for SmartMixed: CUDA.
//
// Compiled at run time with NVRTC (src/cuda.rs) and checked on every CI run by `make ptx-check`.
// src/kernels/mixed_act.metal holds the same kernels in MSL, section by section and line by line
// where the languages allow: change both together. The formulas follow src/activation.rs (the
// one place they are defined); the tests compare every kernel against candle-op references.
//
// Layout: x, grad_y and every [rows, cols] output are contiguous and row-major; ids is [cols]
// u32; w and grad_w are [cols, K] for a pool of K members. A cohort of M models of the same
// widths stacks these: x, grad_y and the outputs [M, rows, cols], ids [M, cols], w and grad_w
// [M, cols, K]; model m applies its own ids or weights to its own rows. The host launches the
// grid M deep and each block works on model m = blockIdx.z, so `rows` is the rows of one model;
// one model is M = 1 (m = 0, no offset). M * rows * cols < 2^32 (checked by the host); the
// offsets are formed in size_t all the same. The mixture kernels get the pool as one integer,
// `pool` (Pool::packed): K in bits 0..4, member k's global id in bits 4(k+1)..4(k+2); column k
// of w belongs to member k.
// The learnable activations' kernels (at the end) read params [M, units, P] instead of ids or w.
//
// Every kernel's name and argument count are listed in src/kernels.rs (KERNELS); a unit test
// checks that list against this file and the Metal one, and each launch checks it too.

// ACT_COUNT: how many candidates there are (ids 0..ACT_COUNT-1), the most members a pool has.
#define ACT_COUNT 11
#define LEAKY_RELU_SLOPE 0.01
#define ELU_ALPHA 1.0
#define SELU_ALPHA 1.6732632423543772
#define SELU_LAMBDA 1.0507009873554805
#define SOFTPLUS_THRESHOLD 20
#define FRAC_1_SQRT_2 0.7071067811865476
#define FRAC_1_SQRT_2PI 0.3989422804014327

// ---- math per element type ---------------------------------------------------------------

template <typename T> struct Math;

template <> struct Math<float> {
    static __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __device__ __forceinline__ float expm1(float x) { return expm1f(x); }
    static __device__ __forceinline__ float tanh(float x) { return tanhf(x); }
    static __device__ __forceinline__ float erfc(float x) { return erfcf(x); }
    static __device__ __forceinline__ float log1p(float x) { return log1pf(x); }
    static __device__ __forceinline__ float nan() { return __int_as_float(0x7fc00000); }
};

template <> struct Math<double> {
    static __device__ __forceinline__ double exp(double x) { return ::exp(x); }
    static __device__ __forceinline__ double expm1(double x) { return ::expm1(x); }
    static __device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
    static __device__ __forceinline__ double erfc(double x) { return ::erfc(x); }
    static __device__ __forceinline__ double log1p(double x) { return ::log1p(x); }
    static __device__ __forceinline__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

// ---- helpers of the smooth functions (activation.rs: logistic, normal_cdf, mish_tanh) -------

// A value and its complement 1 - value, each formed without cancellation.
template <typename T> struct Pair {
    T value, complement;
};

// (sigmoid(x), 1 - sigmoid(x)) from one exp(-|x|).
template <typename T>
__device__ __forceinline__ Pair<T> logistic(T x) {
    const T e = Math<T>::exp(-fabs(x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? Pair<T>{r, e * r} : Pair<T>{e * r, r};
}

// Phi(x) = erfc(|x| / sqrt 2) / 2 for x < 0, one minus that for x >= 0 (accurate in the left
// tail).
template <typename T>
__device__ __forceinline__ T normal_cdf(T x) {
    const T half_tail = T(0.5) * Math<T>::erfc(fabs(x) * T(FRAC_1_SQRT_2));
    return x < T(0) ? half_tail : T(1) - half_tail;
}

// (t, 1 - t) for t = tanh(softplus(x)), in closed form from u = exp(-|x|).
template <typename T>
__device__ __forceinline__ Pair<T> mish_tanh(T x) {
    const T u = Math<T>::exp(-fabs(x));
    const T n = u * (u + T(2));
    const T d = T(1) + T(2) * u + T(2) * u * u;
    return x > T(0) ? Pair<T>{(T(1) + T(2) * u) / d, T(2) * u * u / d}
                    : Pair<T>{n / (n + T(2)), T(2) / (n + T(2))};
}

// ---- the candidates and their derivatives (see Activation::value / derivative) ------------
// Ids as in activation.rs: 0 relu, 1 sigmoid, 2 tanh, 3 leaky_relu, 4 elu, 5 selu, 6 gelu,
// 7 silu, 8 mish, 9 softplus, 10 identity.
// NaN inputs give NaN for every function. Unknown ids give NaN, so that a bad id shows in
// the output instead of passing silently
// (the host checks ids when a layer is built; kernels cannot report errors cheaply).

template <typename T>
__device__ __forceinline__ T act_value(unsigned int id, T x) {
    const T zero = T(0);
    switch (id) {
    case 0: return (x > zero || isnan(x)) ? x : zero;
    case 1: {
        const T e = Math<T>::exp(-fabs(x));
        const T r = T(1) / (T(1) + e);
        return x >= zero ? r : e * r;
    }
    case 2: return Math<T>::tanh(x);
    case 3: return x > zero ? x : T(LEAKY_RELU_SLOPE) * x;
    case 4: return (x > zero || isnan(x)) ? x : T(ELU_ALPHA) * Math<T>::expm1(fmin(x, zero));
    case 5:
        return (x > zero || isnan(x)) ? T(SELU_LAMBDA) * x
                                      : T(SELU_LAMBDA * SELU_ALPHA) * Math<T>::expm1(fmin(x, zero));
    case 6: return x * normal_cdf<T>(x);
    case 7: return x * logistic<T>(x).value;
    case 8: return x * mish_tanh<T>(x).value;
    case 9:
        return (x > T(SOFTPLUS_THRESHOLD) || isnan(x))
                   ? x
                   : fmax(x, zero) + Math<T>::log1p(Math<T>::exp(-fabs(x)));
    case 10: return x;
    default: return Math<T>::nan();
    }
}

// Left-hand derivative at the kinks, as PyTorch.
template <typename T>
__device__ __forceinline__ T act_derivative(unsigned int id, T x) {
    const T zero = T(0);
    switch (id) {
    case 0: return x > zero ? T(1) : zero;
    case 1: {
        const T s = act_value<T>(1, x);
        return s * (T(1) - s);
    }
    case 2: {
        const T t = Math<T>::tanh(x);
        return T(1) - t * t;
    }
    case 3: return x > zero ? T(1) : T(LEAKY_RELU_SLOPE);
    case 4: return x > zero ? T(1) : T(ELU_ALPHA) * Math<T>::exp(fmin(x, zero));
    case 5: return x > zero ? T(SELU_LAMBDA) : T(SELU_LAMBDA * SELU_ALPHA) * Math<T>::exp(fmin(x, zero));
    case 6: {
        // Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
        const T density = T(FRAC_1_SQRT_2PI) * Math<T>::exp(-(x * x) * T(0.5));
        return normal_cdf<T>(x) + x * density;
    }
    case 7: {
        const Pair<T> s = logistic<T>(x);
        return s.value * (T(1) + x * s.complement);
    }
    case 8: {
        const Pair<T> t = mish_tanh<T>(x);
        return t.value + x * (t.complement * (T(1) + t.value)) * logistic<T>(x).value;
    }
    case 9: return x > T(SOFTPLUS_THRESHOLD) ? T(1) : logistic<T>(x).value;
    case 10: return T(1);
    default: return Math<T>::nan();
    }
}

// PyTorch's clamp to [-limit, limit] (limit = +inf when there is no clamp) and its gradient,
// which is 1 on the bounds themselves.
template <typename T>
__device__ __forceinline__ T clamp_value(T v, T limit) {
    return v < -limit ? -limit : (v > limit ? limit : v);
}

template <typename T>
__device__ __forceinline__ T clamp_derivative(T v, T limit) {
    return (v < -limit || v > limit) ? T(0) : T(1);
}

// The pool of a mixture, as the host packs it (Pool::packed): K in bits 0..4, the global id of
// member k in bits 4(k+1)..4(k+2). K is capped at ACT_COUNT, so that no array is overrun even
// by a malformed pool (the host never sends one).
__device__ __forceinline__ unsigned int pool_size(unsigned long long pool) {
    const unsigned int size = (unsigned int)(pool & 15);
    return size < ACT_COUNT ? size : ACT_COUNT;
}

__device__ __forceinline__ unsigned int pool_member(unsigned long long pool, unsigned int k) {
    return (unsigned int)(pool >> (4 * (k + 1))) & 15;
}

// Pre-clamp mixture sum s = sum_k w_k C(f_k(x)) and slope sum_k w_k C'(f_k(x)) f_k'(x) over the
// members of the pool, in pool order (the CPU's order); w is the neuron's K weights.
// Zero weights are skipped, as on the CPU (equal to the dense sum whenever f_k(x) is finite).
// Not unrolled: the member ids are only known at run time, so an unrolled loop would inline
// both switches once per possible member (the PTX grew from 0.8 to 2.2 MB, ptxas from 0.75 to
// 3.3 s for sm_90), and a thread usually handles one element, so there is nothing to hoist.
template <typename T>
__device__ __forceinline__ void mixture_terms(T x, const T* w, unsigned long long pool, T limit,
                                              T* sum, T* slope) {
    const unsigned int K = pool_size(pool);
    T s = T(0), d = T(0);
#pragma unroll 1
    for (unsigned int k = 0; k < K; ++k) {
        if (w[k] != T(0)) {
            const unsigned int id = pool_member(pool, k);
            const T v = act_value<T>(id, x);
            s += w[k] * clamp_value(v, limit);
            d += w[k] * clamp_derivative(v, limit) * act_derivative<T>(id, x);
        }
    }
    *sum = s;
    *slope = d;
}

// ---- element-wise kernels: a 2-D grid over [rows, cols], one layer per model ---------------
// x runs over columns, so that a thread stays with one neuron (its id, or its K weights, which
// the cache keeps) and a warp reads consecutive columns of a row; y runs over rows in a grid-stride loop (gridDim.y is capped at
// 65535); z is the model m of a cohort, whose element (r, c) is (m * rows + r) * cols + c.
// No integer division per element. Launch geometry: kernels.rs, elementwise_geometry.

#define FOR_EACH_ROW(r)                                                                     \
    for (unsigned int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows;                  \
         r += gridDim.y * blockDim.y)

// ---- phase 2: per-neuron fixed functions -------------------------------------------------

template <typename T>
__device__ void per_neuron_fwd(const T* x, const unsigned int* ids, T* y, unsigned int rows,
                               unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    const unsigned int id = ids[m * cols + c];
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        y[i] = act_value<T>(id, x[i]);
    }
}

template <typename T>
__device__ void per_neuron_grad_x(const T* x, const unsigned int* ids, const T* grad_y, T* grad_x,
                                  unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    const unsigned int id = ids[m * cols + c];
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        grad_x[i] = grad_y[i] * act_derivative<T>(id, x[i]);
    }
}

// ---- phase 1: the hard mixture -----------------------------------------------------------

template <typename T>
__device__ void mixture_fwd(const T* x, const T* w, T* y, T limit, unsigned long long pool,
                            unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    const T* wc = w + (m * cols + c) * pool_size(pool);
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        T sum, slope;
        mixture_terms<T>(x[i], wc, pool, limit, &sum, &slope);
        y[i] = clamp_value(sum, limit);
    }
}

template <typename T>
__device__ void mixture_grad_x(const T* x, const T* w, const T* grad_y, T* grad_x, T limit,
                               unsigned long long pool, unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    const T* wc = w + (m * cols + c) * pool_size(pool);
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        T sum, slope;
        mixture_terms<T>(x[i], wc, pool, limit, &sum, &slope);
        grad_x[i] = grad_y[i] * clamp_derivative(sum, limit) * slope;
    }
}

// grad_w[c, k] = sum over rows b of grad_y[b, c] * C'(s[b, c]) * C(f_k(x[b, c])), per model:
// grad_w[m, c, k] sums the rows of model m only.
//
// Reduction without atomics, so that every run gives the same bits: a block of
// GRAD_W_COLS x GRAD_W_ROW_GROUPS threads owns GRAD_W_COLS whole columns. Thread (tx, ty)
// walks rows ty, ty + GRAD_W_ROW_GROUPS, ... of column tx (a warp reads one row's consecutive
// columns, so loads coalesce) and keeps K running sums in double, one per pool member; then the
// first K rows of threads add the GRAD_W_ROW_GROUPS partial sums of one k each, in ty order
// (K <= ACT_COUNT <= GRAD_W_ROW_GROUPS). Both orders are fixed by the thread layout, not by
// scheduling. Launch with blockDim (32, 16) and gridDim (ceil(cols / 32), 1, M): the blocks of
// layer z reduce model m = blockIdx.z, each in the same order whatever m is. partial holds
// 16 x 32 x 11 doubles, 45 KB: under CUDA's 48 KB of static shared memory. The loops over the
// members are unrolled (guarded by k < K), so that values and acc stay in registers.
#define GRAD_W_COLS 32
#define GRAD_W_ROW_GROUPS 16

template <typename T>
__device__ void mixture_grad_w(const T* x, const T* w, const T* grad_y, T* grad_w, T limit,
                               unsigned long long pool, unsigned int rows, unsigned int cols) {
    __shared__ double partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][ACT_COUNT];
    const unsigned int tx = threadIdx.x, ty = threadIdx.y;
    const unsigned int c = blockIdx.x * GRAD_W_COLS + tx;
    const size_t m = blockIdx.z;
    const unsigned int K = pool_size(pool);
    double acc[ACT_COUNT] = {};
    if (c < cols) {
        const T* wc = w + (m * cols + c) * K;
        for (unsigned int b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const size_t i = (m * rows + b) * cols + c;
            T values[ACT_COUNT];
            T s = T(0);
#pragma unroll
            for (unsigned int k = 0; k < ACT_COUNT; ++k) {
                if (k < K) {
                    values[k] = clamp_value(act_value<T>(pool_member(pool, k), x[i]), limit);
                    if (wc[k] != T(0)) s += wc[k] * values[k];
                }
            }
            const T gate = grad_y[i] * clamp_derivative(s, limit);
#pragma unroll
            for (unsigned int k = 0; k < ACT_COUNT; ++k)
                if (k < K) acc[k] += (double)(gate * values[k]);
        }
    }
#pragma unroll
    for (unsigned int k = 0; k < ACT_COUNT; ++k) partial[ty][tx][k] = acc[k];
    __syncthreads();
    if (ty < K && c < cols) {
        double total = 0.0;
        for (unsigned int g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_w[(m * cols + c) * K + ty] = (T)total;
    }
}

// ---- learnable activations (learnable.rs: PReLU, Swish-beta, PAU) ------------------------
// Kinds as Learnable::id: 0 prelu (p = [a]), 1 swish_beta (p = [beta]), 2 pau (p = [a_0..a_5,
// b_1..b_4]). params is [M, units, P], units = cols (one unit per neuron) or 1 (one unit for the
// layer): column c reads unit 0 or unit c of model m. Unknown kinds give NaN.
#define PAU_NUMERATOR 6
#define PAU_DENOMINATOR 4
#define LEARNABLE_MAX_PARAMS 10
// The grad_p reduction gives each of a column's sums one row of threads of a block.
static_assert(LEARNABLE_MAX_PARAMS <= GRAD_W_ROW_GROUPS, "grad_p needs a row of threads per parameter");

__device__ __forceinline__ unsigned int learnable_params(unsigned int kind) {
    return kind == 2 ? PAU_NUMERATOR + PAU_DENOMINATOR : 1;
}

// PAU's value, every quantity divided by |x|^4 when |x| > 1, so that no power of x above the
// first is formed (x^5 overflows f32 above about 5e7): learnable.rs, pau_value.
template <typename T>
__device__ __forceinline__ T pau_value(T x, const T* p) {
    const T* a = p;
    const T* b = p + PAU_NUMERATOR;
    const T one = T(1);
    const T u = fabs(x);
    if (u > one) {
        // P / |x|^4 and Q / |x|^4 in powers of r = 1 / |x| (Horner), the x^5 term as x.
        const T r = one / u;
        const T sign = x < T(0) ? -one : one;
        const T even = a[4] + r * r * (a[2] + r * r * a[0]);
        const T odd = sign * (r * (a[3] + r * r * a[1]));
        const T numerator = even + odd + a[5] * x;
        const T q = fabs(b[3]) + r * (fabs(b[2]) + r * (fabs(b[1]) + r * (fabs(b[0]) + r)));
        return numerator / q;
    }
    T numerator = a[5];
    for (int j = 4; j >= 0; --j) numerator = numerator * x + a[j];
    T q = fabs(b[3]);
    for (int k = 2; k >= 0; --k) q = q * u + fabs(b[k]);
    return numerator / (q * u + one);
}

// PAU's df/dx, with df/dp in dp (10 values), scaled as pau_value: learnable.rs, pau_terms and
// Learnable::derivatives. sign(b_k) at b_k = 0 is +1, so that a coefficient at 0 can move.
template <typename T>
__device__ __forceinline__ T pau_derivatives(T x, const T* p, T* dp) {
    const T* a = p;
    const T* b = p + PAU_NUMERATOR;
    const T one = T(1);
    const T sign = x < T(0) ? -one : one;
    const T u = fabs(x);
    // abs_powers[j] = |x|^j / s, s = 1 for |x| <= 1 and |x|^4 above.
    T abs_powers[PAU_NUMERATOR];
    if (u > one) {
        const T r = one / u;
        abs_powers[0] = r * r * r * r;
        abs_powers[1] = r * r * r;
        abs_powers[2] = r * r;
        abs_powers[3] = r;
        abs_powers[4] = one;
        abs_powers[5] = u;
    } else {
        abs_powers[0] = one;
#pragma unroll
        for (int j = 1; j < PAU_NUMERATOR; ++j) abs_powers[j] = abs_powers[j - 1] * u;
    }
    T powers[PAU_NUMERATOR];
#pragma unroll
    for (int j = 0; j < PAU_NUMERATOR; ++j) powers[j] = (j % 2 == 1) ? sign * abs_powers[j] : abs_powers[j];
    T numerator = T(0), dpdx = T(0);
#pragma unroll
    for (int j = 0; j < PAU_NUMERATOR; ++j) {
        numerator = numerator + a[j] * powers[j];
        // d x^j / dx = j x^(j - 1), scaled as x^(j - 1) is.
        if (j > 0) dpdx = dpdx + T(j) * a[j] * powers[j - 1];
    }
    T q = abs_powers[0], dq = T(0);
#pragma unroll
    for (int k = 1; k <= PAU_DENOMINATOR; ++k) {
        const T bk = fabs(b[k - 1]);
        q = q + bk * abs_powers[k];
        dq = dq + T(k) * bk * abs_powers[k - 1];
    }
    dq = sign * dq;
    const T value = numerator / q;
#pragma unroll
    for (int j = 0; j < PAU_NUMERATOR; ++j) dp[j] = powers[j] / q;
#pragma unroll
    for (int k = 0; k < PAU_DENOMINATOR; ++k) {
        const T s = b[k] < T(0) ? -one : one;
        dp[PAU_NUMERATOR + k] = -s * abs_powers[k + 1] * value / q;
    }
    return (dpdx - dq * value) / q;
}

template <typename T>
__device__ __forceinline__ T learnable_value(unsigned int kind, T x, const T* p) {
    switch (kind) {
    // `+ 0` turns the -0 of a zero slope times a negative x into relu's +0.
    case 0: return x > T(0) ? x : p[0] * x + T(0);
    case 1: return x * logistic<T>(p[0] * x).value;
    case 2: return pau_value<T>(x, p);
    default: return Math<T>::nan();
    }
}

// df/dx, with df/dp written into dp (learnable_params(kind) values).
template <typename T>
__device__ __forceinline__ T learnable_derivatives(unsigned int kind, T x, const T* p, T* dp) {
    switch (kind) {
    case 0:
        if (x > T(0)) {
            dp[0] = T(0);
            return T(1);
        }
        dp[0] = x;
        return p[0];
    case 1: {
        // s (1 + beta x (1 - s)); d/dbeta = x^2 s (1 - s).
        const T bx = p[0] * x;
        const Pair<T> s = logistic<T>(bx);
        dp[0] = x * x * s.value * s.complement;
        return s.value * (T(1) + bx * s.complement);
    }
    case 2: return pau_derivatives<T>(x, p, dp);
    default: dp[0] = Math<T>::nan(); return Math<T>::nan();
    }
}

// Column c's parameters copied into p (registers): unit 0 or unit c of model m.
template <typename T>
__device__ __forceinline__ void learnable_unit(const T* params, unsigned int kind,
                                               unsigned int units, size_t m, unsigned int c,
                                               T* p) {
    const unsigned int P = learnable_params(kind);
    const T* unit = params + (m * units + (units == 1 ? 0 : c)) * P;
#pragma unroll
    for (unsigned int j = 0; j < LEARNABLE_MAX_PARAMS; ++j)
        if (j < P) p[j] = unit[j];
}

template <typename T>
__device__ void learnable_fwd(const T* x, const T* params, T* y, unsigned int kind,
                              unsigned int units, unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    T p[LEARNABLE_MAX_PARAMS] = {};
    learnable_unit<T>(params, kind, units, m, c, p);
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        y[i] = learnable_value<T>(kind, x[i], p);
    }
}

template <typename T>
__device__ void learnable_grad_x(const T* x, const T* params, const T* grad_y, T* grad_x,
                                 unsigned int kind, unsigned int units, unsigned int rows,
                                 unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t m = blockIdx.z;
    if (c >= cols) return;
    T p[LEARNABLE_MAX_PARAMS] = {}, dp[LEARNABLE_MAX_PARAMS] = {};
    learnable_unit<T>(params, kind, units, m, c, p);
    FOR_EACH_ROW(r) {
        const size_t i = (m * rows + r) * cols + c;
        grad_x[i] = grad_y[i] * learnable_derivatives<T>(kind, x[i], p, dp);
    }
}

// grad_p[m, c, j] = sum over the rows b of model m of grad_y[b, c] * df/dp_j at x[b, c]: one
// sum per column, whatever the units (the host adds a shared unit's columns). The reduction of
// mixture_grad_w (GRAD_W_COLS x GRAD_W_ROW_GROUPS threads own GRAD_W_COLS columns, sums in
// double in the thread layout's order, no atomics), with P <= LEARNABLE_MAX_PARAMS <=
// GRAD_W_ROW_GROUPS sums per column; partial holds 16 x 32 x 10 doubles, 40 KB.
template <typename T>
__device__ void learnable_grad_p(const T* x, const T* params, const T* grad_y, T* grad_p,
                                 unsigned int kind, unsigned int units, unsigned int rows,
                                 unsigned int cols) {
    __shared__ double partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][LEARNABLE_MAX_PARAMS];
    const unsigned int tx = threadIdx.x, ty = threadIdx.y;
    const unsigned int c = blockIdx.x * GRAD_W_COLS + tx;
    const size_t m = blockIdx.z;
    const unsigned int P = learnable_params(kind);
    double acc[LEARNABLE_MAX_PARAMS] = {};
    if (c < cols) {
        T p[LEARNABLE_MAX_PARAMS] = {}, dp[LEARNABLE_MAX_PARAMS] = {};
        learnable_unit<T>(params, kind, units, m, c, p);
        for (unsigned int b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const size_t i = (m * rows + b) * cols + c;
            learnable_derivatives<T>(kind, x[i], p, dp);
#pragma unroll
            for (unsigned int j = 0; j < LEARNABLE_MAX_PARAMS; ++j)
                if (j < P) acc[j] += (double)grad_y[i] * (double)dp[j];
        }
    }
#pragma unroll
    for (unsigned int j = 0; j < LEARNABLE_MAX_PARAMS; ++j) partial[ty][tx][j] = acc[j];
    __syncthreads();
    if (ty < P && c < cols) {
        double total = 0.0;
        for (unsigned int g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_p[(m * cols + c) * P + ty] = (T)total;
    }
}

// ---- entry points, one per kernel and element type (names as in src/kernels.rs) ---------

extern "C" __global__ void per_neuron_fwd_f32(const float* x, const unsigned int* ids, float* y,
                                              unsigned int rows, unsigned int cols) {
    per_neuron_fwd<float>(x, ids, y, rows, cols);
}

extern "C" __global__ void per_neuron_fwd_f64(const double* x, const unsigned int* ids, double* y,
                                              unsigned int rows, unsigned int cols) {
    per_neuron_fwd<double>(x, ids, y, rows, cols);
}

extern "C" __global__ void per_neuron_grad_x_f32(const float* x, const unsigned int* ids,
                                                 const float* grad_y, float* grad_x,
                                                 unsigned int rows, unsigned int cols) {
    per_neuron_grad_x<float>(x, ids, grad_y, grad_x, rows, cols);
}

extern "C" __global__ void per_neuron_grad_x_f64(const double* x, const unsigned int* ids,
                                                 const double* grad_y, double* grad_x,
                                                 unsigned int rows, unsigned int cols) {
    per_neuron_grad_x<double>(x, ids, grad_y, grad_x, rows, cols);
}

extern "C" __global__ void mixture_fwd_f32(const float* x, const float* w, float* y, float limit,
                                           unsigned long long pool, unsigned int rows,
                                           unsigned int cols) {
    mixture_fwd<float>(x, w, y, limit, pool, rows, cols);
}

extern "C" __global__ void mixture_fwd_f64(const double* x, const double* w, double* y,
                                           double limit, unsigned long long pool,
                                           unsigned int rows, unsigned int cols) {
    mixture_fwd<double>(x, w, y, limit, pool, rows, cols);
}

extern "C" __global__ void mixture_grad_x_f32(const float* x, const float* w, const float* grad_y,
                                              float* grad_x, float limit,
                                              unsigned long long pool, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_x<float>(x, w, grad_y, grad_x, limit, pool, rows, cols);
}

extern "C" __global__ void mixture_grad_x_f64(const double* x, const double* w,
                                              const double* grad_y, double* grad_x, double limit,
                                              unsigned long long pool, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_x<double>(x, w, grad_y, grad_x, limit, pool, rows, cols);
}

extern "C" __global__ void mixture_grad_w_f32(const float* x, const float* w, const float* grad_y,
                                              float* grad_w, float limit,
                                              unsigned long long pool, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_w<float>(x, w, grad_y, grad_w, limit, pool, rows, cols);
}

extern "C" __global__ void mixture_grad_w_f64(const double* x, const double* w,
                                              const double* grad_y, double* grad_w, double limit,
                                              unsigned long long pool, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_w<double>(x, w, grad_y, grad_w, limit, pool, rows, cols);
}

extern "C" __global__ void learnable_fwd_f32(const float* x, const float* params, float* y,
                                             unsigned int kind, unsigned int units,
                                             unsigned int rows, unsigned int cols) {
    learnable_fwd<float>(x, params, y, kind, units, rows, cols);
}

extern "C" __global__ void learnable_fwd_f64(const double* x, const double* params, double* y,
                                             unsigned int kind, unsigned int units,
                                             unsigned int rows, unsigned int cols) {
    learnable_fwd<double>(x, params, y, kind, units, rows, cols);
}

extern "C" __global__ void learnable_grad_x_f32(const float* x, const float* params,
                                                const float* grad_y, float* grad_x,
                                                unsigned int kind, unsigned int units,
                                                unsigned int rows, unsigned int cols) {
    learnable_grad_x<float>(x, params, grad_y, grad_x, kind, units, rows, cols);
}

extern "C" __global__ void learnable_grad_x_f64(const double* x, const double* params,
                                                const double* grad_y, double* grad_x,
                                                unsigned int kind, unsigned int units,
                                                unsigned int rows, unsigned int cols) {
    learnable_grad_x<double>(x, params, grad_y, grad_x, kind, units, rows, cols);
}

extern "C" __global__ void learnable_grad_p_f32(const float* x, const float* params,
                                                const float* grad_y, float* grad_p,
                                                unsigned int kind, unsigned int units,
                                                unsigned int rows, unsigned int cols) {
    learnable_grad_p<float>(x, params, grad_y, grad_p, kind, units, rows, cols);
}

extern "C" __global__ void learnable_grad_p_f64(const double* x, const double* params,
                                                const double* grad_y, double* grad_p,
                                                unsigned int kind, unsigned int units,
                                                unsigned int rows, unsigned int cols) {
    learnable_grad_p<double>(x, params, grad_y, grad_p, kind, units, rows, cols);
}
