// Fused per-neuron activation kernels for SmartMixed: Metal (MSL).
//
// Compiled at run time with new_library_with_source (src/metal.rs). This file parallels
// src/kernels/mixed_act.cu section by section and line by line where the languages allow:
// change both together. Differences, all forced by Metal: no double (f32 kernels only, and
// grad_w sums in float), no expm1, erfc or log1p (written below: expm1 from exp and log, erfc
// and ln(1 + u) as src/fastmath.rs has them), no grid-stride loop (one thread per element in a
// 2-D grid per model, bounds-checked), thread indices come in as kernel arguments.
// Metal cannot be compiled on Linux; `make metal-check` only proves that this is valid C++
// under a shim (typos, types, undefined names), not that it is valid Metal.
//
// Layout: x, grad_y and every [rows, cols] output are contiguous and row-major; ids is [cols]
// u32; w and grad_w are [cols, K] for a pool of K members. A cohort of M models of the same
// widths stacks these: x, grad_y and the outputs [M, rows, cols], ids [M, cols], w and grad_w
// [M, cols, K]; model m applies its own ids or weights to its own rows. The host dispatches the
// grid M threadgroups deep (threadgroups of depth 1) and each thread works on model m = the z of
// its position in the grid, so `rows` is the rows of one model; one model is M = 1 (m = 0, no
// offset). M * rows * cols < 2^32 (checked by the host); the offsets are formed in size_t all
// the same. The mixture kernels get the pool as one integer, `pool` (Pool::packed, 8 bytes): K
// in bits 0..4, member k's global id in bits 4(k+1)..4(k+2); column k of w belongs to member k.
// The learnable activations' kernels (at the end) read params [M, units, P] instead of ids or w.
// Every kernel's name and buffer count are listed in src/kernels.rs (KERNELS) and checked by a
// unit test and at each launch. Metal wants every thread-position argument of a kernel to have
// the same number of components, so they are all uint3 (z: the model).

#include <metal_stdlib>
using namespace metal;

// ACT_COUNT: how many candidates there are (ids 0..ACT_COUNT-1), the most members a pool has.
#define ACT_COUNT 11
#define LEAKY_RELU_SLOPE 0.01f
#define ELU_ALPHA 1.0f
#define SELU_ALPHA 1.6732632423543772f
#define SELU_LAMBDA 1.0507009873554805f
#define SOFTPLUS_THRESHOLD 20.0f
#define FRAC_1_SQRT_2 0.7071067811865476f
#define FRAC_1_SQRT_2PI 0.3989422804014327f

// ---- math ----------------------------------------------------------------------------------

inline float nan_value() { return as_type<float>(0x7fc00000u); }

// e^x - 1 without cancellation near 0 (Kahan): MSL has no expm1.
inline float expm1_accurate(float x) {
    const float u = precise::exp(x);
    if (u == 1.0f) return x;
    const float um1 = u - 1.0f;
    if (um1 == -1.0f) return -1.0f;
    return um1 * x / precise::log(u);
}

