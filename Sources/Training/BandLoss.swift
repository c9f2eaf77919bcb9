// Band-space losses: errors of a predicted Hamiltonian measured where users look — its bands —
// rather than entry by entry in real space. Owns the configuration (`BandLossConfig`, the
// "band_loss" key of the train and refine configurations), the DFT side per structure
// (`BandReference`: S(R), H(R), E_F), the Hermitian-symmetrised Bloch sum of block operators and
// its adjoint (`BlochBlocks`), the per-structure loss with its exact gradient
// (`BandLoss.structure`), and the autograd op on a batch's block tensors (`BandLoss.callAsFunction`).
//
// Two kinds, both in the well-conditioned part of S(k) (directions with S eigenvalue above
// `overlap_threshold` — the filter `harmose eval` uses, so the loss sees exactly what the band
// error sees):
//  - eigenvalues: at k-points drawn uniformly in the Brillouin zone for each structure and step
//    (molecules: Γ), the generalized eigenvalues ε_n of (H_pred(k), S_DFT(k)) against those of
//    (H_DFT(k), S_DFT(k)), sorted, same index, for the bands n < N_occ(k) + bands_above
//    (N_occ(k) = DFT levels ≤ E_F). Loss = mean (ε_n − ε_n^DFT)² in eV², linear beyond
//    `huber_delta` (Huber: ghost levels tens of eV off must not swamp the gradient). Gradient: ∂ε_n/∂H(k) =
//    ψ_n ψ_nᴴ with S-normalised ψ_n (Hellmann–Feynman; the filter basis X does not depend on H).
//    Degenerate levels: eigenvectors inside a degenerate cluster are arbitrary, so predicted levels
//    closer than `degeneracy_tolerance` (eV) form a cluster whose members share the cluster-mean
//    weight; the gradient is then Σ_clusters w̄_C P_C with P_C the cluster's spectral projector,
//    which does not depend on the arbitrary basis inside the cluster. It is the exact gradient
//    whenever the levels are split by more than the tolerance or the targets inside a cluster
//    agree (the usual case: DFT degeneracies are symmetry degeneracies), and the gradient of the
//    cluster-symmetrised loss otherwise.
//  - lowdin: ‖Xᴴ (H_pred(k) − H_DFT(k)) X‖²_F / kept² with X = U_kept s_kept^{-1/2} — the H error
//    in the Löwdin-orthogonalised, filtered basis, where near-null directions of S no longer hide
//    large errors. Gradient 2 X M Xᴴ / kept², M = Xᴴ ΔH X.
// The model predicts both (R, i, j) and (−R, j, i) blocks independently, so H(k) is the
// Hermitian part of the Bloch sum: every block enters with its transpose at e^{−i2πk·R}, halved
// when its partner block is predicted too (on-site blocks: (B + Bᵀ)/2).
import Autograd
import Foundation
import Linalg
import Models
import Structures

public enum BandLossKind: String, Codable, Sendable, CaseIterable {
    case eigenvalues, lowdin
}

/// The "band_loss" object of the train / refine configurations. Keys are snake_case, all optional.
public struct BandLossConfig: Codable, Equatable, Sendable {
    /// Weight of the band loss added to the real-space loss (0 = off). Both are in eV² for MSE.
    public var weight = 0.0
    public var kind = BandLossKind.eigenvalues
    /// k-points drawn per periodic structure and step (molecules use Γ only).
    public var kpoints = 2
    /// Unoccupied bands above the DFT Fermi level that enter the eigenvalue loss.
    public var bandsAbove = 4
    /// S(k) eigen-directions with eigenvalue ≤ this are removed (as `harmose eval` does).
    public var overlapThreshold = 1e-3
    /// Predicted levels closer than this (eV) are treated as one degenerate cluster.
    public var degeneracyTolerance = 1e-4
    /// Level errors beyond this (eV) count linearly (Huber; 0 = pure squares). An untrained or
    /// poorly conditioned H has ghost levels tens of eV off whose squares would swamp every other
    /// gradient.
    public var huberDelta = 0.5

    public init() {}

