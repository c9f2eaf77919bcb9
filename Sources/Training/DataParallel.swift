// Data parallelism across processes (MPI ranks) for the training loops. Every rank reads the whole
// dataset, holds identical parameters and draws the same global batch order; of each global batch
// it computes the members at the positions its partition owns, with the loss normalised by the
// global batch's entry count, so the sum over ranks of the local gradients is the gradient of the
// single-process loss. One all-reduce per step on one flat buffer (all trainable gradients, then
// the rank's share of the loss) gives every rank the same gradient and loss, hence the same
// clipping, optimiser step and early-stopping decisions. With one process everything here is the
// identity and the arithmetic is exactly the single-process code's.
//
// Bound (tested by Tests/ClusterTests under mpirun -np 2): a rank sums its own edges'
// contributions to each parameter gradient before the all-reduce adds the ranks, so gradients
// differ from the single-process ones by Float round-off of the summation order (~1e-7
// relative). Adam divides each gradient by its running RMS, which turns that round-off into
// parameter differences of up to ~1e-5…1e-4 where a gradient is nearly zero: asserted are losses
// within 1e-4 relative and parameters within 1e-4 absolute for stage 1 (observed 2.3e-6 and
// 2.6e-5), 2e-4 for the hybrid (observed 3.2e-5 and 8.7e-5).
import Autograd
import Foundation
import Models
import StageAPI
import Structures

struct DataParallelStep {
    let group: any ProcessGroup
    /// Orbital entries with a target, per sample (what BatchTargets counts); empty with one process.
    private let entries: [Int]

    init(group: any ProcessGroup, samples: [Sample], config: ModelConfig) throws {
        self.group = group
        entries = group.size == 1 ? [] : try samples.map { s in
            try BatchTargets<Float>(try GraphBatch<Float>([s.graph], config: config), samples: [s]).entryCount
        }
    }

    /// The positions of a global batch that this rank computes.
    func shard(_ positions: [Int]) -> [Int] {
        group.size == 1 ? positions : positions.enumerated().filter { group.partition.owns($0.offset) }.map(\.element)
    }

    /// Entry count of the whole global batch (nil with one process: the batch's own count is it).
    func globalEntries(_ members: [Int]) -> Int? {
        group.size == 1 ? nil : members.reduce(0) { $0 + entries[$1] }
    }

    /// Sums the local gradients of `sets` and the local loss over the ranks, loads the result
    /// into every set and returns the global loss. A rank with no member passes zeros.
    func allReduce(_ sets: [ParameterSet<Float>], localLoss: Float) throws -> Float {
        var flat: [Float] = []
        for s in sets { flat += s.flattenGradients() }
        flat.append(localLoss)
        flat = group.sum(flat)
        let loss = flat.removeLast()
        var offset = 0
        for s in sets {
            let n = s.trainable.reduce(0) { $0 + $1.count }
            try s.loadGradients(Array(flat[offset ..< offset + n]))
            offset += n
        }
        return loss
    }

    /// An epoch's error sums over the ranks (absolute, squared, entries, structures, edges).
    func reduce(_ m: EpochMetrics) -> EpochMetrics {
        guard group.size > 1 else { return m }
        let s = group.sum([m.mae, m.rmse, Double(m.entries), Double(m.structures), Double(m.edges)])
        var out = m
        out.mae = s[0]; out.rmse = s[1]; out.entries = Int(s[2]); out.structures = Int(s[3]); out.edges = Int(s[4])
        return out
    }

    /// Fails unless every rank read the same structures: ranks on machines that see different
    /// files would otherwise train on different data without noticing.
    static func checkSameData(_ records: [DFTRecord], group: any ProcessGroup, what: String) throws {
        guard group.size > 1 else { return }
        var h = SHA256()
        for r in records {
            h.update(r.name)
            r.hamiltonian?.entries.withUnsafeBytes { h.update($0) }
            r.structure.positions.withUnsafeBytes { h.update($0) }
        }
        let mine = h.finalizeHex()
        let all = group.allGather(mine)
        if let other = all.firstIndex(where: { $0 != all[0] }) {
            throw TrainingError(file: what, message: "rank \(other) read different data than rank 0 (\(records.count) structures here, SHA-256 \(all[other].prefix(12))… vs \(all[0].prefix(12))…): every rank must see the same files")
        }
    }
}
