// Bands: band structures and densities of states from real-space operators H(R), S(R). Owns the
// Bloch sums O(k) = Σ_R e^{i2πk·R} O(R) (k fractional, R in lattice units, blocks ⟨i,0|O|j,R⟩ —
// the convention in Structures.swift), the generalized eigenproblem H(k) c = ε S(k) c with an
// optional filter for near-singular overlaps, k-paths (DeepH-dock K_PATH files and automatic
// standard paths), Fermi level / gap analysis, Monkhorst–Pack DOS, and the band.h5 / dos.h5 /
// CSV / SVG outputs. k-points are solved in parallel (DispatchQueue.concurrentPerform) with
// OpenBLAS held at one thread.
import Dispatch
import Foundation
import Linalg
import Structures

public enum BandsError: Error, CustomStringConvertible {
    case missingHamiltonian(record: String)
    case spinfulUnsupported(record: String)
    case atomOutOfRange(source: String, key: BlockKey, atomCount: Int)
    case blockShapeMismatch(source: String, key: BlockKey, rows: Int, cols: Int, expectedRows: Int, expectedCols: Int)
    case nonFiniteValue(source: String, key: BlockKey)
    case kpathSyntax(file: String, line: Int, message: String)
    case kpathUnreadable(file: String, reason: String)
    case emptyKPath(file: String)
    case kpathTooLong(file: String, points: Int?, limit: Int)
    case invalidMesh(String)
    case invalidSigma(Double)
    case eigensolverFailed(k: Vec3, underlying: EigenError)
    case noStandardPath(String)
    case sparseSolverFailed(structure: String, kIndex: Int, k: Vec3, cause: String)
    case invalidKPM(String)

    public var description: String {
        switch self {
        case .missingHamiltonian(let r): return "\(r): no Hamiltonian (hamiltonian.h5) to compute bands from"
        case .spinfulUnsupported(let r): return "\(r): spinful (spin–orbit) Hamiltonians are not supported by the band solver yet"
        case .atomOutOfRange(let s, let k, let n): return "\(s): block \(k) refers to an atom outside 0..<\(n) of the structure"
        case .blockShapeMismatch(let s, let k, let r, let c, let er, let ec):
            return "\(s): block \(k) is \(r)×\(c) but the structure's orbitals need \(er)×\(ec) "
                + "(the operator does not belong to this structure or basis)"
        case .nonFiniteValue(let s, let k): return "\(s): block \(k) contains NaN or Inf"
        case .kpathSyntax(let f, let l, let m): return "\(f): line \(l): \(m)"
        case .kpathUnreadable(let f, let r): return "\(f): cannot read the k-path file (\(r))"
        case .kpathTooLong(let f, let n, let limit):
            return "\(f): \(n.map { "\($0)" } ?? "more than \(Int.max)") k-points, over the limit of \(limit) (lower the point counts or --points-per-inverse-angstrom)"
        case .emptyKPath(let f): return "\(f): no k-path segments (expected lines `N k1 k2 k3 k1' k2' k3' LABEL1 LABEL2`)"
        case .invalidMesh(let m): return "k-mesh: \(m)"
        case .invalidSigma(let s): return "DOS smearing sigma must be a positive number of eV, got \(s)"
        case .eigensolverFailed(let k, let e):
            return "eigensolver failed at k = (\(k.x), \(k.y), \(k.z)): \(e)"
        case .noStandardPath(let m): return "automatic k-path: \(m); give one with --kpath"
        case .invalidKPM(let m): return "kernel polynomial DOS: \(m)"
        case .sparseSolverFailed(let s, let q, let k, let c):
            return "\(s): sparse eigensolver failed at k-point \(q) (k = (\(k.x), \(k.y), \(k.z))): \(c); nothing was written"
        }
    }
}

/// A structure with H(R) and S(R) checked against its orbital basis, ready for Bloch sums.
public struct BlochSystem: Sendable {
    /// k-points solved at once unless a caller asks for more: 1, for now. Debian's OpenBLAS 0.3.21
    /// read past the end of its operands on GPAW dzp hBN 2×2 (99 kept S(k) directions):
    /// `harmose eval --workers 2` on hbn-2x2-0000 segfaulted in every run, the pipeline's
    /// single-threaded evaluate in 1 of 8, BandErrorTests in 2 of 10. Since Linalg gives every
    /// OpenBLAS operand slack behind its end (`Eigen.slack`), `--workers 2` ran 0 of 6 and the
    /// stage 0 of 14; the parallel default comes back after a longer soak. Pipelines keep the cores
    /// busy by running stages side by side.
    public static let defaultSolveWorkers = 1
    public let structure: Structure
    public let orbitalCount: Int
    let hamiltonian: BlockOperator
    let overlap: BlockOperator?
    /// Per block: (row offset, col offset) in the unit-cell orbital list, and whether the
    /// Hermitian partner block is absent (then its contribution is added as the conjugate).
    private let hPlacement: [(Int, Int, Bool)]
    private let sPlacement: [(Int, Int, Bool)]

