// Entry-wise errors of a predicted H against the reference, accumulated so structures can be added
// one at a time and merged (per structure, per dataset, later per MPI rank).
import Foundation
import Structures

/// Count, Σ|e|, Σe² and max|e| of errors e = predicted − reference (eV).
public struct ErrorStats: Equatable, Sendable {
    public private(set) var count = 0
    public private(set) var sumAbs = 0.0
    public private(set) var sumSquares = 0.0
    public private(set) var maxAbs = 0.0

    public init() {}

    @inline(__always) public mutating func add(_ e: Double) {
        let a = abs(e)
        count += 1
        sumAbs += a
        sumSquares += e * e
        if a > maxAbs { maxAbs = a }
    }

    public mutating func merge(_ o: ErrorStats) {
        count += o.count
        sumAbs += o.sumAbs
        sumSquares += o.sumSquares
        maxAbs = max(maxAbs, o.maxAbs)
    }

    /// Mean absolute error in eV (NaN without entries).
    public var mae: Double { count == 0 ? .nan : sumAbs / Double(count) }
    /// Root-mean-square error in eV.
    public var rmse: Double { count == 0 ? .nan : (sumSquares / Double(count)).squareRoot() }
}

/// Letters of angular momenta for labels.
func lLetter(_ l: Int) -> String { l < 7 ? ["s", "p", "d", "f", "g", "h", "i"][l] : "l\(l)" }

/// One orbital shell of a species: element, 0-based shell index within its basis, and l.
public struct ShellLabel: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var atomicNumber: Int
    public var shell: Int
    public var l: Int
    public init(atomicNumber: Int, shell: Int, l: Int) { self.atomicNumber = atomicNumber; self.shell = shell; self.l = l }
    public static func < (a: ShellLabel, b: ShellLabel) -> Bool { (a.atomicNumber, a.shell) < (b.atomicNumber, b.shell) }
    /// "O#3(p)": shell 3 (0-based) of oxygen's basis, a p shell.
    public var description: String { "\(Elements.symbol(of: atomicNumber) ?? "Z\(atomicNumber)")#\(shell)(\(lLetter(l)))" }
}

/// An unordered pair of shells: block (i, j) and its Hermitian partner (j, i) count together.
public struct ShellPair: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var first: ShellLabel
    public var second: ShellLabel
    public init(_ a: ShellLabel, _ b: ShellLabel) { (first, second) = a <= b ? (a, b) : (b, a) }
    public static func < (a: ShellPair, b: ShellPair) -> Bool { (a.first, a.second) < (b.first, b.second) }
    public var description: String { "\(first)-\(second)" }
    /// "H-O": the element pair, lighter element first.
    public var elementPair: String {
        "\(Elements.symbol(of: first.atomicNumber) ?? "?")-\(Elements.symbol(of: second.atomicNumber) ?? "?")"
    }
    /// "s-p": the l pair, lower l first.
    public var lPair: String { "\(lLetter(min(first.l, second.l)))-\(lLetter(max(first.l, second.l)))" }
}

/// Where the single largest error occurred.
public struct WorstEntry: Equatable, Sendable {
    public var structure: String
    public var key: BlockKey
    public var row: Int
    public var col: Int
    public var reference: Double
    public var predicted: Double
    public var error: Double { predicted - reference }
}

/// Errors of one or many structures, broken down by block kind and shells.
public struct HamiltonianErrors: Equatable, Sendable {
    public var overall = ErrorStats()
    /// Blocks with R = 0 and i = j.
    public var onsite = ErrorStats()
    public var offsite = ErrorStats()
    public var byShellPair: [ShellPair: ErrorStats] = [:]
    public var worst: WorstEntry?
    /// Reference blocks the prediction lacks (their entries count with a predicted value of 0 —
    /// that is what a consumer of the predicted file would use).
    public var missingBlocks = 0
    /// Predicted blocks without a reference block (not in the entry errors; they do enter the
    /// predicted bands).
    public var extraBlocks = 0

    public init() {}

    public var byElementPair: [String: ErrorStats] { group(\.elementPair) }
    public var byLPair: [String: ErrorStats] { group(\.lPair) }

