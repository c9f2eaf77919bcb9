// BenchAutogradCommand: `harmose bench-autograd` (hidden) — times forward+backward of the Autograd
// engine on the two reference workloads and measures the machine's sgemm peak in the same run, so
// the achieved GFLOP/s can be stated as a fraction of it. Used by tools/bench/autograd.sh, which
// puts the numbers side by side with PyTorch (tools/bench_autograd_torch.py).
import ArgumentParser
import Autograd
import Foundation
import Linalg

struct BenchAutogradCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-autograd",
        abstract: "Benchmark the autodiff engine (MLP and message passing, forward+backward).",
        discussion: """
        Prints one JSON object per line: {"bench": name, "median_s": …, "gflops": …, …}.
        FLOPs count the matrix products only (2·m·n·k each, forward and backward); elementwise work
        is not counted. OPENBLAS_NUM_THREADS sets the thread count of BLAS and of the engine.
        """,
        shouldDisplay: false
    )

    @Option(help: "Timed repetitions per benchmark (the median is reported).") var repeats = 15
    @Option(help: "Rows of the MLP input.") var rows = 10_000
    @Option(help: "MLP width.") var width = 256
    @Option(help: "Edges of the message-passing graph.") var edges = 100_000
    @Option(help: "Nodes of the message-passing graph.") var nodes = 10_000
    @Option(help: "Node feature width of the message-passing benchmark.") var features = 64
    @Option(help: "Thread budget of the engine's kernels (default: every core). OpenBLAS itself always runs on one thread.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        guard repeats >= 1, rows >= 1, width >= 1, edges >= 1, nodes >= 1, features >= 1 else {
            throw ValidationError("all sizes and --repeats must be ≥ 1")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        try ExecutionContext(threads: threads).run { try runBenchmarks() }
    }

    func runBenchmarks() throws {
        let peak = sgemmPeak()
        emit(["bench": "sgemm_peak", "gflops": peak.gflops, "shape": peak.shape, "threads": Double(BLASThreads.count),
              "blas_core": BLASKernels.coreName, "gflops_per_cpu_s": peak.gflopsPerCPUSecond])
        emitMLPProductRates()
        try mlpBench(peak: peak.gflops)
        try messagePassingBench(peak: peak.gflops)
    }

    /// Median wall time of `body` over `repeats` runs after one warm-up; `cpuPerRun` receives the
    /// process CPU time (user + system, all threads) per run — on a shared machine it shows the
    /// work done even when the wall time is inflated by other jobs.
    func median(cpuPerRun: UnsafeMutablePointer<Double>? = nil, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        let cpu0 = processCPUSeconds()
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        cpuPerRun?.pointee = (processCPUSeconds() - cpu0) / Double(repeats)
        times.sort()
        return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }

    /// GFLOP/s, or 0 when the time is too short to measure (JSON has no infinity).
    func rate(_ flops: Double, _ seconds: Double) -> Double { seconds > 0 ? flops / seconds / 1e9 : 0 }

    func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    func emit(_ fields: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Best median sgemm rate over square sizes and the MLP's own product shape, by wall time and
    /// by process CPU time (GFLOP per CPU-second: robust to other jobs sharing the machine).
    func sgemmPeak() -> (gflops: Double, shape: String, gflopsPerCPUSecond: Double) {
        var best = (0.0, "", 0.0)
        for (m, n, k) in [(1024, 1024, 1024), (2048, 2048, 2048), (rows, width, width)] {
            let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
            var c = [Float](repeating: 0, count: m * n)
            var cpu = 0.0
            let t = median(cpuPerRun: &cpu) {
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            BLAS.gemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                        }
                    }
                }
            }
            let flops = 2 * Double(m) * Double(n) * Double(k)
            if flops / t / 1e9 > best.0 { best.0 = flops / t / 1e9; best.1 = "\(m)x\(n)x\(k)" }
            best.2 = max(best.2, rate(flops, cpu))
        }
        return best
    }

    /// BLAS alone on the MLP's three product shapes (forward x·W, dX = dY·Wᵀ, dW = Xᵀ·dY), through
    /// the same path the engine uses: the floor for the MLP benchmark.
    func emitMLPProductRates() {
        let x = [Float](repeating: 0.5, count: rows * width), w = [Float](repeating: 0.25, count: width * width)
        var out = [Float](repeating: 0, count: rows * width), dw = [Float](repeating: 0, count: width * width)
        var fields: [String: Any] = ["bench": "sgemm_mlp_products", "threads": threads]
        let flops = 2 * Double(rows) * Double(width) * Double(width)
        for (label, ta, tb, m, n, k) in [("x_w", false, false, rows, width, width), ("dy_wT", false, true, rows, width, width),
                                         ("xT_dy", true, false, width, width, rows)] {
            var cpu = 0.0
            let t = median(cpuPerRun: &cpu) {
                x.withUnsafeBufferPointer { xp in
                    w.withUnsafeBufferPointer { wp in
                        if label == "xT_dy" {
                            dw.withUnsafeMutableBufferPointer { cp in
                                Parallel.gemmForBenchmark(transA: ta, transB: tb, m: m, n: n, k: k, a: xp.baseAddress!, b: xp.baseAddress!, c: cp.baseAddress!)
                            }
                        } else {
                            out.withUnsafeMutableBufferPointer { cp in
                                Parallel.gemmForBenchmark(transA: ta, transB: tb, m: m, n: n, k: k, a: xp.baseAddress!, b: wp.baseAddress!, c: cp.baseAddress!)
                            }
                        }
                    }
                }
            }
            fields[label + "_gflops"] = rate(flops, t)
            fields[label + "_gflops_per_cpu_s"] = rate(flops, cpu)
        }
        emit(fields)
    }

    func mlpBench(peak: Double) throws {
        let params = ParameterSet<Float>(seed: 1)
        let mlp = try MLP(params, name: "mlp", widths: [width, width, width, width], activation: .silu)
        let x = Tensor<Float>.randomNormal([rows, width], seed: 2)
        var forward = 0.0, cpu = 0.0
        let total = try median(cpuPerRun: &cpu) {
            params.zeroGrad()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss = try mlp(x).square().sum()
            forward = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            try loss.backward()
        }
        // 3 products forward; backward: 3 weight gradients + 2 input gradients (x needs none).
        let flops = 8 * 2 * Double(rows) * Double(width) * Double(width)
        emit(["bench": "mlp", "threads": threads, "shape": "\(rows)x\(width), 3 layers, SiLU", "median_s": total, "last_forward_s": forward, "cpu_s_per_run": cpu, "gflops_per_cpu_s": rate(flops, cpu),
              "gflops": flops / total / 1e9, "percent_of_sgemm_peak": 100 * flops / total / 1e9 / peak])
    }

    func messagePassingBench(peak: Double) throws {
        let params = ParameterSet<Float>(seed: 3)
        let mlp = try MLP(params, name: "msg", widths: [2 * features, 2 * features, features], activation: .silu)
        let h = Tensor<Float>.randomNormal([nodes, features], seed: 4, requiresGrad: true)
        var rng = SplitMix64(seed: 5)
        let src = try RowIndex((0..<edges).map { _ in Int(rng.next() % UInt64(nodes)) }, rowCount: nodes)
        let dst = try RowIndex((0..<edges).map { _ in Int(rng.next() % UInt64(nodes)) }, rowCount: nodes)
        var cpu = 0.0
        let total = try median(cpuPerRun: &cpu) {
            params.zeroGrad(); h.zeroGrad()
            let message = try mlp(Tensor.concat([h.gatherRows(src), h.gatherRows(dst)], axis: 1))
            let loss = try message.scatterAdd(dst).square().sum()
            try loss.backward()
        }
        // Two layers (2F→2F, 2F→F), each: forward, weight gradient, input gradient.
        let f = Double(features)
        let flops = 3 * 2 * Double(edges) * (2 * f * 2 * f + 2 * f * f)
        emit(["bench": "message_passing", "threads": threads, "shape": "E=\(edges), N=\(nodes), F=\(features): gather(src,dst)→MLP[\(2 * features),\(2 * features),\(features)]→scatter-add",
              "median_s": total, "cpu_s_per_run": cpu, "gflops_per_cpu_s": rate(flops, cpu), "gflops": flops / total / 1e9, "percent_of_sgemm_peak": 100 * flops / total / 1e9 / peak])
    }
}
