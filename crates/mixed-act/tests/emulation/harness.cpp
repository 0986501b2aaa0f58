// Runs the eight GPU kernels of src/kernels/mixed_act.cu (built with -DEMULATE_CUDA) or
// src/kernels/mixed_act.metal (-DEMULATE_METAL) on the CPU, for tests/emulated_kernels.rs.
//
// Usage: harness DIR DTYPE MODELS ROWS COLS LIMIT POOL GX GY BX BY
//   reads  DIR/x.bin [models*rows*cols], DIR/ids.bin [models*cols] u32, DIR/w.bin
//          [models*cols*K], DIR/gy.bin [models*rows*cols]
//   writes DIR/y_pn.bin, DIR/gx_pn.bin (phase 2), DIR/y_mx.bin, DIR/gx_mx.bin (phase 1)
//          [models*rows*cols], DIR/gw_mx.bin [models*cols*K]
//   (the learnable activations' kernels: `harness learnable ...`, see learnable_main)
// Floats are raw little-endian f32 or f64 (DTYPE); MODELS is the cohort's size M (1 for one
// model), ROWS the rows of one model; LIMIT is the clamp, "inf" for none; POOL is the mixture's
// pool as Pool::packed gives it (decimal), K its size (the low four bits); (GX, GY) x (BX, BY)
// is the element-wise kernels' grid and block (the Rust side computes it with
// mixed_act::elementwise_geometry, the function the launch code uses). Every grid, the
// element-wise ones and grad-w's, is MODELS deep along z, as src/cuda.rs and src/metal.rs launch
// them.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(EMULATE_CUDA)
#include "cuda_host.h"
#include "../../src/kernels/mixed_act.cu"
#elif defined(EMULATE_METAL)
#include <thread>  // before the shim's address-space macros, which would break it
#include "../../src/kernels/mixed_act.metal"
// The address-space words are macros from here on only inside the kernels' text.
#undef kernel
#undef device
#undef constant
#undef thread
#undef threadgroup
#else
#error "define EMULATE_CUDA or EMULATE_METAL"
#endif

template <typename T>
static std::vector<T> read(const std::string& path, size_t n) {
    std::vector<T> v(n);
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(v.data(), sizeof(T), n, f) != n) {
        std::fprintf(stderr, "harness: cannot read %zu values from %s\n", n, path.c_str());
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

template <typename T>
static void write(const std::string& path, const std::vector<T>& v) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) {
        std::fprintf(stderr, "harness: cannot write %s\n", path.c_str());
        std::exit(2);
    }
    std::fclose(f);
}

struct Geometry {
    unsigned int gx, gy, bx, by;
    unsigned int models;  // the grid's depth
};

