// BenchAllReduceCommand: `harmose bench-allreduce` (hidden) — times the gradient all-reduce of
// data-parallel training (Cluster's sum of one flat Float buffer) for buffer sizes spanning the
// models' parameter counts. Run it under `mpirun -np N`; tools/bench/mpi.sh does, and
// docs/scaling.md builds its communication model on the numbers. Rank 0 prints.
import ArgumentParser
import Cluster
import Foundation

struct BenchAllReduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-allreduce",
        abstract: "Benchmark the gradient all-reduce (run under mpirun).",
        discussion: """
        Prints one JSON object per buffer size: {"bench": "allreduce", "ranks": N, "floats": n,
        "bytes": 4n, "median_s": …, "min_s": …, "gbytes_per_s": …}. The median is over --repeats
        timed sums after 3 untimed ones; every rank times the same calls.
        Example: mpirun -np 2 harmose bench-allreduce --sizes 1000,100000,1000000
        """,
        shouldDisplay: false
    )

    @Option(help: "Buffer sizes in Float values, comma-separated.") var sizes = "1000,10000,100000,686000,1000000,4000000"
    @Option(help: "Timed repetitions per size.") var repeats = 30

    func run() throws {
        let counts = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }), repeats >= 1 else { throw ValidationError("--sizes must list positive integers, --repeats ≥ 1") }
        let group = Cluster.group()
        for n in counts {
            let buffer = [Float](repeating: 1, count: n)
            for _ in 0 ..< 3 { _ = group.sum(buffer) }
            var times: [Double] = []
            for _ in 0 ..< repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let out = group.sum(buffer)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                precondition(out[n - 1] == Float(group.size), "all-reduce returned \(out[n - 1]), expected \(group.size)")
            }
            times.sort()
            let median = times[times.count / 2]
            if group.isRoot {
                print(String(format: #"{"bench": "allreduce", "ranks": %d, "floats": %d, "bytes": %d, "median_s": %.3e, "min_s": %.3e, "gbytes_per_s": %.3f}"#,
                             group.size, n, 4 * n, median, times[0], Double(4 * n) / median / 1e9))
            }
        }
    }
}