    enum CodingKeys: String, CodingKey {
        case weight, kind, kpoints, bandsAbove = "bands_above", overlapThreshold = "overlap_threshold"
        case degeneracyTolerance = "degeneracy_tolerance", huberDelta = "huber_delta"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BandLossConfig()
        weight = try c.decodeIfPresent(Double.self, forKey: .weight) ?? d.weight
        kind = try c.decodeIfPresent(BandLossKind.self, forKey: .kind) ?? d.kind
        kpoints = try c.decodeIfPresent(Int.self, forKey: .kpoints) ?? d.kpoints
        bandsAbove = try c.decodeIfPresent(Int.self, forKey: .bandsAbove) ?? d.bandsAbove
        overlapThreshold = try c.decodeIfPresent(Double.self, forKey: .overlapThreshold) ?? d.overlapThreshold
        degeneracyTolerance = try c.decodeIfPresent(Double.self, forKey: .degeneracyTolerance) ?? d.degeneracyTolerance
        huberDelta = try c.decodeIfPresent(Double.self, forKey: .huberDelta) ?? d.huberDelta
    }

    public var isActive: Bool { weight > 0 }

    public func validate(file: String) throws {
        func bad(_ f: String, _ m: String) -> TrainingError { TrainingError(file: file, field: "band_loss.\(f)", message: m) }
        guard weight >= 0, weight.isFinite else { throw bad("weight", "must be ≥ 0, got \(weight)") }
        guard kpoints >= 1 else { throw bad("kpoints", "must be ≥ 1, got \(kpoints)") }
        guard bandsAbove >= 0 else { throw bad("bands_above", "must be ≥ 0, got \(bandsAbove)") }
        guard overlapThreshold >= 0, overlapThreshold < 1 else { throw bad("overlap_threshold", "must be in [0, 1), got \(overlapThreshold)") }
        guard degeneracyTolerance >= 0 else { throw bad("degeneracy_tolerance", "must be ≥ 0, got \(degeneracyTolerance)") }
        guard huberDelta >= 0, huberDelta.isFinite else { throw bad("huber_delta", "must be ≥ 0, got \(huberDelta)") }
    }
}

/// The DFT side of the band loss for one structure.
public struct BandReference: Sendable {
    public let structure: Structure
    public let hamiltonian: BlockOperator
    public let overlap: BlockOperator?
    public let fermiEnergy: Double
    /// Lattice directions with a non-zero shift in some H block (none for a molecule).
    public let periodic: [Bool]

    public init(structure: Structure, hamiltonian: BlockOperator, overlap: BlockOperator?, fermiEnergy: Double) {
        self.structure = structure; self.hamiltonian = hamiltonian; self.overlap = overlap; self.fermiEnergy = fermiEnergy
        var d = [false, false, false]
        for k in hamiltonian.keys { for a in 0 ..< 3 where k.shift[a] != 0 { d[a] = true } }
        periodic = d
    }

    /// A record's H, S and Fermi level; records without them are an error naming the field.
    public init(record r: DFTRecord) throws {
        guard let h = r.hamiltonian else { throw TrainingError(file: r.name, field: "hamiltonian", message: "the band loss needs the DFT Hamiltonian") }
        guard let ef = r.fermiEnergy, ef.isFinite else {
            throw TrainingError(file: r.name, field: "info.json fermi_energy_eV", message: "the band loss needs the DFT Fermi level")
        }
        if !r.orthogonalBasis, r.overlap == nil {
            throw TrainingError(file: r.name, field: "overlap", message: "the band loss needs the DFT overlap of a non-orthogonal basis")
        }
        self.init(structure: r.structure, hamiltonian: h, overlap: r.orthogonalBasis ? nil : r.overlap, fermiEnergy: ef)
    }

    /// `count` k-points drawn uniformly in the zone along the periodic directions; Γ for a molecule.
    public func sampleKPoints(_ count: Int, rng: inout SplitMix64) -> [Vec3] {
        guard periodic.contains(true) else { return [.zero] }
        return (0 ..< count).map { _ in
            var k = Vec3.zero
            for a in 0 ..< 3 where periodic[a] { k[a] = Double(rng.next() >> 11) / Double(1 << 53) - 0.5 }
            return k
        }
    }
}

/// Hermitian-symmetrised Bloch sums of block operators (blocks ⟨i,0|O|j,R⟩, row-major) and the
/// adjoint map from a Hermitian matrix gradient back to the blocks.
public enum BlochBlocks {
    /// Σ_b c_b [e^{iθ_b} B_b at (i, j) + e^{−iθ_b} B_bᵀ at (j, i)], θ_b = 2πk·R_b, c_b = ½ when
    /// the partner block (−R, j, i) is in `op` (then the two halves average), else 1.
    public static func matrix(_ op: BlockOperator, structure: Structure, k: Vec3) -> ComplexMatrix {
        let n = structure.totalOrbitals, offsets = structure.orbitalOffsets
        var m = ComplexMatrix(rows: n, cols: n)
        m.storage.withUnsafeMutableBufferPointer { out in
            for b in 0 ..< op.blockCount {
                let key = op.keys[b], shape = op.shape(at: b)
                let weight = op.contains(key.transposed) ? 0.5 : 1.0
                let theta = phase(k, key.shift)
                let c = weight * cos(theta), s = weight * sin(theta)
                let r0 = offsets[key.i], c0 = offsets[key.j], base = op.offsets[b]
                for r in 0 ..< shape.x {
                    for col in 0 ..< shape.y {
                        let v = op.entries[base + r * shape.y + col]
                        let o = 2 * ((r0 + r) + (c0 + col) * n), t = 2 * ((c0 + col) + (r0 + r) * n)
                        out[o] += v * c; out[o + 1] += v * s
                        out[t] += v * c; out[t + 1] -= v * s
                    }
                }
            }
        }
        return m
    }

