import Autograd
import Formats
import Foundation
import Linalg
import Structures
import TestSupport
@testable import Training
import XCTest

/// Band-space losses: gradients against central finite differences (generic, near-degenerate and
/// exactly degenerate levels, a real MoS₂ crystal), the Bloch sum against Bands' convention via
/// the DFT eigenvalues, and zero loss at the DFT Hamiltonian.
final class BandLossTests: XCTestCase {
    /// A 1D chain of two atoms with s+p shells: H and S blocks for shifts −1, 0, 1 with exact
    /// Hermitian partners, S close to the identity (positive definite).
    static func chain(seed: UInt64) -> (Structure, h: BlockOperator, s: BlockOperator) {
        let basis: [Int: OrbitalShells] = [1: OrbitalShells([0, 1]), 2: OrbitalShells([0, 1])]
        let structure = Structure(lattice: Lattice(vectors: [Vec3(3, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)], periodic: [true, false, false]),
                                  atomicNumbers: [1, 2], positions: [Vec3(0, 0, 0), Vec3(1.4, 0.1, 0)], basis: basis)
        var rng = SplitMix64(seed: seed)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
        var hBlocks: [BlockKey: [Double]] = [:], sBlocks: [BlockKey: [Double]] = [:]
        for r in -1 ... 1 {
            for i in 0 ..< 2 {
                for j in 0 ..< 2 {
                    let key = BlockKey(r, 0, 0, i, j)
                    if hBlocks[key] != nil { continue }
                    var h = (0 ..< 16).map { _ in uniform() }
                    var s = (0 ..< 16).map { _ in 0.08 * uniform() }
                    if key == key.transposed {
                        for a in 0 ..< 4 { for b in 0 ..< a { h[a * 4 + b] = h[b * 4 + a]; s[a * 4 + b] = s[b * 4 + a] } }
                        for a in 0 ..< 4 { s[a * 4 + a] = 1; h[a * 4 + a] += Double(a) }
                    }
                    hBlocks[key] = h; sBlocks[key] = s
                    let tr = key.transposed
                    if tr != key {
                        hBlocks[tr] = (0 ..< 16).map { h[($0 % 4) * 4 + $0 / 4] }
                        sBlocks[tr] = (0 ..< 16).map { s[($0 % 4) * 4 + $0 / 4] }
                    }
                }
            }
        }
        var h = BlockOperator(), s = BlockOperator()
        for key in hBlocks.keys.sorted() {
            h.append(key, rows: 4, cols: 4, values: hBlocks[key]!)
            s.append(key, rows: 4, cols: 4, values: sBlocks[key]!)
        }
        return (structure, h, s)
    }

