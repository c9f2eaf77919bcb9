// The sparse shift-invert solver against dense LAPACK on a tiled DFT supercell (MoS₂ 2×2 from
// GPAW, tiled 3×3 → 1 476 orbitals): eigenvalues, residuals, S-orthonormality, a shift exactly
// on an eigenvalue, the over-complete-basis filter against the dense filter, and bad input.
import Bands
import Formats
import Foundation
import HDF5Kit
import Linalg
import Sparse
import Structures
import TestSupport
import XCTest

final class SparseBandsTests: XCTestCase {
    private struct Tiled: Sendable { let system: BlochSystem, fermi: Double }
    /// Built once per size for all tests of the class.
    private static let cached = Memo<Int, Tiled>()

    /// MoS₂ 2×2 tiled n×n (n = 3: 108 atoms, 1 476 orbitals; n = 2: 656) and its Fermi energy.
    private func supercell(_ n: Int = 2) throws -> (BlochSystem, Double) {
        let t = try Self.cached.value(n) {
            let (system, fermi) = try tiled(n)
            return Tiled(system: system, fermi: fermi)
        }
        return (t.system, t.fermi)
    }

    private func tiled(_ n: Int) throws -> (BlochSystem, Double) {
        let record = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        let big = Supercell.make(record.structure, operators: [record.hamiltonian, record.overlap], repeats: SIMD3(n, n, 1))
        let system = try BlochSystem(structure: big.structure, hamiltonian: big.operators[0]!, overlap: big.operators[1])
        return (system, try XCTUnwrap(record.fermiEnergy))
    }

    /// The K dense eigenvalues nearest `target`, ascending.
    private func nearest(_ values: [Double], _ count: Int, to target: Double) -> [Double] {
        Array(values.sorted { abs($0 - target) < abs($1 - target) }.prefix(count)).sorted()
    }