    /// Adds ∂L/∂B_b = 2 c_b Re(G[j-orbital, i-orbital] e^{iθ_b}) for the Hermitian gradient
    /// G = ∂L/∂H(k) into `gradient` (laid out like `op.entries`).
    public static func addAdjoint(_ g: ComplexMatrix, _ op: BlockOperator, structure: Structure, k: Vec3, into gradient: inout [Double]) {
        let n = structure.totalOrbitals, offsets = structure.orbitalOffsets
        for b in 0 ..< op.blockCount {
            let key = op.keys[b], shape = op.shape(at: b)
            let weight = op.contains(key.transposed) ? 0.5 : 1.0
            let theta = phase(k, key.shift)
            let c = 2 * weight * cos(theta), s = 2 * weight * sin(theta)
            let r0 = offsets[key.i], c0 = offsets[key.j], base = op.offsets[b]
            for r in 0 ..< shape.x {
                for col in 0 ..< shape.y {
                    let o = 2 * ((c0 + col) + (r0 + r) * n)
                    gradient[base + r * shape.y + col] += g.storage[o] * c - g.storage[o + 1] * s
                }
            }
        }
    }

    @inline(__always) static func phase(_ k: Vec3, _ shift: LatticeShift) -> Double {
        2 * Double.pi * (k.x * Double(shift.x) + k.y * Double(shift.y) + k.z * Double(shift.z))
    }
}

/// Loss of one structure at its k-points.
public struct StructureBandLoss: Sendable {
    /// The loss (eV²) and its gradient with respect to the predicted blocks' entries.
    public var loss = 0.0
    /// Σ of the per-level loss terms (squares, or Huber terms beyond huber_delta).
    var lossSum = 0.0
    public var gradient: [Double] = []
    /// Σ (ε − ε_DFT)² and the number of (k, band) pairs in the window (eigenvalue kind), for
    /// logging a band RMSE; Σ |ε − ε_DFT| over the same pairs (a band MAE; 0 for the lowdin kind).
    public var squareSum = 0.0
    public var absSum = 0.0
    public var count = 0
}

public final class BandLoss {
    public let config: BandLossConfig
    let references: [String: BandReference]

    public init(config: BandLossConfig, references: [String: BandReference]) {
        self.config = config; self.references = references
    }

    /// References of every record (by name).
    public convenience init(config: BandLossConfig, records: [DFTRecord]) throws {
        var refs: [String: BandReference] = [:]
        for r in records { refs[r.name] = try BandReference(record: r) }
        self.init(config: config, references: refs)
    }