    /// `op` with independent noise on every entry (partners no longer exact transposes, as a
    /// model predicts them).
    static func perturbed(_ op: BlockOperator, scale: Double, seed: UInt64) -> BlockOperator {
        var out = op
        var rng = SplitMix64(seed: seed)
        for i in out.entries.indices { out.entries[i] += scale * (Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        return out
    }

    /// Checks the gradient at `entries` against central differences of the loss.
    func checkGradient(_ predicted: BlockOperator, _ ref: BandReference, kpoints: [Vec3], config: BandLossConfig,
                       entries: [Int], step: Double = 1e-6, tolerance: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try BandLoss.structure(predicted: predicted, reference: ref, kpoints: kpoints, config: config)
        let largest = r.gradient.map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 0, file: file, line: line)
        for e in entries {
            var plus = predicted, minus = predicted
            plus.entries[e] += step; minus.entries[e] -= step
            let lp = try BandLoss.structure(predicted: plus, reference: ref, kpoints: kpoints, config: config).loss
            let lm = try BandLoss.structure(predicted: minus, reference: ref, kpoints: kpoints, config: config).loss
            let fd = (lp - lm) / (2 * step)
            XCTAssertEqual(r.gradient[e], fd, accuracy: tolerance * max(abs(fd), 1e-2 * largest), "entry \(e)", file: file, line: line)
        }
    }

    func testEigenvalueAndLowdinGradientsMatchFiniteDifferences() throws {
        let (structure, h, s) = Self.chain(seed: 7)
        let ref = BandReference(structure: structure, hamiltonian: h, overlap: s, fermiEnergy: 0.3)
        XCTAssertEqual(ref.periodic, [true, false, false])
        let predicted = Self.perturbed(h, scale: 0.05, seed: 11)
        let kpoints = [Vec3(0.137, 0, 0), Vec3(-0.31, 0, 0)]
        let entries = [0, 5, 17, 40, 63, 77, 100, predicted.entries.count - 1]
        for (kind, huber) in [(BandLossKind.eigenvalues, 0.0), (.eigenvalues, 0.02), (.lowdin, 0.0)] {
            var config = BandLossConfig()
            config.kind = kind
            config.huberDelta = huber
            config.bandsAbove = 2
            config.overlapThreshold = 0
            let r = try BandLoss.structure(predicted: predicted, reference: ref, kpoints: kpoints, config: config)
            XCTAssertGreaterThan(r.loss, 1e-6, "\(kind)")
            XCTAssertGreaterThan(r.count, 0)
            if huber > 0 { XCTAssertLessThan(r.loss, 0.9 * r.squareSum / Double(r.count), "some levels beyond huber_delta") }
            try checkGradient(predicted, ref, kpoints: kpoints, config: config, entries: entries)
            // At the DFT Hamiltonian the loss vanishes.
            XCTAssertEqual(try BandLoss.structure(predicted: h, reference: ref, kpoints: kpoints, config: config).loss, 0, accuracy: 1e-20)
        }
    }

    /// The band MAE that `"selection": "band"` reads: H + c·S shifts every generalized eigenvalue
    /// by exactly c (in the filtered basis Xᴴ S X = 1), so the MAE is |c| at every k-point, and 0
    /// at the DFT H; the RMSE agrees.
    func testBandMAEOfAConstantShiftIsTheShift() throws {
        let (structure, h, s) = Self.chain(seed: 5)
        let ref = BandReference(structure: structure, hamiltonian: h, overlap: s, fermiEnergy: 0.2)
        var config = BandLossConfig()
        config.bandsAbove = 2
        config.huberDelta = 0
        config.overlapThreshold = 1e-3
        let kpoints = [Vec3(0.05, 0, 0), Vec3(0.41, 0, 0), Vec3(-0.27, 0, 0)]
        for c in [0.0, 0.0123, -0.37] {
            var shifted = h
            XCTAssertEqual(h.keys, s.keys)
            for i in shifted.entries.indices { shifted.entries[i] += c * s.entries[i] }
            let r = try BandLoss.structure(predicted: shifted, reference: ref, kpoints: kpoints, config: config)
            XCTAssertGreaterThan(r.count, 3 * 2)
            XCTAssertEqual(r.absSum / Double(r.count), abs(c), accuracy: 1e-10)
            XCTAssertEqual((r.squareSum / Double(r.count)).squareRoot(), abs(c), accuracy: 1e-10)
        }
    }

    /// Two levels split by 1 meV (10× the degeneracy tolerance): the exact gradient, no averaging.
    func testNearDegenerateLevelsHaveExactGradients() throws {
        let structure = Structure(lattice: Lattice(vectors: [Vec3(20, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)], periodic: [false, false, false]),
                                  atomicNumbers: [8], positions: [.zero], basis: [8: OrbitalShells([0, 1])])
        // Ref: s at −2, p at −1.0, −0.999, +0.5; predicted: the same in a rotated p basis, slightly shifted.
        let q = Self.rotation(seed: 3)
        func onsite(_ levels: [Double]) -> [Double] {
            var m = [Double](repeating: 0, count: 16)
            m[0] = levels[0]
            for a in 0 ..< 3 { for b in 0 ..< 3 { m[(a + 1) * 4 + b + 1] = (0 ..< 3).reduce(0) { $0 + q[a][$1] * levels[$1 + 1] * q[b][$1] } } }
            return m
        }
        var h = BlockOperator(), pred = BlockOperator(), s = BlockOperator()
        h.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: onsite([-2, -1.0, -0.999, 0.5]))
        pred.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: onsite([-2.01, -1.02, -1.019, 0.52]))
        s.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: (0 ..< 16).map { $0 % 5 == 0 ? 1 : 0 })
        let ref = BandReference(structure: structure, hamiltonian: h, overlap: s, fermiEnergy: 0)
        var seeded = SplitMix64(seed: 1)
        XCTAssertEqual(ref.sampleKPoints(3, rng: &seeded), [.zero])
        var config = BandLossConfig()
        config.bandsAbove = 1
        try checkGradient(pred, ref, kpoints: [.zero], config: config, entries: Array(0 ..< 16), step: 1e-7, tolerance: 1e-5)
    }

    /// Exactly degenerate predicted levels (a threefold p level in a random basis) with equal
    /// targets: the loss is differentiable and the projector gradient is the derivative along any
    /// direction, although the individual eigenvectors are arbitrary.
    func testExactlyDegenerateLevelsUseTheSubspaceProjector() throws {
        let structure = Structure(lattice: Lattice(vectors: [Vec3(20, 0, 0), Vec3(0, 20, 0), Vec3(0, 0, 20)], periodic: [false, false, false]),
                                  atomicNumbers: [8], positions: [.zero], basis: [8: OrbitalShells([0, 1])])
        var predValues = [Double](repeating: 0, count: 16)
        predValues[0] = -2.1
        for a in 0 ..< 3 { for b in 0 ..< 3 { predValues[(a + 1) * 4 + b + 1] = a == b ? -0.7 : 0 } }
        var h = BlockOperator(), pred = BlockOperator(), s = BlockOperator()
        h.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: [-2, 0, 0, 0, 0, -0.9, 0, 0, 0, 0, -0.9, 0, 0, 0, 0, -0.9])
        pred.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: predValues)
        s.append(BlockKey(0, 0, 0, 0, 0), rows: 4, cols: 4, values: (0 ..< 16).map { $0 % 5 == 0 ? 1 : 0 })
        let ref = BandReference(structure: structure, hamiltonian: h, overlap: s, fermiEnergy: 0)
        var config = BandLossConfig()
        config.bandsAbove = 0
        let r = try BandLoss.structure(predicted: pred, reference: ref, kpoints: [.zero], config: config)
        // The gradient is 2(ε − ε_DFT)/4 · P on the p block: 0.1 on its diagonal, 0 off it.
        XCTAssertEqual(r.gradient[5], 0.1, accuracy: 1e-12)
        XCTAssertEqual(r.gradient[6], 0, accuracy: 1e-12)
        // Directional derivative along a random symmetric direction.
        var rng = SplitMix64(seed: 9)
        var direction = [Double](repeating: 0, count: 16)
        for a in 0 ..< 4 { for b in a ..< 4 { let v = Double(rng.next() >> 11) / Double(1 << 53) - 0.5; direction[a * 4 + b] = v; direction[b * 4 + a] = v } }
        let t = 1e-6
        var plus = pred, minus = pred
        for i in 0 ..< 16 { plus.entries[i] += t * direction[i]; minus.entries[i] -= t * direction[i] }
        let fd = (try BandLoss.structure(predicted: plus, reference: ref, kpoints: [.zero], config: config).loss
            - (try BandLoss.structure(predicted: minus, reference: ref, kpoints: [.zero], config: config).loss)) / (2 * t)
        let analytic = zip(r.gradient, direction).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertEqual(analytic, fd, accuracy: 1e-6 * max(1, abs(fd)))
    }

    /// The real MoS₂ 2×2 crystal (164 orbitals, filtered overlap): zero loss at the DFT H, the DFT
    /// eigenvalues of Bands' solver at the same k, and finite-difference gradients with noise.
    func testMoS2CrystalGradientAndReference() throws {
        let records = try Dataset.readRecords([Fixtures.url("datasets/mos2-2x2-0000")])
        XCTAssertEqual(records.count, 1)
        let ref = try BandReference(record: records[0])
        XCTAssertEqual(ref.periodic, [true, true, false])
        var rng = SplitMix64(seed: 4)
        let kpoints = ref.sampleKPoints(1, rng: &rng)
        XCTAssertEqual(kpoints[0].z, 0)
        var config = BandLossConfig()
        config.bandsAbove = 4
        XCTAssertEqual(try BandLoss.structure(predicted: ref.hamiltonian, reference: ref, kpoints: kpoints, config: config).loss, 0, accuracy: 1e-20)
        let predicted = Self.perturbed(ref.hamiltonian, scale: 0.01, seed: 2)
        let r = try BandLoss.structure(predicted: predicted, reference: ref, kpoints: kpoints, config: config)
        XCTAssertGreaterThan(r.loss, 0)
        // The four entries with the largest gradient and three fixed ones.
        let n = predicted.entries.count
        let top = r.gradient.indices.sorted { abs(r.gradient[$0]) > abs(r.gradient[$1]) }.prefix(4)
        try checkGradient(predicted, ref, kpoints: kpoints, config: config, entries: Array(top) + [n / 3, n / 2, n - 1], step: 1e-5, tolerance: 1e-4)
    }

    static func rotation(seed: UInt64) -> [[Double]] {
        var rng = SplitMix64(seed: seed)
        func u() -> Double { Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
        var a = Vec3(u(), u(), u()); a /= norm(a)
        var b = Vec3(u(), u(), u()); b -= dot(a, b) * a; b /= norm(b)
        let c = cross(a, b)
        return [[a.x, b.x, c.x], [a.y, b.y, c.y], [a.z, b.z, c.z]]
    }
}