#if defined(EMULATE_CUDA)
// The launches of src/cuda.rs.
using Pool = unsigned long long;
template <typename T>
static void run(const std::string& dir, unsigned int rows, unsigned int cols, T limit, Pool pool,
                Geometry g,
                void (*pn_fwd)(const T*, const unsigned int*, T*, unsigned int, unsigned int),
                void (*pn_gx)(const T*, const unsigned int*, const T*, T*, unsigned int, unsigned int),
                void (*mx_fwd)(const T*, const T*, T*, T, Pool, unsigned int, unsigned int),
                void (*mx_gx)(const T*, const T*, const T*, T*, T, Pool, unsigned int, unsigned int),
                void (*mx_gw)(const T*, const T*, const T*, T*, T, Pool, unsigned int, unsigned int)) {
    const size_t n = (size_t)g.models * rows * cols, k = pool & 15;
    const size_t per_neuron = (size_t)g.models * cols;
    auto x = read<T>(dir + "/x.bin", n);
    auto ids = read<unsigned int>(dir + "/ids.bin", per_neuron);
    auto w = read<T>(dir + "/w.bin", per_neuron * k);
    auto gy = read<T>(dir + "/gy.bin", n);
    std::vector<T> y(n), gx(n), gw(per_neuron * k);
    const dim3 grid{g.gx, g.gy, g.models}, block{g.bx, g.by, 1};
    launch(grid, block, [&] { pn_fwd(x.data(), ids.data(), y.data(), rows, cols); });
    write(dir + "/y_pn.bin", y);
    launch(grid, block, [&] { pn_gx(x.data(), ids.data(), gy.data(), gx.data(), rows, cols); });
    write(dir + "/gx_pn.bin", gx);
    launch(grid, block, [&] { mx_fwd(x.data(), w.data(), y.data(), limit, pool, rows, cols); });
    write(dir + "/y_mx.bin", y);
    launch(grid, block,
           [&] { mx_gx(x.data(), w.data(), gy.data(), gx.data(), limit, pool, rows, cols); });
    write(dir + "/gx_mx.bin", gx);
    const dim3 gw_grid{(cols + GRAD_W_COLS - 1) / GRAD_W_COLS, 1, g.models};
    const dim3 gw_block{GRAD_W_COLS, GRAD_W_ROW_GROUPS, 1};
    launch(gw_grid, gw_block,
           [&] { mx_gw(x.data(), w.data(), gy.data(), gw.data(), limit, pool, rows, cols); });
    write(dir + "/gw_mx.bin", gw);
}
#else
// The dispatches of src/metal.rs: the element-wise grid, models deep (threads beyond
// [rows, cols] return at once; threadgroups have depth 1, so a thread's z in the grid is its
// group's), and (32, 16, 1) threadgroups for grad_w, (ceil(cols / 32), 1, models) of them.
template <typename Kernel>
static void each_element(Geometry g, Kernel kernel) {
    for (uint gz = 0; gz < g.models; ++gz)
        for (uint gy = 0; gy < g.gy; ++gy)
            for (uint gx = 0; gx < g.gx; ++gx)
                for (uint ty = 0; ty < g.by; ++ty)
                    for (uint tx = 0; tx < g.bx; ++tx)
                        kernel(uint3{gx * g.bx + tx, gy * g.by + ty, gz});
}

// The dispatch of the reducing kernels (grad-w, grad-p): threadgroups of (32, 16, 1),
// (ceil(cols / 32), 1, models) of them, one group at a time, its threads sharing a barrier.
template <typename Kernel>
static void each_reduction_group(Geometry g, uint cols, Kernel kernel) {
    for (uint gz = 0; gz < g.models; ++gz)
        for (uint group = 0; group < (cols + GRAD_W_COLS - 1) / GRAD_W_COLS; ++group) {
            std::barrier<> barrier(GRAD_W_COLS * GRAD_W_ROW_GROUPS);
            metal::current_threadgroup_barrier = &barrier;
            std::vector<std::thread> threads;
            for (uint ty = 0; ty < GRAD_W_ROW_GROUPS; ++ty)
                for (uint tx = 0; tx < GRAD_W_COLS; ++tx)
                    threads.emplace_back(
                        [&, tx, ty, group, gz] { kernel(uint3{tx, ty, 0}, uint3{group, 0, gz}); });
            for (auto& t : threads) t.join();
        }
}

static void run_metal(const std::string& dir, uint rows, uint cols, float limit, ulong pool,
                      Geometry g) {
    const size_t n = (size_t)g.models * rows * cols, k = pool & 15;
    const size_t per_neuron = (size_t)g.models * cols;
    auto x = read<float>(dir + "/x.bin", n);
    auto ids = read<uint>(dir + "/ids.bin", per_neuron);
    auto w = read<float>(dir + "/w.bin", per_neuron * k);
    auto gy = read<float>(dir + "/gy.bin", n);
    std::vector<float> y(n), gx(n), gw(per_neuron * k);
    each_element(g, [&](uint3 p) { per_neuron_fwd_f32(x.data(), ids.data(), y.data(), rows, cols, p); });
    write(dir + "/y_pn.bin", y);
    each_element(g, [&](uint3 p) {
        per_neuron_grad_x_f32(x.data(), ids.data(), gy.data(), gx.data(), rows, cols, p);
    });
    write(dir + "/gx_pn.bin", gx);
    each_element(g, [&](uint3 p) {
        mixture_fwd_f32(x.data(), w.data(), y.data(), limit, pool, rows, cols, p);
    });
    write(dir + "/y_mx.bin", y);
    each_element(g, [&](uint3 p) {
        mixture_grad_x_f32(x.data(), w.data(), gy.data(), gx.data(), limit, pool, rows, cols, p);
    });
    write(dir + "/gx_mx.bin", gx);
    each_reduction_group(g, cols, [&](uint3 tid, uint3 group) {
        mixture_grad_w_f32(x.data(), w.data(), gy.data(), gw.data(), limit, pool, rows, cols, tid,
                           group);
    });
    write(dir + "/gw_mx.bin", gw);
}
#endif

