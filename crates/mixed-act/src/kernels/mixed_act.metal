// Fused per-neuron activation kernels for SmartMixed: Metal (MSL).
//
// Compiled at run time with new_library_with_source (src/metal.rs). This file parallels
// src/kernels/mixed_act.cu section by section and line by line where the languages allow:
// change both together. Differences, all forced by Metal: no double (f32 kernels only, and
// grad_w sums in float), no expm1 (written below from exp and log), no grid-stride loop (one
// thread per element in a 2-D grid, bounds-checked), thread indices come in as kernel arguments.
// Metal cannot be compiled on Linux; `make metal-check` only proves that this is valid C++
// under a shim (typos, types, undefined names), not that it is valid Metal.
//
// Layout: x, grad_y and every [rows, cols] output are contiguous and row-major; ids is [cols]
// u32; w and grad_w are [cols, 6]. Every kernel's name and buffer count are listed in
// src/kernels.rs (KERNELS) and checked by a unit test and at each launch.

#include <metal_stdlib>
using namespace metal;

#define ACT_COUNT 6
#define LEAKY_RELU_SLOPE 0.01f
#define ELU_ALPHA 1.0f
#define SELU_ALPHA 1.6732632423543772f
#define SELU_LAMBDA 1.0507009873554805f

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

// ---- the six functions and their derivatives (see Activation::value / derivative) ---------
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

// Pre-clamp mixture sum s = sum_k w_k C(f_k(x)) and slope sum_k w_k C'(f_k(x)) f_k'(x).
// Zero weights are skipped, as on the CPU (equal to the dense sum whenever f_k(x) is finite).
inline void mixture_terms(float x, device const float* w, float limit, thread float* sum,
                          thread float* slope) {
    float s = 0.0f, d = 0.0f;
    for (uint k = 0; k < ACT_COUNT; ++k) {
        if (w[k] != 0.0f) {
            const float v = act_value(k, x);
            s += w[k] * clamp_value(v, limit);
            d += w[k] * clamp_derivative(v, limit) * act_derivative(k, x);
        }
    }
    *sum = s;
    *slope = d;
}

// ---- element-wise kernels: a 2-D grid over [rows, cols] --------------------------------
// x over columns, y over rows, as in CUDA; Metal needs no grid-stride loop (the host
// dispatches ceil(rows / by) groups along y), so each thread bounds-checks its element.

// ---- phase 2: per-neuron fixed functions -------------------------------------------------

kernel void per_neuron_fwd_f32(device const float* x [[buffer(0)]],
                               device const uint* ids [[buffer(1)]],
                               device float* y [[buffer(2)]],
                               constant uint& rows [[buffer(3)]],
                               constant uint& cols [[buffer(4)]],
                               uint2 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    if (c >= cols || r >= rows) return;
    const uint i = r * cols + c;
    y[i] = act_value(ids[c], x[i]);
}

kernel void per_neuron_grad_x_f32(device const float* x [[buffer(0)]],
                                  device const uint* ids [[buffer(1)]],
                                  device const float* grad_y [[buffer(2)]],
                                  device float* grad_x [[buffer(3)]],
                                  constant uint& rows [[buffer(4)]],
                                  constant uint& cols [[buffer(5)]],
                                  uint2 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    if (c >= cols || r >= rows) return;
    const uint i = r * cols + c;
    grad_x[i] = grad_y[i] * act_derivative(ids[c], x[i]);
}

// ---- phase 1: the hard mixture -----------------------------------------------------------

kernel void mixture_fwd_f32(device const float* x [[buffer(0)]],
                            device const float* w [[buffer(1)]],
                            device float* y [[buffer(2)]],
                            constant float& limit [[buffer(3)]],
                            constant uint& rows [[buffer(4)]],
                            constant uint& cols [[buffer(5)]],
                            uint2 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    if (c >= cols || r >= rows) return;
    const uint i = r * cols + c;
    float sum, slope;
    mixture_terms(x[i], w + c * ACT_COUNT, limit, &sum, &slope);
    y[i] = clamp_value(sum, limit);
}

kernel void mixture_grad_x_f32(device const float* x [[buffer(0)]],
                               device const float* w [[buffer(1)]],
                               device const float* grad_y [[buffer(2)]],
                               device float* grad_x [[buffer(3)]],
                               constant float& limit [[buffer(4)]],
                               constant uint& rows [[buffer(5)]],
                               constant uint& cols [[buffer(6)]],
                               uint2 pos [[thread_position_in_grid]]) {
    const uint c = pos.x, r = pos.y;
    if (c >= cols || r >= rows) return;
    const uint i = r * cols + c;
    float sum, slope;
    mixture_terms(x[i], w + c * ACT_COUNT, limit, &sum, &slope);
    grad_x[i] = grad_y[i] * clamp_derivative(sum, limit) * slope;
}

// grad_w[c, k] = sum over rows b of grad_y[b, c] * C'(s[b, c]) * C(f_k(x[b, c])).
//
// The same atomics-free layout as the CUDA kernel: a threadgroup of
// GRAD_W_COLS x GRAD_W_ROW_GROUPS threads owns GRAD_W_COLS whole columns; thread (tx, ty)
// sums rows ty, ty + GRAD_W_ROW_GROUPS, ... of column tx; then the first six rows of threads
// add the partial sums of one k each, in ty order. Float sums (Metal has no double).
// Dispatch threadgroups of (32, 16) and ceil(cols / 32) of them.
#define GRAD_W_COLS 32
#define GRAD_W_ROW_GROUPS 16

kernel void mixture_grad_w_f32(device const float* x [[buffer(0)]],
                               device const float* w [[buffer(1)]],
                               device const float* grad_y [[buffer(2)]],
                               device float* grad_w [[buffer(3)]],
                               constant float& limit [[buffer(4)]],
                               constant uint& rows [[buffer(5)]],
                               constant uint& cols [[buffer(6)]],
                               uint2 tid [[thread_position_in_threadgroup]],
                               uint2 group [[threadgroup_position_in_grid]]) {
    threadgroup float partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][ACT_COUNT];
    const uint tx = tid.x, ty = tid.y;
    const uint c = group.x * GRAD_W_COLS + tx;
    float acc[ACT_COUNT] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (c < cols) {
        device const float* wc = w + c * ACT_COUNT;
        for (uint b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const uint i = b * cols + c;
            float values[ACT_COUNT];
            float s = 0.0f;
            for (uint k = 0; k < ACT_COUNT; ++k) {
                values[k] = clamp_value(act_value(k, x[i]), limit);
                if (wc[k] != 0.0f) s += wc[k] * values[k];
            }
            const float gate = grad_y[i] * clamp_derivative(s, limit);
            for (uint k = 0; k < ACT_COUNT; ++k) acc[k] += gate * values[k];
        }
    }
    for (uint k = 0; k < ACT_COUNT; ++k) partial[ty][tx][k] = acc[k];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (ty < ACT_COUNT && c < cols) {
        float total = 0.0f;
        for (uint g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_w[c * ACT_COUNT + ty] = total;
    }
}
