// Featurisation: DFT records → model graphs with target blocks, seeded splits (splits.json), and
// the target tensors of a mini-batch grouped by element pair with masks.
import Autograd
import Formats
import Foundation
import Models
import StageAPI
import Structures

/// One structure ready for the model: its graph (edges = the blocks its Hamiltonian stores) and
/// its DFT Hamiltonian (internal order, eV) as the target.
public struct Sample: Sendable {
    public let graph: StructureGraph
    public let target: BlockOperator
    public var name: String { graph.name }
}

public enum Dataset {
    /// Reads every structure of the given data paths (folders, folders of structures, archives),
    /// in path order then name order. Names must be unique across paths.
    public static func readRecords(_ paths: [URL], limit: Int = 0, log: (String) -> Void = { _ in }) throws -> [DFTRecord] {
        var records: [DFTRecord] = []
        var seen: [String: String] = [:]
        struct Enough: Error {}
        for url in paths {
            let source = try DatasetSource(url: url)
            do {
                try source.forEachRecord { r in
                    if let other = seen[r.name] {
                        throw TrainingError(file: url.path, message: "structure name \"\(r.name)\" also appears in \(other); names must be unique")
                    }
                    seen[r.name] = url.path
                    records.append(r)
                    if limit > 0, records.count >= limit { throw Enough() }
                }
            } catch is Enough { break }
        }
        log("read \(records.count) structure(s) from \(paths.map(\.path).joined(separator: ", "))")
        return records
    }

    /// The orbital basis shared by all records (element symbol → shells); conflicting bases
    /// are an error naming the structure.
    public static func basis(of records: [DFTRecord]) throws -> [String: [Int]] {
        var basis: [String: [Int]] = [:], from: [String: String] = [:]
        for r in records {
            for z in r.structure.species {
                let symbol = Elements.symbol(of: z) ?? "Z\(z)"
                let ls = r.structure.basis[z]!.ls
                if let known = basis[symbol], known != ls {
                    throw TrainingError(file: r.name, field: "elements_orbital_map.\(symbol)", message: "shells \(ls) differ from \(known) in \(from[symbol]!)")
                }
                basis[symbol] = ls; from[symbol] = r.name
            }
        }
        return basis
    }

    /// Graph + target for each record; records without a Hamiltonian are an error.
    public static func samples(_ records: [DFTRecord], config: ModelConfig) throws -> [Sample] {
        try records.map { r in
            guard let h = r.hamiltonian else { throw TrainingError(file: r.name, field: "hamiltonian", message: "no Hamiltonian to train on") }
            if r.spinful { throw TrainingError(file: r.name, field: "spinful", message: "spinful Hamiltonians are not supported by the stage-1 model") }
            if let bad = h.entries.firstIndex(where: { !$0.isFinite }) {
                throw TrainingError(file: r.name, field: "hamiltonian", message: "non-finite entry at position \(bad)")
            }
            return Sample(graph: try StructureGraph(name: r.name, structure: r.structure, keys: h.keys, config: config), target: h)
        }
    }

    /// Mean number of off-site edges per atom (the model's aggregation normaliser).
    public static func averageNeighbors(_ samples: [Sample]) -> Double {
        let atoms = samples.reduce(0) { $0 + $1.graph.structure.atomCount }
        let edges = samples.reduce(0) { $0 + $1.graph.edges.count }
        return atoms > 0 && edges > 0 ? Double(edges) / Double(atoms) : 1
    }

    /// Target blocks of every group over the given samples (for output statistics).
    public static func groupedTargets(_ samples: [Sample]) -> [BlockGroup: [[Double]]] {
        var out: [BlockGroup: [[Double]]] = [:]
        for s in samples {
            let zs = s.graph.structure.atomicNumbers
            for (b, key) in s.target.keys.enumerated() {
                let g = BlockGroup(onsite: key.i == key.j && key.shift == .zero, zi: zs[key.i], zj: zs[key.j])
                out[g, default: []].append(Array(s.target.values(at: b)))
            }
        }
        return out
    }
}

/// Target blocks of a batch, in the order of the batch's rows, with a per-row mask (0 where the
/// DFT file has no such block).
public struct BatchTargets<T: Scalar> {
    public let values: [BlockGroup: Tensor<T>]
    public let masks: [BlockGroup: Tensor<T>]
    /// Number of orbital entries that count (mask 1).
    public let entryCount: Int

    public init(_ batch: GraphBatch<T>, samples: [Sample]) throws {
        var values: [BlockGroup: Tensor<T>] = [:], masks: [BlockGroup: Tensor<T>] = [:]
        var count = 0
        for (g, rows) in batch.groupBlocks {
            let first = batch.graphs[rows[0].structure].structure
            let width = first.basis[g.zi]!.orbitalCount * first.basis[g.zj]!.orbitalCount
            var v = [T](repeating: 0, count: rows.count * width), m = [T](repeating: 0, count: rows.count)
            for (r, row) in rows.enumerated() {
                guard let block = samples[row.structure].target.values(for: row.key) else { continue }
                var k = r * width
                for x in block { v[k] = T(x); k += 1 }
                m[r] = 1
                count += width
            }
            values[g] = try Tensor(v, shape: [rows.count, width])
            masks[g] = try Tensor(m, shape: [rows.count, 1])
        }
        self.values = values; self.masks = masks; entryCount = count
    }
}

/// The structures of each split, by name; stored as splits.json beside the checkpoints.
public struct Splits: Codable, Equatable, Sendable {
    public var seed: UInt64
    public var train: [String]
    public var validation: [String]
    public var test: [String]

    /// A seeded shuffle of the names (sorted first, so input order does not matter), cut by the
    /// fractions. Validation gets at least one structure when there are two or more.
    public static func make(names: [String], fractions: [Double], seed: UInt64) -> Splits {
        var order = names.sorted()
        var rng = SplitMix64(seed: seed ^ 0x5EED_5B17)
        if order.count > 1 { for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) } }
        let n = order.count
        var nTrain = max(1, Int((fractions[0] * Double(n)).rounded()))
        var nVal = Int((fractions[1] * Double(n)).rounded())
        if fractions[1] > 0, nVal == 0, n >= 2 { nVal = 1 }
        nTrain = min(nTrain, n - min(nVal, n - 1))
        nVal = min(nVal, n - nTrain)
        // A requested test split gets at least one structure when there are three or more.
        if fractions[2] > 0, n >= 3, nTrain + nVal == n { nTrain -= 1 }
        let nTest = fractions.count > 2 && fractions[2] > 0 ? n - nTrain - nVal : 0
        return Splits(seed: seed, train: Array(order[0 ..< nTrain]), validation: Array(order[nTrain ..< nTrain + nVal]),
                      test: Array(order[(nTrain + nVal) ..< (nTrain + nVal + nTest)]))
    }

    enum CodingKeys: String, CodingKey { case seed, train, validation, test }

    public func write(to url: URL) throws {
        try AtomicOutput.write(try stableJSON(self, pretty: true), to: url)
    }

    public static func read(_ url: URL) throws -> Splits {
        do { return try JSONDecoder().decode(Splits.self, from: Data(contentsOf: url)) } catch {
            throw TrainingError(file: url.path, message: "not a valid splits file: \(error)")
        }
    }
}