    private func group(_ label: (ShellPair) -> String) -> [String: ErrorStats] {
        var out: [String: ErrorStats] = [:]
        // In key order: sums over a Dictionary's own order would round differently in every process.
        for (pair, stats) in byShellPair.sorted(by: { $0.key < $1.key }) { out[label(pair), default: ErrorStats()].merge(stats) }
        return out
    }

    public mutating func merge(_ o: HamiltonianErrors) {
        overall.merge(o.overall); onsite.merge(o.onsite); offsite.merge(o.offsite)
        for (k, v) in o.byShellPair { byShellPair[k, default: ErrorStats()].merge(v) }
        if let w = o.worst, worst == nil || abs(w.error) > abs(worst!.error) { worst = w }
        missingBlocks += o.missingBlocks
        extraBlocks += o.extraBlocks
    }

    /// Errors of `prediction` against `reference` (both on `structure`'s atoms and orbitals,
    /// shapes already checked by the readers). `sample` sees every (reference, predicted) pair.
    public static func compare(reference: BlockOperator, prediction: BlockOperator, structure: Structure, name: String,
                               sample: inout ReservoirSample) -> HamiltonianErrors {
        var out = HamiltonianErrors()
        // Per species: the shell index and l of each orbital.
        var shellOf: [Int: [Int]] = [:], lOf: [Int: [Int]] = [:]
        for (z, shells) in structure.basis {
            var s: [Int] = [], ls: [Int] = []
            for (k, l) in shells.ls.enumerated() { for _ in 0 ..< 2 * l + 1 { s.append(k); ls.append(l) } }
            shellOf[z] = s; lOf[z] = ls
        }
        // Dense per-(species, species) tables of shell-pair stats avoid a hash per entry.
        var tables: [SIMD2<Int>: [ErrorStats]] = [:]
        var worstAbs = -1.0
        for b in 0 ..< reference.blockCount {
            let key = reference.keys[b]
            let shape = reference.shape(at: b)
            let zi = structure.atomicNumbers[key.i], zj = structure.atomicNumbers[key.j]
            let nsi = structure.basis[zi]!.ls.count, nsj = structure.basis[zj]!.ls.count
            let species = SIMD2(zi, zj)
            var table = tables.removeValue(forKey: species) ?? [ErrorStats](repeating: ErrorStats(), count: nsi * nsj)
            let si = shellOf[zi]!, sj = shellOf[zj]!
            let ref = reference.values(at: b)
            let pred = prediction.values(for: key)
            if pred == nil { out.missingBlocks += 1 }
            let onsite = key.shift == .zero && key.i == key.j
            var blockStats = ErrorStats()
            var r0 = ref.startIndex, p0 = pred?.startIndex ?? 0
            for r in 0 ..< shape.x {
                for c in 0 ..< shape.y {
                    let d = reference.entries[r0]
                    let p = pred == nil ? 0 : prediction.entries[p0]
                    r0 += 1; p0 += 1
                    let e = p - d
                    blockStats.add(e)
                    table[si[r] * nsj + sj[c]].add(e)
                    sample.add(d, p)
                    if abs(e) > worstAbs {
                        worstAbs = abs(e)
                        out.worst = WorstEntry(structure: name, key: key, row: r, col: c, reference: d, predicted: p)
                    }
                }
            }
            out.overall.merge(blockStats)
            if onsite { out.onsite.merge(blockStats) } else { out.offsite.merge(blockStats) }
            tables[species] = table
        }
        for key in prediction.keys where !reference.contains(key) { out.extraBlocks += 1 }
        for (species, table) in tables {
            let (zi, zj) = (species.x, species.y)
            let li = structure.basis[zi]!.ls, lj = structure.basis[zj]!.ls
            for a in 0 ..< li.count {
                for c in 0 ..< lj.count where table[a * lj.count + c].count > 0 {
                    let pair = ShellPair(ShellLabel(atomicNumber: zi, shell: a, l: li[a]), ShellLabel(atomicNumber: zj, shell: c, l: lj[c]))
                    out.byShellPair[pair, default: ErrorStats()].merge(table[a * lj.count + c])
                }
            }
        }
        return out
    }

    /// The same without a parity sample.
    public static func compare(reference: BlockOperator, prediction: BlockOperator, structure: Structure, name: String) -> HamiltonianErrors {
        var none = ReservoirSample(capacity: 0)
        return compare(reference: reference, prediction: prediction, structure: structure, name: name, sample: &none)
    }
}