    /// `overlap == nil` means an orthogonal basis (S = 1). `hamiltonianSource`/`overlapSource`
    /// name the files in errors.
    public init(structure: Structure, hamiltonian: BlockOperator, overlap: BlockOperator?,
                hamiltonianSource: String = "hamiltonian", overlapSource: String = "overlap") throws {
        self.structure = structure
        orbitalCount = structure.totalOrbitals
        self.hamiltonian = hamiltonian
        self.overlap = overlap
        hPlacement = try Self.place(hamiltonian, in: structure, source: hamiltonianSource)
        sPlacement = try overlap.map { try Self.place($0, in: structure, source: overlapSource) } ?? []
    }

    /// Builds the system of a DFT record (its own H, or `hamiltonian` in its place — e.g. a
    /// predicted one).
    public init(record: DFTRecord, hamiltonian replacement: BlockOperator? = nil, hamiltonianSource: String? = nil) throws {
        if record.spinful { throw BandsError.spinfulUnsupported(record: record.name) }
        guard let h = replacement ?? record.hamiltonian else { throw BandsError.missingHamiltonian(record: record.name) }
        try self.init(structure: record.structure, hamiltonian: h,
                      overlap: record.orthogonalBasis ? nil : record.overlap,
                      hamiltonianSource: hamiltonianSource ?? "\(record.name)/hamiltonian",
                      overlapSource: "\(record.name)/overlap")
    }

    private static func place(_ op: BlockOperator, in s: Structure, source: String) throws -> [(Int, Int, Bool)] {
        let offsets = s.orbitalOffsets, counts = s.orbitalCounts
        var out: [(Int, Int, Bool)] = []
        out.reserveCapacity(op.blockCount)
        for (b, key) in op.keys.enumerated() {
            guard key.i >= 0, key.i < s.atomCount, key.j >= 0, key.j < s.atomCount else {
                throw BandsError.atomOutOfRange(source: source, key: key, atomCount: s.atomCount)
            }
            let shape = op.shape(at: b)
            guard shape.x == counts[key.i], shape.y == counts[key.j] else {
                throw BandsError.blockShapeMismatch(source: source, key: key, rows: shape.x, cols: shape.y,
                                                    expectedRows: counts[key.i], expectedCols: counts[key.j])
            }
            if op.values(at: b).contains(where: { !$0.isFinite }) { throw BandsError.nonFiniteValue(source: source, key: key) }
            out.append((offsets[key.i], offsets[key.j], !op.contains(key.transposed)))
        }
        return out
    }

    /// Directions along which some H block has a non-zero lattice shift: the directions in which
    /// the bands disperse. A molecule has none.
    public var dispersiveDirections: [Bool] {
        var d = [false, false, false]
        for k in hamiltonian.keys {
            if k.shift.x != 0 { d[0] = true }
            if k.shift.y != 0 { d[1] = true }
            if k.shift.z != 0 { d[2] = true }
        }
        return d
    }

    public var isOrthogonal: Bool { overlap == nil }

    /// The real-space operators (after the structure checks), e.g. to build modified systems.
    public var hamiltonianOperator: BlockOperator { hamiltonian }
    public var overlapOperator: BlockOperator? { overlap }

    /// H(k) = Σ_R e^{i2πk·R} H(R) as a full Hermitian matrix.
    public func hamiltonian(at k: Vec3) -> ComplexMatrix { blochSum(hamiltonian, hPlacement, k) }

    /// S(k); the identity for an orthogonal basis.
    public func overlap(at k: Vec3) -> ComplexMatrix {
        guard let overlap else { return .identity(orbitalCount) }
        return blochSum(overlap, sPlacement, k)
    }