// The learnable activations' three kernels (`harness learnable DIR DTYPE MODELS ROWS COLS KIND
// UNITS GX GY BX BY`): reads DIR/x.bin and DIR/gy.bin [models*rows*cols] and DIR/params.bin
// [models*units*P]; writes DIR/y_ln.bin, DIR/gx_ln.bin [models*rows*cols] and DIR/gp_ln.bin
// [models*cols*P] (one sum per column: the host adds a shared unit's columns).
struct LearnableArgs {
    std::string dir;
    unsigned int rows, cols, kind, units, params;
};

#if defined(EMULATE_CUDA)
template <typename T>
static void run_learnable(const LearnableArgs& a, Geometry g,
                          void (*fwd)(const T*, const T*, T*, unsigned int, unsigned int,
                                      unsigned int, unsigned int),
                          void (*grad_x)(const T*, const T*, const T*, T*, unsigned int,
                                         unsigned int, unsigned int, unsigned int),
                          void (*grad_p)(const T*, const T*, const T*, T*, unsigned int,
                                         unsigned int, unsigned int, unsigned int)) {
    const size_t n = (size_t)g.models * a.rows * a.cols;
    auto x = read<T>(a.dir + "/x.bin", n);
    auto p = read<T>(a.dir + "/params.bin", (size_t)g.models * a.units * a.params);
    auto gy = read<T>(a.dir + "/gy.bin", n);
    std::vector<T> y(n), gx(n), gp((size_t)g.models * a.cols * a.params);
    const dim3 grid{g.gx, g.gy, g.models}, block{g.bx, g.by, 1};
    launch(grid, block, [&] { fwd(x.data(), p.data(), y.data(), a.kind, a.units, a.rows, a.cols); });
    write(a.dir + "/y_ln.bin", y);
    launch(grid, block, [&] {
        grad_x(x.data(), p.data(), gy.data(), gx.data(), a.kind, a.units, a.rows, a.cols);
    });
    write(a.dir + "/gx_ln.bin", gx);
    const dim3 gp_grid{(a.cols + GRAD_W_COLS - 1) / GRAD_W_COLS, 1, g.models};
    const dim3 gp_block{GRAD_W_COLS, GRAD_W_ROW_GROUPS, 1};
    launch(gp_grid, gp_block, [&] {
        grad_p(x.data(), p.data(), gy.data(), gp.data(), a.kind, a.units, a.rows, a.cols);
    });
    write(a.dir + "/gp_ln.bin", gp);
}
#else
static void run_learnable_metal(const LearnableArgs& a, Geometry g) {
    const size_t n = (size_t)g.models * a.rows * a.cols;
    auto x = read<float>(a.dir + "/x.bin", n);
    auto p = read<float>(a.dir + "/params.bin", (size_t)g.models * a.units * a.params);
    auto gy = read<float>(a.dir + "/gy.bin", n);
    std::vector<float> y(n), gx(n), gp((size_t)g.models * a.cols * a.params);
    uint rows = a.rows, cols = a.cols, kind = a.kind, units = a.units;  // bound as `constant uint&`
    each_element(g, [&](uint3 pos) {
        learnable_fwd_f32(x.data(), p.data(), y.data(), kind, units, rows, cols, pos);
    });
    write(a.dir + "/y_ln.bin", y);
    each_element(g, [&](uint3 pos) {
        learnable_grad_x_f32(x.data(), p.data(), gy.data(), gx.data(), kind, units, rows, cols,
                             pos);
    });
    write(a.dir + "/gx_ln.bin", gx);
    each_reduction_group(g, cols, [&](uint3 tid, uint3 group) {
        learnable_grad_p_f32(x.data(), p.data(), gy.data(), gp.data(), kind, units, rows, cols,
                             tid, group);
    });
    write(a.dir + "/gp_ln.bin", gp);
}
#endif

