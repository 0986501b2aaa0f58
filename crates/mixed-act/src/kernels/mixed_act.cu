// Fused per-neuron activation kernels for SmartMixed: CUDA.
//
// Compiled at run time with NVRTC (src/cuda.rs) and checked on every CI run by `make ptx-check`.
// src/kernels/mixed_act.metal holds the same kernels in MSL, section by section and line by line
// where the languages allow: change both together. The formulas follow src/activation.rs (the
// one place they are defined); the tests compare every kernel against candle-op references.
//
// Layout: x, grad_y and every [rows, cols] output are contiguous and row-major; ids is [cols]
// u32; w and grad_w are [cols, 6]; rows * cols < 2^32 (checked by the host).
//
// Every kernel's name and argument count are listed in src/kernels.rs (KERNELS); a unit test
// checks that list against this file and the Metal one, and each launch checks it too.

#define ACT_COUNT 6
#define LEAKY_RELU_SLOPE 0.01
#define ELU_ALPHA 1.0
#define SELU_ALPHA 1.6732632423543772
#define SELU_LAMBDA 1.0507009873554805

// ---- math per element type ---------------------------------------------------------------

template <typename T> struct Math;

template <> struct Math<float> {
    static __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __device__ __forceinline__ float expm1(float x) { return expm1f(x); }
    static __device__ __forceinline__ float tanh(float x) { return tanhf(x); }
    static __device__ __forceinline__ float nan() { return __int_as_float(0x7fc00000); }
};