    private func blochSum(_ op: BlockOperator, _ placement: [(Int, Int, Bool)], _ k: Vec3) -> ComplexMatrix {
        let n = orbitalCount
        var m = ComplexMatrix(rows: n, cols: n)
        m.storage.withUnsafeMutableBufferPointer { out in
            op.entries.withUnsafeBufferPointer { e in
                for b in 0 ..< op.blockCount {
                    let key = op.keys[b]
                    let phase = 2 * Double.pi * (k.x * Double(key.shift.x) + k.y * Double(key.shift.y) + k.z * Double(key.shift.z))
                    let c = cos(phase), s = sin(phase)
                    let shape = op.shape(at: b)
                    let (r0, c0, addConjugate) = placement[b]
                    let base = op.offsets[b], rows = shape.x, cols = shape.y
                    // Column-major output: walk each block column so writes are contiguous.
                    for col in 0 ..< cols {
                        var o = 2 * (r0 + (c0 + col) * n)
                        var p = base + col
                        for _ in 0 ..< rows {
                            let v = e[p]
                            out[o] += v * c
                            out[o + 1] += v * s
                            o += 2
                            p += cols
                        }
                    }
                    if addConjugate {
                        // Partner block (−R, j, i) = this blockᵀ with phase e^{−i2πk·R}: its
                        // column r is this block's row r, contiguous in the row-major input.
                        for r in 0 ..< rows {
                            var o = 2 * (c0 + (r0 + r) * n)
                            var p = base + r * cols
                            for _ in 0 ..< cols {
                                let v = e[p]
                                out[o] += v * c
                                out[o + 1] -= v * s
                                o += 2
                                p += 1
                            }
                        }
                    }
                }
            }
        }
        return m
    }

    /// Eigenvalues (ascending, eV) at one k-point. With `overlapThreshold`, S(k) directions with
    /// eigenvalue below it are removed first (see `Eigen.generalizedHermitianFiltered`).
    public func eigenvalues(at k: Vec3, overlapThreshold: Double? = nil) throws -> (values: [Double], dropped: Int) {
        let h = hamiltonian(at: k)
        do {
            if let overlapThreshold {
                let r = try Eigen.generalizedHermitianFiltered(h, overlap(at: k), threshold: overlapThreshold, vectors: false)
                return (r.values, r.droppedDirections)
            }
            if overlap == nil { return (try Eigen.hermitian(h, vectors: false).values, 0) }
            return (try Eigen.generalizedHermitian(h, overlap(at: k), vectors: false).values, 0)
        } catch let e as EigenError {
            throw BandsError.eigensolverFailed(k: k, underlying: e)
        }
    }

    /// Eigenvalues at many k-points, solved in parallel (OpenBLAS itself is always single-threaded). Returns
    /// band-major energies [band][k], truncated to the band count every k-point has (filtering
    /// may drop different numbers of directions at different k), and the largest drop.
    /// `workers` bounds how many k-points are solved at once (default `defaultSolveWorkers`); 1
    /// solves them in order on the calling thread.
    public func eigenvalues(at kpoints: [Vec3], overlapThreshold: Double? = nil,
                            workers: Int = BlochSystem.defaultSolveWorkers) throws -> (bands: [[Double]], maxDropped: Int) {
        let nk = kpoints.count
        var perK = [[Double]](repeating: [], count: nk)
        var dropped = [Int](repeating: 0, count: nk)
        var firstError: (Int, Error)?
        let lock = NSLock()
        perK.withUnsafeMutableBufferPointer { values in
            dropped.withUnsafeMutableBufferPointer { drops in
                let values = values, drops = drops
                // Worker w takes k-points w, w + width, …: an even spread, since cost per k is flat.
                let width = max(1, min(workers, nk))
                ConcurrentLoop.perform(iterations: width) { w in
                    for q in stride(from: w, to: nk, by: width) {
                        do {
                            let r = try eigenvalues(at: kpoints[q], overlapThreshold: overlapThreshold)
                            values[q] = r.values
                            drops[q] = r.dropped
                        } catch {
                            lock.lock()
                            if firstError == nil || firstError!.0 > q { firstError = (q, error) }
                            lock.unlock()
                            return
                        }
                    }
                }
            }
        }
        if let (_, error) = firstError { throw error }
        let bandCount = perK.map(\.count).min() ?? 0
        var bands = [[Double]](repeating: [Double](repeating: 0, count: nk), count: bandCount)
        for q in 0 ..< nk { for b in 0 ..< bandCount { bands[b][q] = perK[q][b] } }
        return (bands, dropped.max() ?? 0)
    }
}