// erfc(z) for z >= 0: the Chebyshev fit of Numerical Recipes (erfcc) with the coefficients of
// src/fastmath.rs, erfc_nonnegative (MSL has no erfc). Relative error below 1e-6 for z <= 3.
inline float erfc_nonnegative(float z) {
    const float t = 1.0f / (1.0f + 0.5f * z);
    const float poly =
        -1.2655122f +
        t * (1.0000237f +
             t * (0.37409196f +
                  t * (0.09678418f +
                       t * (-0.18628806f +
                            t * (0.27886807f +
                                 t * (-1.13520398f +
                                      t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    return t * precise::exp(poly - z * z);
}

// ln(1 + u) for u in [0, 1] as src/fastmath.rs, ln_1p_unit (MSL has no log1p):
// 2 atanh(s) = 2 (s + s^3/3 + ... + s^17/17) with s = u / (2 + u) in [0, 1/3].
inline float ln_1p_unit(float u) {
    const float s = u / (2.0f + u);
    const float s2 = s * s;
    const float series =
        1.0f +
        s2 * (1.0f / 3.0f +
              s2 * (1.0f / 5.0f +
                    s2 * (1.0f / 7.0f +
                          s2 * (1.0f / 9.0f +
                                s2 * (1.0f / 11.0f +
                                      s2 * (1.0f / 13.0f +
                                            s2 * (1.0f / 15.0f + s2 * (1.0f / 17.0f))))))));
    return 2.0f * s * series;
}

// ---- helpers of the smooth functions (activation.rs: logistic, normal_cdf, mish_tanh) -------

// A value and its complement 1 - value, each formed without cancellation.
struct Pair {
    float value, complement;
};

// (sigmoid(x), 1 - sigmoid(x)) from one exp(-|x|).
inline Pair logistic(float x) {
    const float e = precise::exp(-fabs(x));
    const float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? Pair{r, e * r} : Pair{e * r, r};
}

// Phi(x) = erfc(|x| / sqrt 2) / 2 for x < 0, one minus that for x >= 0 (accurate in the left
// tail).
inline float normal_cdf(float x) {
    const float half_tail = 0.5f * erfc_nonnegative(fabs(x) * FRAC_1_SQRT_2);
    return x < 0.0f ? half_tail : 1.0f - half_tail;
}

// (t, 1 - t) for t = tanh(softplus(x)), in closed form from u = exp(-|x|).
inline Pair mish_tanh(float x) {
    const float u = precise::exp(-fabs(x));
    const float n = u * (u + 2.0f);
    const float d = 1.0f + 2.0f * u + 2.0f * u * u;
    return x > 0.0f ? Pair{(1.0f + 2.0f * u) / d, 2.0f * u * u / d}
                    : Pair{n / (n + 2.0f), 2.0f / (n + 2.0f)};
}

// ---- the candidates and their derivatives (see Activation::value / derivative) ------------
// Ids as in activation.rs: 0 relu, 1 sigmoid, 2 tanh, 3 leaky_relu, 4 elu, 5 selu, 6 gelu,
// 7 silu, 8 mish, 9 softplus, 10 identity.
// NaN inputs give NaN for every function. Unknown ids give NaN, so that a bad id shows in
// the output instead of passing silently.

inline float act_value(uint id, float x) {
    const float zero = 0.0f;
    switch (id) {
    case 0: return (x > zero || isnan(x)) ? x : zero;
    case 1: {
        const float e = precise::exp(-fabs(x));
        const float r = 1.0f / (1.0f + e);
        return x >= zero ? r : e * r;
    }
    case 2: return precise::tanh(x);
    case 3: return x > zero ? x : LEAKY_RELU_SLOPE * x;
    case 4: return (x > zero || isnan(x)) ? x : ELU_ALPHA * expm1_accurate(fmin(x, zero));
    case 5:
        return (x > zero || isnan(x)) ? SELU_LAMBDA * x
                                      : SELU_LAMBDA * SELU_ALPHA * expm1_accurate(fmin(x, zero));
    case 6: return x * normal_cdf(x);
    case 7: return x * logistic(x).value;
    case 8: return x * mish_tanh(x).value;
    case 9:
        return (x > SOFTPLUS_THRESHOLD || isnan(x))
                   ? x
                   : fmax(x, zero) + ln_1p_unit(precise::exp(-fabs(x)));
    case 10: return x;
    default: return nan_value();
    }
}

// Left-hand derivative at the kinks, as PyTorch.
inline float act_derivative(uint id, float x) {
    const float zero = 0.0f;
    switch (id) {
    case 0: return x > zero ? 1.0f : zero;
    case 1: {
        const float s = act_value(1, x);
        return s * (1.0f - s);
    }
    case 2: {
        const float t = precise::tanh(x);
        return 1.0f - t * t;
    }
    case 3: return x > zero ? 1.0f : LEAKY_RELU_SLOPE;
    case 4: return x > zero ? 1.0f : ELU_ALPHA * precise::exp(fmin(x, zero));
    case 5: return x > zero ? SELU_LAMBDA : SELU_LAMBDA * SELU_ALPHA * precise::exp(fmin(x, zero));
    case 6: {
        // Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
        const float density = FRAC_1_SQRT_2PI * precise::exp(-(x * x) * 0.5f);
        return normal_cdf(x) + x * density;
    }
    case 7: {
        const Pair s = logistic(x);
        return s.value * (1.0f + x * s.complement);
    }
    case 8: {
        const Pair t = mish_tanh(x);
        return t.value + x * (t.complement * (1.0f + t.value)) * logistic(x).value;
    }
    case 9: return x > SOFTPLUS_THRESHOLD ? 1.0f : logistic(x).value;
    case 10: return 1.0f;
    default: return nan_value();
    }
}

// PyTorch's clamp to [-limit, limit] (limit = +inf when there is no clamp) and its gradient,
// which is 1 on the bounds themselves.
inline float clamp_value(float v, float limit) {
    return v < -limit ? -limit : (v > limit ? limit : v);
}

inline float clamp_derivative(float v, float limit) {
    return (v < -limit || v > limit) ? 0.0f : 1.0f;
}

// The pool of a mixture, as the host packs it (Pool::packed): K in bits 0..4, the global id of
// member k in bits 4(k+1)..4(k+2). K is capped at ACT_COUNT, so that no array is overrun even
// by a malformed pool (the host never sends one).
inline uint pool_size(ulong pool) {
    const uint size = (uint)(pool & 15);
    return size < ACT_COUNT ? size : ACT_COUNT;
}

inline uint pool_member(ulong pool, uint k) {
    return (uint)(pool >> (4 * (k + 1))) & 15;
}

// Pre-clamp mixture sum s = sum_k w_k C(f_k(x)) and slope sum_k w_k C'(f_k(x)) f_k'(x) over the
// members of the pool, in pool order (the CPU's order); w is the neuron's K weights.
// Zero weights are skipped, as on the CPU (equal to the dense sum whenever f_k(x) is finite).
inline void mixture_terms(float x, device const float* w, ulong pool, float limit,
                          thread float* sum, thread float* slope) {
    const uint K = pool_size(pool);
    float s = 0.0f, d = 0.0f;
    for (uint k = 0; k < K; ++k) {
        if (w[k] != 0.0f) {
            const uint id = pool_member(pool, k);
            const float v = act_value(id, x);
            s += w[k] * clamp_value(v, limit);
            d += w[k] * clamp_derivative(v, limit) * act_derivative(id, x);
        }
    }
    *sum = s;
    *slope = d;
}

// ---- element-wise kernels: a 2-D grid over [rows, cols], one layer per model ---------------
// x over columns, y over rows, z the model m, as in CUDA (element (r, c) of model m is
// (m * rows + r) * cols + c); Metal needs no grid-stride loop (the host dispatches
// ceil(rows / by) groups along y), so each thread bounds-checks its element.

// ---- phase 2: per-neuron fixed functions -------------------------------------------------

kernel void per_neuron_fwd_f32(device const float* x [[buffer(0)]],
                               device const uint* ids [[buffer(1)]],
                               device float* y [[buffer(2)]],
                               constant uint& rows [[buffer(3)]],
                               constant uint& cols [[buffer(4)]],
                               uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    y[i] = act_value(ids[m * cols + c], x[i]);
}

kernel void per_neuron_grad_x_f32(device const float* x [[buffer(0)]],
                                  device const uint* ids [[buffer(1)]],
                                  device const float* grad_y [[buffer(2)]],
                                  device float* grad_x [[buffer(3)]],
                                  constant uint& rows [[buffer(4)]],
                                  constant uint& cols [[buffer(5)]],
                                  uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    grad_x[i] = grad_y[i] * act_derivative(ids[m * cols + c], x[i]);
}

// ---- phase 1: the hard mixture -----------------------------------------------------------

kernel void mixture_fwd_f32(device const float* x [[buffer(0)]],
                            device const float* w [[buffer(1)]],
                            device float* y [[buffer(2)]],
                            constant float& limit [[buffer(3)]],
                            constant ulong& pool [[buffer(4)]],
                            constant uint& rows [[buffer(5)]],
                            constant uint& cols [[buffer(6)]],
                            uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    float sum, slope;
    mixture_terms(x[i], w + (m * cols + c) * pool_size(pool), pool, limit, &sum, &slope);
    y[i] = clamp_value(sum, limit);
}

kernel void mixture_grad_x_f32(device const float* x [[buffer(0)]],
                               device const float* w [[buffer(1)]],
                               device const float* grad_y [[buffer(2)]],
                               device float* grad_x [[buffer(3)]],
                               constant float& limit [[buffer(4)]],
                               constant ulong& pool [[buffer(5)]],
                               constant uint& rows [[buffer(6)]],
                               constant uint& cols [[buffer(7)]],
                               uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    float sum, slope;
    mixture_terms(x[i], w + (m * cols + c) * pool_size(pool), pool, limit, &sum, &slope);
    grad_x[i] = grad_y[i] * clamp_derivative(sum, limit) * slope;
}

// grad_w[c, k] = sum over rows b of grad_y[b, c] * C'(s[b, c]) * C(f_k(x[b, c])), per model:
// grad_w[m, c, k] sums the rows of model m only.
//
// The same atomics-free layout as the CUDA kernel: a threadgroup of
// GRAD_W_COLS x GRAD_W_ROW_GROUPS threads owns GRAD_W_COLS whole columns; thread (tx, ty)
// sums rows ty, ty + GRAD_W_ROW_GROUPS, ... of column tx, one sum per pool member; then the
// first K rows of threads add the partial sums of one k each, in ty order (K <= ACT_COUNT <=
// GRAD_W_ROW_GROUPS). Float sums (Metal has no double); partial holds 16 x 32 x 11 floats,
// 22.5 KB, under Metal's 32 KB of threadgroup memory.
// Dispatch threadgroups of (32, 16, 1), (ceil(cols / 32), 1, M) of them: the groups of layer z
// reduce model m = group.z, each in the same order whatever m is.
#define GRAD_W_COLS 32
#define GRAD_W_ROW_GROUPS 16

kernel void mixture_grad_w_f32(device const float* x [[buffer(0)]],
                               device const float* w [[buffer(1)]],
                               device const float* grad_y [[buffer(2)]],
                               device float* grad_w [[buffer(3)]],
                               constant float& limit [[buffer(4)]],
                               constant ulong& pool [[buffer(5)]],
                               constant uint& rows [[buffer(6)]],
                               constant uint& cols [[buffer(7)]],
                               uint3 tid [[thread_position_in_threadgroup]],
                               uint3 group [[threadgroup_position_in_grid]]) {
    threadgroup float partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][ACT_COUNT];
    const uint tx = tid.x, ty = tid.y;
    const uint c = group.x * GRAD_W_COLS + tx;
    const size_t m = group.z;
    const uint K = pool_size(pool);
    float acc[ACT_COUNT] = {};
    if (c < cols) {
        device const float* wc = w + (m * cols + c) * K;
        for (uint b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const size_t i = (m * rows + b) * cols + c;
            float values[ACT_COUNT];
            float s = 0.0f;
            for (uint k = 0; k < ACT_COUNT; ++k) {
                if (k < K) {
                    values[k] = clamp_value(act_value(pool_member(pool, k), x[i]), limit);
                    if (wc[k] != 0.0f) s += wc[k] * values[k];
                }
            }
            const float gate = grad_y[i] * clamp_derivative(s, limit);
            for (uint k = 0; k < ACT_COUNT; ++k)
                if (k < K) acc[k] += gate * values[k];
        }
    }
    for (uint k = 0; k < ACT_COUNT; ++k) partial[ty][tx][k] = acc[k];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (ty < K && c < cols) {
        float total = 0.0f;
        for (uint g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_w[(m * cols + c) * K + ty] = total;
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

inline uint learnable_params(uint kind) {
    return kind == 2 ? PAU_NUMERATOR + PAU_DENOMINATOR : 1;
}

// PAU's value, every quantity divided by |x|^4 when |x| > 1, so that no power of x above the
// first is formed (x^5 overflows f32 above about 5e7): learnable.rs, pau_value.
inline float pau_value(float x, thread const float* p) {
    thread const float* a = p;
    thread const float* b = p + PAU_NUMERATOR;
    const float u = fabs(x);
    if (u > 1.0f) {
        // P / |x|^4 and Q / |x|^4 in powers of r = 1 / |x| (Horner), the x^5 term as x.
        const float r = 1.0f / u;
        const float sign = x < 0.0f ? -1.0f : 1.0f;
        const float even = a[4] + r * r * (a[2] + r * r * a[0]);
        const float odd = sign * (r * (a[3] + r * r * a[1]));
        const float numerator = even + odd + a[5] * x;
        const float q = fabs(b[3]) + r * (fabs(b[2]) + r * (fabs(b[1]) + r * (fabs(b[0]) + r)));
        return numerator / q;
    }
    float numerator = a[5];
    for (int j = 4; j >= 0; --j) numerator = numerator * x + a[j];
    float q = fabs(b[3]);
    for (int k = 2; k >= 0; --k) q = q * u + fabs(b[k]);
    return numerator / (q * u + 1.0f);
}

// PAU's df/dx, with df/dp in dp (10 values), scaled as pau_value: learnable.rs, pau_terms and
// Learnable::derivatives. sign(b_k) at b_k = 0 is +1, so that a coefficient at 0 can move.
inline float pau_derivatives(float x, thread const float* p, thread float* dp) {
    thread const float* a = p;
    thread const float* b = p + PAU_NUMERATOR;
    const float sign = x < 0.0f ? -1.0f : 1.0f;
    const float u = fabs(x);
    // abs_powers[j] = |x|^j / s, s = 1 for |x| <= 1 and |x|^4 above.
    float abs_powers[PAU_NUMERATOR];
    if (u > 1.0f) {
        const float r = 1.0f / u;
        abs_powers[0] = r * r * r * r;
        abs_powers[1] = r * r * r;
        abs_powers[2] = r * r;
        abs_powers[3] = r;
        abs_powers[4] = 1.0f;
        abs_powers[5] = u;
    } else {
        abs_powers[0] = 1.0f;
        for (int j = 1; j < PAU_NUMERATOR; ++j) abs_powers[j] = abs_powers[j - 1] * u;
    }
    float powers[PAU_NUMERATOR];
    for (int j = 0; j < PAU_NUMERATOR; ++j) powers[j] = (j % 2 == 1) ? sign * abs_powers[j] : abs_powers[j];
    float numerator = 0.0f, dpdx = 0.0f;
    for (int j = 0; j < PAU_NUMERATOR; ++j) {
        numerator = numerator + a[j] * powers[j];
        // d x^j / dx = j x^(j - 1), scaled as x^(j - 1) is.
        if (j > 0) dpdx = dpdx + float(j) * a[j] * powers[j - 1];
    }
    float q = abs_powers[0], dq = 0.0f;
    for (int k = 1; k <= PAU_DENOMINATOR; ++k) {
        const float bk = fabs(b[k - 1]);
        q = q + bk * abs_powers[k];
        dq = dq + float(k) * bk * abs_powers[k - 1];
    }
    dq = sign * dq;
    const float value = numerator / q;
    for (int j = 0; j < PAU_NUMERATOR; ++j) dp[j] = powers[j] / q;
    for (int k = 0; k < PAU_DENOMINATOR; ++k) {
        const float s = b[k] < 0.0f ? -1.0f : 1.0f;
        dp[PAU_NUMERATOR + k] = -s * abs_powers[k + 1] * value / q;
    }
    return (dpdx - dq * value) / q;
}

inline float learnable_value(uint kind, float x, thread const float* p) {
    switch (kind) {
    // `+ 0` turns the -0 of a zero slope times a negative x into relu's +0.
    case 0: return x > 0.0f ? x : p[0] * x + 0.0f;
    case 1: return x * logistic(p[0] * x).value;
    case 2: return pau_value(x, p);
    default: return nan_value();
    }
}

// df/dx, with df/dp written into dp (learnable_params(kind) values).
inline float learnable_derivatives(uint kind, float x, thread const float* p, thread float* dp) {
    switch (kind) {
    case 0:
        if (x > 0.0f) {
            dp[0] = 0.0f;
            return 1.0f;
        }
        dp[0] = x;
        return p[0];
    case 1: {
        // s (1 + beta x (1 - s)); d/dbeta = x^2 s (1 - s).
        const float bx = p[0] * x;
        const Pair s = logistic(bx);
        dp[0] = x * x * s.value * s.complement;
        return s.value * (1.0f + bx * s.complement);
    }
    case 2: return pau_derivatives(x, p, dp);
    default: dp[0] = nan_value(); return nan_value();
    }
}

// Column c's parameters copied into p: unit 0 or unit c of model m.
inline void learnable_unit(device const float* params, uint kind, uint units, size_t m, uint c,
                           thread float* p) {
    const uint P = learnable_params(kind);
    device const float* unit = params + (m * units + (units == 1 ? 0 : c)) * P;
    for (uint j = 0; j < LEARNABLE_MAX_PARAMS; ++j)
        if (j < P) p[j] = unit[j];
}

kernel void learnable_fwd_f32(device const float* x [[buffer(0)]],
                              device const float* params [[buffer(1)]],
                              device float* y [[buffer(2)]],
                              constant uint& kind [[buffer(3)]],
                              constant uint& units [[buffer(4)]],
                              constant uint& rows [[buffer(5)]],
                              constant uint& cols [[buffer(6)]],
                              uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    float p[LEARNABLE_MAX_PARAMS] = {};
    learnable_unit(params, kind, units, m, c, p);
    y[i] = learnable_value(kind, x[i], p);
}

kernel void learnable_grad_x_f32(device const float* x [[buffer(0)]],
                                 device const float* params [[buffer(1)]],
                                 device const float* grad_y [[buffer(2)]],
                                 device float* grad_x [[buffer(3)]],
                                 constant uint& kind [[buffer(4)]],
                                 constant uint& units [[buffer(5)]],
                                 constant uint& rows [[buffer(6)]],
                                 constant uint& cols [[buffer(7)]],
                                 uint3 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    const size_t m = pos.z;
    if (c >= cols || r >= rows) return;
    const size_t i = (m * rows + r) * cols + c;
    float p[LEARNABLE_MAX_PARAMS] = {}, dp[LEARNABLE_MAX_PARAMS] = {};
    learnable_unit(params, kind, units, m, c, p);
    grad_x[i] = grad_y[i] * learnable_derivatives(kind, x[i], p, dp);
}

// grad_p[m, c, j] = sum over the rows b of model m of grad_y[b, c] * df/dp_j at x[b, c]: one
// sum per column, whatever the units (the host adds a shared unit's columns). The reduction of
// mixture_grad_w, with P <= LEARNABLE_MAX_PARAMS <= GRAD_W_ROW_GROUPS sums per column, in float
// (Metal has no double); partial holds 16 x 32 x 10 floats, 20 KB. Dispatched as grad_w.
kernel void learnable_grad_p_f32(device const float* x [[buffer(0)]],
                                 device const float* params [[buffer(1)]],
                                 device const float* grad_y [[buffer(2)]],
                                 device float* grad_p [[buffer(3)]],
                                 constant uint& kind [[buffer(4)]],
                                 constant uint& units [[buffer(5)]],
                                 constant uint& rows [[buffer(6)]],
                                 constant uint& cols [[buffer(7)]],
                                 uint3 tid [[thread_position_in_threadgroup]],
                                 uint3 group [[threadgroup_position_in_grid]]) {
    threadgroup float partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][LEARNABLE_MAX_PARAMS];
    const uint tx = tid.x, ty = tid.y;
    const uint c = group.x * GRAD_W_COLS + tx;
    const size_t m = group.z;
    const uint P = learnable_params(kind);
    float acc[LEARNABLE_MAX_PARAMS] = {};
    if (c < cols) {
        float p[LEARNABLE_MAX_PARAMS] = {}, dp[LEARNABLE_MAX_PARAMS] = {};
        learnable_unit(params, kind, units, m, c, p);
        for (uint b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const size_t i = (m * rows + b) * cols + c;
            learnable_derivatives(kind, x[i], p, dp);
            for (uint j = 0; j < LEARNABLE_MAX_PARAMS; ++j)
                if (j < P) acc[j] += grad_y[i] * dp[j];
        }
    }
    for (uint j = 0; j < LEARNABLE_MAX_PARAMS; ++j) partial[ty][tx][j] = acc[j];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (ty < P && c < cols) {
        float total = 0.0f;
        for (uint g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_p[(m * cols + c) * P + ty] = total;
    }
}
