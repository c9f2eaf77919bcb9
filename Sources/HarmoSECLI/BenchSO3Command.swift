// `harmose bench-so3`: times the SO3 kernels (tools/bench/so3.sh runs it on a release build).
import ArgumentParser
import Benchmarks
import SO3

struct BenchSO3Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-so3",
        abstract: "Time the equivariant tensor products and the exact SO(3) kernels.",
        discussion: """
        channelwise: DeepH-E3's default tensor product (64x0e+32x1o+16x2e+8x3o+8x4e ⊗ spherical \
        harmonics l ≤ 4, Float32, per-edge weights, the fused op) forward and backward (gradients of \
        x1 and the weights, as in training), with medians, edges/s and GFLOP/s (as the kernel \
        executes them, and the conventional count of 2 per CG non-zero per channel) against this \
        machine's sgemm rate measured in the same run; the kernels alone on preallocated buffers; \
        the memory floor (a memset of the output's size), which bounds any forward pass; then \
        harmonics and Wigner D throughput.
        fully-connected: the same irreps through FullyConnectedTensorProduct (→ the same irreps, \
        e3nn's FullyConnectedTensorProduct shape), shared weights and per-edge weights.
        e3nn's side: tools/bench_so3_e3nn.py and tools/bench_so3_fctp_e3nn.py (tools/bench/so3.sh \
        runs both); docs/benchmarks-so3.md has the measurements.
        Build with -c release for meaningful numbers.
        """,
        shouldDisplay: false)

    enum Variant: String, ExpressibleByArgument, CaseIterable {
        case channelwise, fullyConnected = "fully-connected", all
    }

    @Option(help: "Edges in one tensor-product batch.") var edges = 2000
    @Option(help: "Timed repetitions (the median is reported).") var repeats = 5
    @Option(help: "Which benchmarks: channelwise (with the exact kernels), fully-connected, or all.") var variant: Variant = .all
    @Flag(help: "Fully connected: skip the per-edge-weights run (it needs edges × weights floats, 160 MB at 2000 edges).")
    var sharedOnly = false

    func run() throws {
        guard edges > 0, repeats > 0 else { throw ValidationError("--edges and --repeats must be positive") }
        if variant != .fullyConnected {
            print(try TensorProductBenchmark.run(edges: edges, repeats: repeats))
            print(try ExactKernelBenchmark.run())
        }
        if variant != .channelwise {
            print(try FullyConnectedTensorProductBenchmark.run(edges: edges, repeats: repeats, perEdge: !sharedOnly))
        }
    }
}