static int learnable_main(int argc, char** argv) {
    if (argc != 13) {
        std::fprintf(stderr,
                     "usage: harness learnable DIR f32|f64 MODELS ROWS COLS KIND UNITS GX GY BX BY\n");
        return 2;
    }
    const std::string dtype = argv[3];
    LearnableArgs a{argv[2], 0, 0, 0, 0, 0};
    const unsigned int models = std::stoul(argv[4]);
    a.rows = std::stoul(argv[5]);
    a.cols = std::stoul(argv[6]);
    a.kind = std::stoul(argv[7]);
    a.units = std::stoul(argv[8]);
    if (a.kind > 2 || models == 0 || (a.units != 1 && a.units != a.cols)) {
        std::fprintf(stderr, "harness: kind 0-2, at least one model, units 1 or COLS\n");
        return 2;
    }
    a.params = learnable_params(a.kind);
    const Geometry g{(unsigned int)std::stoul(argv[9]), (unsigned int)std::stoul(argv[10]),
                     (unsigned int)std::stoul(argv[11]), (unsigned int)std::stoul(argv[12]),
                     models};
#if defined(EMULATE_CUDA)
    if (dtype == "f32")
        run_learnable<float>(a, g, learnable_fwd_f32, learnable_grad_x_f32, learnable_grad_p_f32);
    else
        run_learnable<double>(a, g, learnable_fwd_f64, learnable_grad_x_f64, learnable_grad_p_f64);
#else
    if (dtype != "f32") {
        std::fprintf(stderr, "harness: Metal kernels are f32 only\n");
        return 2;
    }
    run_learnable_metal(a, g);
#endif
    return 0;
}

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "learnable") return learnable_main(argc, argv);
    if (argc != 12) {
        std::fprintf(stderr,
                     "usage: harness DIR f32|f64 MODELS ROWS COLS LIMIT POOL GX GY BX BY\n");
        return 2;
    }
    const std::string dir = argv[1], dtype = argv[2];
    const unsigned int models = std::stoul(argv[3]);
    const unsigned int rows = std::stoul(argv[4]), cols = std::stoul(argv[5]);
    const double limit = std::strtod(argv[6], nullptr);
    const unsigned long long pool = std::stoull(argv[7]);
    if ((pool & 15) == 0 || (pool & 15) > ACT_COUNT) {
        std::fprintf(stderr, "harness: a pool has 1 to %d members, got %s\n", ACT_COUNT, argv[7]);
        return 2;
    }
    if (models == 0) {
        std::fprintf(stderr, "harness: a cohort has at least one model\n");
        return 2;
    }
    const Geometry g{(unsigned int)std::stoul(argv[8]), (unsigned int)std::stoul(argv[9]),
                     (unsigned int)std::stoul(argv[10]), (unsigned int)std::stoul(argv[11]),
                     models};
#if defined(EMULATE_CUDA)
    if (dtype == "f32")
        run<float>(dir, rows, cols, (float)limit, pool, g, per_neuron_fwd_f32,
                   per_neuron_grad_x_f32, mixture_fwd_f32, mixture_grad_x_f32, mixture_grad_w_f32);
    else
        run<double>(dir, rows, cols, limit, pool, g, per_neuron_fwd_f64, per_neuron_grad_x_f64,
                    mixture_fwd_f64, mixture_grad_x_f64, mixture_grad_w_f64);
#else
    if (dtype != "f32") {
        std::fprintf(stderr, "harness: Metal kernels are f32 only\n");
        return 2;
    }
    run_metal(dir, rows, cols, (float)limit, (ulong)pool, g);
#endif
    return 0;
}