    /// The loss of `predicted` (blocks of `reference.structure`) at `kpoints`, with its gradient.
    public static func structure(predicted: BlockOperator, reference: BandReference, kpoints: [Vec3],
                                 config: BandLossConfig) throws -> StructureBandLoss {
        var out = StructureBandLoss()
        var gradient = [Double](repeating: 0, count: predicted.entries.count)
        struct PerK { var x: ComplexMatrix; var z: ComplexMatrix; var k: Vec3 }
        var perK: [PerK] = []
        let structure = reference.structure
        for k in kpoints {
            let s = reference.overlap.map { BlochBlocks.matrix($0, structure: structure, k: k) } ?? .identity(structure.totalOrbitals)
            let x = try Eigen.filteredMetricBasis(s, threshold: config.overlapThreshold).basis
            let hPred = BlochBlocks.matrix(predicted, structure: structure, k: k)
            let hRef = BlochBlocks.matrix(reference.hamiltonian, structure: structure, k: k)
            switch config.kind {
            case .eigenvalues:
                let ref = try Eigen.hermitian(Eigen.multiply(x, Eigen.multiply(hRef, x), conjugateTransposeLeft: true), vectors: false).values
                let (eps, yOpt) = try Eigen.hermitian(Eigen.multiply(x, Eigen.multiply(hPred, x), conjugateTransposeLeft: true), vectors: true)
                let occupied = ref.filter { $0 <= reference.fermiEnergy }.count
                let window = min(eps.count, occupied + config.bandsAbove)
                var w = [Double](repeating: 0, count: eps.count)
                for nIdx in 0 ..< window {
                    let d = eps[nIdx] - ref[nIdx], delta = config.huberDelta
                    if delta > 0, abs(d) > delta {
                        w[nIdx] = 2 * delta * (d > 0 ? 1 : -1)
                        out.lossSum += 2 * delta * abs(d) - delta * delta
                    } else {
                        w[nIdx] = 2 * d
                        out.lossSum += d * d
                    }
                    out.squareSum += d * d
                    out.absSum += abs(d)
                }
                out.count += window
                // Degenerate clusters share their mean weight (spectral-projector gradient).
                var start = 0
                while start < eps.count {
                    var end = start + 1
                    while end < eps.count, eps[end] - eps[end - 1] < config.degeneracyTolerance { end += 1 }
                    if end - start > 1 {
                        let mean = w[start ..< end].reduce(0, +) / Double(end - start)
                        for q in start ..< end { w[q] = mean }
                    }
                    start = end
                }
                // Z = Y diag(w) Yᴴ in the filtered basis.
                let y = yOpt!
                var yw = y
                for c in 0 ..< y.cols { for r in 0 ..< 2 * y.rows { yw.storage[2 * y.rows * c + r] *= w[c] } }
                let z = Eigen.multiply(yw, conjugateTranspose(y))
                perK.append(PerK(x: x, z: z, k: k))
            case .lowdin:
                var delta = hPred
                for i in 0 ..< delta.storage.count { delta.storage[i] -= hRef.storage[i] }
                let m = Eigen.multiply(x, Eigen.multiply(delta, x), conjugateTransposeLeft: true)
                var z = m
                var ss = 0.0
                for v in m.storage { ss += v * v }
                for i in 0 ..< z.storage.count { z.storage[i] *= 2 }
                out.squareSum += ss
                out.lossSum += ss
                out.count += m.rows * m.cols
                perK.append(PerK(x: x, z: z, k: k))
            }
        }
        let n = Double(max(out.count, 1))
        out.loss = out.lossSum / n
        for p in perK {
            // G = X Z Xᴴ / n.
            var g = Eigen.multiply(p.x, Eigen.multiply(p.z, conjugateTranspose(p.x)))
            for i in 0 ..< g.storage.count { g.storage[i] /= n }
            BlochBlocks.addAdjoint(g, predicted, structure: structure, k: p.k, into: &gradient)
        }
        out.gradient = gradient
        return out
    }

    /// Seed of the validation k-points: the same points every epoch, so validation band errors
    /// of different epochs compare like for like (training draws new points every step).
    public static let validationSeed: UInt64 = 0x5EED_BA4D

    /// Sums of a validation pass's band term: the loss summed over structures, Σ(ε − ε_DFT)²,
    /// Σ|ε − ε_DFT| and the number of levels in them.
    public struct ValidationSums: Sendable {
        public var lossSum = 0.0, squareSum = 0.0, absSum = 0.0, count = 0
        public init() {}
        public mutating func add(_ o: ValidationSums) { lossSum += o.lossSum; squareSum += o.squareSum; absSum += o.absSum; count += o.count }
        /// The four sums as one buffer (for a sum over ranks) and back.
        public var flat: [Double] { [lossSum, squareSum, absSum, Double(count)] }
        public init(flat f: ArraySlice<Double>) {
            let f = Array(f)
            lossSum = f[0]; squareSum = f[1]; absSum = f[2]; count = Int(f[3])
        }
    }

    /// k-points per periodic validation structure and overlap threshold of the band MAE that
    /// `"selection": "band"` watches. The threshold is `harmose eval`'s default (its band MAE
    /// filters S(k) the same way), not the training term's: in the band fine-tunes a validation
    /// band RMSE at the training threshold 2e-4 moved 5× between neighbouring epochs, ruled by a
    /// few near-null S(k) directions (docs/accuracy.md). Eight fixed points instead of the
    /// training term's two make the number steadier still.
    public static let selectionKPoints = 8, selectionOverlapThreshold = 1e-3