    func testSparseBlochSumEqualsDense() throws {
        let (system, _) = try supercell(3)
        let bloch = SparseBloch(system)
        let k = Vec3(0.13, -0.27, 0)
        let dense = system.hamiltonian(at: k)
        let values = bloch.values([(.hamiltonian, 1), (.overlap, -0.5)], at: k)
        let s = system.overlap(at: k)
        var covered = 0.0, worst = 0.0
        for r in 0 ..< bloch.pattern.size {
            for p in bloch.pattern.rowStart[r] ..< bloch.pattern.rowStart[r + 1] {
                let c = bloch.pattern.columns[p]
                let h = dense[r, c], o = s[r, c]
                worst = max(worst, abs(values[2 * p] - (h.re - 0.5 * o.re)), abs(values[2 * p + 1] - (h.im - 0.5 * o.im)))
                covered += h.re * h.re + h.im * h.im
            }
        }
        XCTAssertLessThan(worst, 1e-12)
        // Every non-zero of the dense H(k) is in the pattern.
        let total = dense.storage.reduce(0) { $0 + $1 * $1 }
        XCTAssertEqual(covered, total, accuracy: 1e-9 * total)
        // Products from the blocks equal the dense product.
        var x = [Double](repeating: 0, count: 2 * system.orbitalCount)
        var rng = SplitMix(state: 3)
        for i in x.indices { x[i] = Double(rng.next() % 1000) / 1000 - 0.5 }
        var y = x
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { bloch.multiply(.overlap, at: k, xp.baseAddress!, $0.baseAddress!) } }
        let xm = ComplexMatrix(rows: system.orbitalCount, cols: 1, storage: x)
        XCTAssertLessThan(maxAbsDifference(Eigen.multiply(s, xm).storage, y), 1e-12)
    }

    func testSparseEigenvaluesEqualDenseNearFermiLevel() throws {
        for (size, k) in [(3, Vec3(0.21, 0.07, 0)), (2, Vec3(0, 0, 0))] {
            let (system, ef) = try supercell(size)
            XCTAssertEqual(system.orbitalCount, 164 * size * size)
            let solver = ShiftInvertSolver(system)
            let dense = try system.eigenvalues(at: k).values
            let r = try solver.solve(at: k, options: SparseSolverOptions(bandCount: 24, target: ef))
            XCTAssertLessThan(maxAbsDifference(r.values, nearest(dense, 24, to: ef)), 1e-8, "k = \(k)")
            XCTAssertLessThan(r.residuals.max()!, 1e-8)
            // S-orthonormal eigenvectors: ψᴴ S ψ = I.
            let gram = Eigen.multiply(r.vectors, Eigen.multiply(system.overlap(at: k), r.vectors), conjugateTransposeLeft: true)
            XCTAssertLessThan(maxAbsDifference(gram.storage, ComplexMatrix.identity(24).storage), 1e-10)
            XCTAssertEqual(r.shift, ef)
            XCTAssertEqual(r.droppedDirections, 0)
        }
    }

    func testShiftExactlyOnAnEigenvalue() throws {
        let (system, ef) = try supercell()
        let k = Vec3(0.1, 0.2, 0)
        let dense = try system.eigenvalues(at: k).values
        let on = nearest(dense, 1, to: ef)[0]
        let r = try ShiftInvertSolver(system).solve(at: k, options: SparseSolverOptions(bandCount: 10, target: on))
        XCTAssertLessThan(maxAbsDifference(r.values, nearest(dense, 10, to: on)), 1e-8)
        XCTAssertLessThan(r.residuals.max()!, 1e-8)
        XCTAssertTrue(r.values.contains { abs($0 - on) < 1e-8 })
    }

    /// An over-complete basis: every Mo gets a ghost copy χ = φ_Mo + η ξ (ξ orthonormal, decoupled,
    /// ⟨ξ|H|ξ⟩ = e), so S has 15 directions per ghost with eigenvalue ≈ η²/2. Dropping S(k)
    /// directions below the threshold must give exactly the dense filter's eigenvalues, drop
    /// the same number of directions, and recover the original bands near E_F.
    func testOverCompleteBasisFilterMatchesDenseFilter() throws {
        let record = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        let original = try BlochSystem(record: record)
        let s0 = record.structure
        let ghosts = (0 ..< s0.atomCount).filter { s0.atomicNumbers[$0] == 42 }.prefix(2)
        var numbers = s0.atomicNumbers, positions = s0.positions
        var ghostOf: [Int: Int] = [:] // original atom → ghost atom
        for a in ghosts { ghostOf[a] = numbers.count; numbers.append(s0.atomicNumbers[a]); positions.append(s0.positions[a]) }
        let structure = Structure(lattice: s0.lattice, atomicNumbers: numbers, positions: positions, basis: s0.basis)
        let eta2 = 1e-5, ghostLevel = 40.0
        func extend(_ op: BlockOperator, diagonal: Double) -> BlockOperator {
            var out = BlockOperator()
            for b in 0 ..< op.blockCount {
                let key = op.keys[b], shape = op.shape(at: b), v = Array(op.values(at: b))
                for i in [key.i] + (ghostOf[key.i].map { [$0] } ?? []) {
                    for j in [key.j] + (ghostOf[key.j].map { [$0] } ?? []) {
                        var w = v
                        if i == j, i >= s0.atomCount, key.shift == .zero {
                            for d in 0 ..< shape.x { w[d * shape.y + d] += diagonal }
                        }
                        out.append(BlockKey(shift: key.shift, i: i, j: j), rows: shape.x, cols: shape.y, values: w)
                    }
                }
            }
            return out
        }
        let system = try BlochSystem(structure: structure, hamiltonian: extend(record.hamiltonian!, diagonal: eta2 * ghostLevel),
                                     overlap: extend(record.overlap!, diagonal: eta2))
        let ef = try XCTUnwrap(record.fermiEnergy)
        let threshold = 1e-4
        let k = Vec3(0.25, 0.1, 0)
        let dense = try Eigen.generalizedHermitianFiltered(system.hamiltonian(at: k), system.overlap(at: k), threshold: threshold, vectors: false)
        XCTAssertEqual(dense.droppedDirections, 30)
        let r = try ShiftInvertSolver(system).solve(at: k, options: SparseSolverOptions(bandCount: 16, target: ef, overlapThreshold: threshold))
        XCTAssertEqual(r.droppedDirections, 30)
        XCTAssertLessThan(maxAbsDifference(r.values, nearest(dense.values, 16, to: ef)), 1e-8)
        XCTAssertLessThan(r.residuals.max()!, 1e-8)
        // The physics survives: the original (complete-basis) bands near E_F, to the size of
        // the removed admixture.
        let physical = nearest(try original.eigenvalues(at: k).values, 16, to: ef)
        XCTAssertLessThan(maxAbsDifference(r.values, physical), 5e-3)
    }

    func testBadInputsNameStructureKPointAndCause() throws {
        let (system, ef) = try supercell()
        let path = KPath(segments: [KPathSegment(count: 2, start: Vec3(0, 0, 0), end: Vec3(0.5, 0, 0), startLabel: "G", endLabel: "M")])
        func failure(_ options: SparseSolverOptions, _ sys: BlochSystem? = nil) -> String {
            do {
                _ = try BandStructure.computeSparse(sys ?? system, structureName: "mos2-2x2x4", path: path, fermiEnergy: ef, options: options)
                return ""
            } catch { return "\(error)" }
        }
        let tooMany = failure(SparseSolverOptions(bandCount: system.orbitalCount, target: ef))
        XCTAssertTrue(tooMany.contains("mos2-2x2x4") && tooMany.contains("k-point 0") && tooMany.contains("larger than the matrix"), tooMany)
        // S not positive definite: one atom's on-site overlap block negated.
        var s = BlockOperator()
        let s0 = try XCTUnwrap(system.overlapOperator)
        for b in 0 ..< s0.blockCount {
            let key = s0.keys[b]
            let flip = key.i == 0 && key.j == 0 && key.shift == .zero
            s.append(key, rows: s0.shape(at: b).x, cols: s0.shape(at: b).y, values: s0.values(at: b).map { flip ? -$0 : $0 })
        }
        let broken = try BlochSystem(structure: system.structure, hamiltonian: system.hamiltonianOperator, overlap: s)
        let indefinite = failure(SparseSolverOptions(bandCount: 8, target: ef, overlapThreshold: 1e-4), broken)
        XCTAssertTrue(indefinite.contains("not positive definite") && indefinite.contains("mos2-2x2x4"), indefinite)
        var window = SparseSolverOptions(bandCount: 4, target: ef + 500, window: 1)
        window.residualLimit = 1
        let empty = failure(window)
        XCTAssertTrue(empty.contains("no eigenvalues in the window"), empty)
        var stingy = SparseSolverOptions(bandCount: 30, target: ef)
        stingy.maxRestarts = 1
        let stuck = failure(stingy)
        XCTAssertTrue(stuck.contains("did not converge") && stuck.contains("mos2-2x2x4"), stuck)
    }

    func testBandH5RecordsSolverShiftAndResiduals() throws {
        let (system, ef) = try supercell()
        let path = KPath(segments: [KPathSegment(count: 3, start: Vec3(0, 0, 0), end: Vec3(0.5, 0, 0), startLabel: "GAMMA", endLabel: "M")])
        let bands = try BandStructure.computeSparse(system, structureName: "mos2-2x2x4", path: path, fermiEnergy: ef,
                                                    options: SparseSolverOptions(bandCount: 8, target: ef))
        let out = try makeTemporaryDirectory(self)
        try bands.write(to: out)
        let f = try HDF5File(readingAt: out.appendingPathComponent("band.h5").path)
        XCTAssertEqual(try f.readString("solver"), "sparse")
        XCTAssertEqual(try f.readDoubles("solver_target_eV").values, [ef])
        XCTAssertEqual(try f.readInt64s("bands_kept").values, [8])
        let res = try f.readDoubles("residual_norms")
        XCTAssertEqual(res.shape, [8, 3])
        XCTAssertLessThan(res.values.max()!, 1e-8)
        XCTAssertEqual(try f.readDoubles("band_data").shape, [8, 3])
    }
}