template <> struct Math<double> {
    static __device__ __forceinline__ double exp(double x) { return ::exp(x); }
    static __device__ __forceinline__ double expm1(double x) { return ::expm1(x); }
    static __device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
    static __device__ __forceinline__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

// ---- the six functions and their derivatives (see Activation::value / derivative) ---------
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

// Pre-clamp mixture sum s = sum_k w_k C(f_k(x)) and slope sum_k w_k C'(f_k(x)) f_k'(x).
// Zero weights are skipped, as on the CPU (equal to the dense sum whenever f_k(x) is finite).
template <typename T>
__device__ __forceinline__ void mixture_terms(T x, const T* w, T limit, T* sum, T* slope) {
    T s = T(0), d = T(0);
#pragma unroll
    for (unsigned int k = 0; k < ACT_COUNT; ++k) {
        if (w[k] != T(0)) {
            const T v = act_value<T>(k, x);
            s += w[k] * clamp_value(v, limit);
            d += w[k] * clamp_derivative(v, limit) * act_derivative<T>(k, x);
        }
    }
    *sum = s;
    *slope = d;
}

// ---- element-wise kernels: a 2-D grid over [rows, cols] --------------------------------
// x runs over columns, so that a thread reads its neuron's id or weights once and a warp reads
// consecutive columns of a row; y runs over rows in a grid-stride loop (gridDim.y is capped at
// 65535). No integer division per element. Launch geometry: kernels.rs, elementwise_geometry.

#define FOR_EACH_ROW(r)                                                                     \
    for (unsigned int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows;                  \
         r += gridDim.y * blockDim.y)

// ---- phase 2: per-neuron fixed functions -------------------------------------------------

template <typename T>
__device__ void per_neuron_fwd(const T* x, const unsigned int* ids, T* y, unsigned int rows,
                               unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const unsigned int id = ids[c];
    FOR_EACH_ROW(r) {
        const size_t i = (size_t)r * cols + c;
        y[i] = act_value<T>(id, x[i]);
    }
}

template <typename T>
__device__ void per_neuron_grad_x(const T* x, const unsigned int* ids, const T* grad_y, T* grad_x,
                                  unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const unsigned int id = ids[c];
    FOR_EACH_ROW(r) {
        const size_t i = (size_t)r * cols + c;
        grad_x[i] = grad_y[i] * act_derivative<T>(id, x[i]);
    }
}

// ---- phase 1: the hard mixture -----------------------------------------------------------

template <typename T>
__device__ void mixture_fwd(const T* x, const T* w, T* y, T limit, unsigned int rows,
                            unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    T wc[ACT_COUNT];
#pragma unroll
    for (unsigned int k = 0; k < ACT_COUNT; ++k) wc[k] = w[(size_t)c * ACT_COUNT + k];
    FOR_EACH_ROW(r) {
        const size_t i = (size_t)r * cols + c;
        T sum, slope;
        mixture_terms<T>(x[i], wc, limit, &sum, &slope);
        y[i] = clamp_value(sum, limit);
    }
}

template <typename T>
__device__ void mixture_grad_x(const T* x, const T* w, const T* grad_y, T* grad_x, T limit,
                               unsigned int rows, unsigned int cols) {
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    T wc[ACT_COUNT];
#pragma unroll
    for (unsigned int k = 0; k < ACT_COUNT; ++k) wc[k] = w[(size_t)c * ACT_COUNT + k];
    FOR_EACH_ROW(r) {
        const size_t i = (size_t)r * cols + c;
        T sum, slope;
        mixture_terms<T>(x[i], wc, limit, &sum, &slope);
        grad_x[i] = grad_y[i] * clamp_derivative(sum, limit) * slope;
    }
}

// grad_w[c, k] = sum over rows b of grad_y[b, c] * C'(s[b, c]) * C(f_k(x[b, c])).
//
// Reduction without atomics, so that every run gives the same bits: a block of
// GRAD_W_COLS x GRAD_W_ROW_GROUPS threads owns GRAD_W_COLS whole columns. Thread (tx, ty)
// walks rows ty, ty + GRAD_W_ROW_GROUPS, ... of column tx (a warp reads one row's consecutive
// columns, so loads coalesce) and keeps six running sums in double; then the first six rows of
// threads add the GRAD_W_ROW_GROUPS partial sums of one k each, in ty order. Both orders are
// fixed by the thread layout, not by scheduling. Launch with blockDim (32, 16) and
// gridDim.x = ceil(cols / 32).
#define GRAD_W_COLS 32
#define GRAD_W_ROW_GROUPS 16

template <typename T>
__device__ void mixture_grad_w(const T* x, const T* w, const T* grad_y, T* grad_w, T limit,
                               unsigned int rows, unsigned int cols) {
    __shared__ double partial[GRAD_W_ROW_GROUPS][GRAD_W_COLS][ACT_COUNT];
    const unsigned int tx = threadIdx.x, ty = threadIdx.y;
    const unsigned int c = blockIdx.x * GRAD_W_COLS + tx;
    double acc[ACT_COUNT] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    if (c < cols) {
        const T* wc = w + (size_t)c * ACT_COUNT;
        for (unsigned int b = ty; b < rows; b += GRAD_W_ROW_GROUPS) {
            const size_t i = (size_t)b * cols + c;
            T values[ACT_COUNT];
            T s = T(0);
#pragma unroll
            for (unsigned int k = 0; k < ACT_COUNT; ++k) {
                values[k] = clamp_value(act_value<T>(k, x[i]), limit);
                if (wc[k] != T(0)) s += wc[k] * values[k];
            }
            const T gate = grad_y[i] * clamp_derivative(s, limit);
#pragma unroll
            for (unsigned int k = 0; k < ACT_COUNT; ++k) acc[k] += (double)(gate * values[k]);
        }
    }
#pragma unroll
    for (unsigned int k = 0; k < ACT_COUNT; ++k) partial[ty][tx][k] = acc[k];
    __syncthreads();
    if (ty < ACT_COUNT && c < cols) {
        double total = 0.0;
        for (unsigned int g = 0; g < GRAD_W_ROW_GROUPS; ++g) total += partial[g][tx][ty];
        grad_w[(size_t)c * ACT_COUNT + ty] = (T)total;
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
                                           unsigned int rows, unsigned int cols) {
    mixture_fwd<float>(x, w, y, limit, rows, cols);
}

extern "C" __global__ void mixture_fwd_f64(const double* x, const double* w, double* y,
                                           double limit, unsigned int rows, unsigned int cols) {
    mixture_fwd<double>(x, w, y, limit, rows, cols);
}

extern "C" __global__ void mixture_grad_x_f32(const float* x, const float* w, const float* grad_y,
                                              float* grad_x, float limit, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_x<float>(x, w, grad_y, grad_x, limit, rows, cols);
}

extern "C" __global__ void mixture_grad_x_f64(const double* x, const double* w,
                                              const double* grad_y, double* grad_x, double limit,
                                              unsigned int rows, unsigned int cols) {
    mixture_grad_x<double>(x, w, grad_y, grad_x, limit, rows, cols);
}

extern "C" __global__ void mixture_grad_w_f32(const float* x, const float* w, const float* grad_y,
                                              float* grad_w, float limit, unsigned int rows,
                                              unsigned int cols) {
    mixture_grad_w<float>(x, w, grad_y, grad_w, limit, rows, cols);
}

extern "C" __global__ void mixture_grad_w_f64(const double* x, const double* w,
                                              const double* grad_y, double* grad_w, double limit,
                                              unsigned int rows, unsigned int cols) {
    mixture_grad_w<double>(x, w, grad_y, grad_w, limit, rows, cols);
}