    /// The band error that `"selection": "band"` reads: levels of the window (occupied +
    /// `bandsAbove` at each k) at `selectionKPoints` fixed points per structure, S(k) filtered at
    /// `selectionOverlapThreshold`, absolute errors (no Huber) — independent of the training
    /// term's settings, so runs with and without a band loss select by the same number.
    public static func selector(bandsAbove: Int, records: [DFTRecord]) throws -> BandLoss {
        var config = BandLossConfig()
        config.weight = 1
        config.kind = .eigenvalues
        config.kpoints = selectionKPoints
        config.bandsAbove = bandsAbove
        config.overlapThreshold = selectionOverlapThreshold
        config.huberDelta = 0
        return try BandLoss(config: config, records: records)
    }

    /// The band term of a validation unit at the fixed validation k-points.
    public func validation<T: Scalar>(_ blocks: [BlockGroup: Tensor<T>], batch: GraphBatch<T>) throws -> ValidationSums {
        let r = try self(blocks, batch: batch, stepSeed: BandLoss.validationSeed)
        var sums = ValidationSums()
        sums.lossSum = Double(r.loss.item) * Double(batch.graphs.count); sums.squareSum = r.squareSum; sums.absSum = r.absSum; sums.count = r.count
        return sums
    }

    /// The band loss of a batch's predicted blocks (mean over its structures) as a recorded op on
    /// the block tensors; `stepSeed` draws the k-points (the same seed draws the same points).
    /// Also returns Σ(ε − ε_DFT)², Σ|ε − ε_DFT| and their count for logging and selection.
    public func callAsFunction<T: Scalar>(_ blocks: [BlockGroup: Tensor<T>], batch: GraphBatch<T>, stepSeed: UInt64) throws
        -> (loss: Tensor<T>, squareSum: Double, absSum: Double, count: Int) {
        let groups = blocks.keys.sorted()
        let structureCount = batch.graphs.count
        // Per structure: its predicted operator and where each block came from (group, row).
        var operators = [BlockOperator](repeating: BlockOperator(), count: structureCount)
        var sources = [[(BlockGroup, Int)]](repeating: [], count: structureCount)
        for g in groups {
            guard let rows = batch.groupBlocks[g], let t = blocks[g] else { continue }
            let width = t.shape[1]
            for (r, row) in rows.enumerated() {
                let st = batch.graphs[row.structure].structure
                let ni = st.orbitalCount(ofAtom: row.key.i), nj = st.orbitalCount(ofAtom: row.key.j)
                precondition(ni * nj == width, "block width \(width) for a \(ni)×\(nj) block")
                operators[row.structure].append(row.key, rows: ni, cols: nj, values: t.data[(r * width) ..< ((r + 1) * width)].map { Double($0) })
                sources[row.structure].append((g, r))
            }
        }
        var total = 0.0, squareSum = 0.0, absSum = 0.0, count = 0
        var gradients: [BlockGroup: [T]] = [:]
        for g in groups { gradients[g] = [T](repeating: 0, count: blocks[g]!.count) }
        for s in 0 ..< structureCount {
            let name = batch.graphs[s].name
            guard let ref = references[name] else { throw TrainingError(file: name, message: "no DFT reference for the band loss") }
            var rng = SplitMix64(seed: stepSeed ^ BandLoss.nameHash(name))
            let kpoints = ref.sampleKPoints(config.kpoints, rng: &rng)
            let r = try BandLoss.structure(predicted: operators[s], reference: ref, kpoints: kpoints, config: config)
            total += r.loss; squareSum += r.squareSum; absSum += r.absSum; count += r.count
            let op = operators[s]
            for (b, (g, row)) in sources[s].enumerated() {
                let width = blocks[g]!.shape[1]
                let src = op.offsets[b]
                for q in 0 ..< width { gradients[g]![row * width + q] += T(r.gradient[src + q] / Double(structureCount)) }
            }
        }
        let inputs = groups.map { blocks[$0]! }
        let loss = try Tensor<T>.recorded([T(total / Double(max(structureCount, 1)))], shape: [], op: "bandLoss", inputs: inputs) { upstream in
            let u = upstream[0]
            for (i, g) in groups.enumerated() { inputs[i].accumulateGradient(written: gradients[g]!.map { $0 * u }) }
        }
        return (loss, squareSum, absSum, count)
    }

    /// FNV-1a of a structure name (stable across runs, unlike `hashValue`).
    static func nameHash(_ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}

/// Aᴴ as a new matrix.
func conjugateTranspose(_ a: ComplexMatrix) -> ComplexMatrix {
    var t = ComplexMatrix(rows: a.cols, cols: a.rows)
    for c in 0 ..< a.cols {
        for r in 0 ..< a.rows {
            let v = a[r, c]
            t[c, r] = (v.re, -v.im)
        }
    }
    return t
}
