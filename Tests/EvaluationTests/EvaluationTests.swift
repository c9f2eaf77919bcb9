import Bands
import Evaluation
import Formats
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import HDF5Kit
import Linalg
import StageAPI
import Structures
import TestSupport
import XCTest

/// Writes `op` as a DeepH-dock operator file (what `harmose predict` writes for a dock input).
func writeDockOperator(_ op: BlockOperator, to url: URL) throws {
    let f = try HDF5File(creatingAt: url.path)
    let n = op.blockCount
    try f.write("atom_pairs", int64s: op.keys.flatMap { [$0.shift.x, $0.shift.y, $0.shift.z, $0.i, $0.j].map(Int64.init) }, shape: [n, 5])
    try f.write("chunk_boundaries", int64s: op.offsets.map(Int64.init), shape: [n + 1])
    try f.write("chunk_shapes", int64s: (0 ..< n).flatMap { [Int64(op.shape(at: $0).x), Int64(op.shape(at: $0).y)] }, shape: [n, 2])
    try f.write("entries", doubles: op.entries, shape: [op.entries.count])
    try f.flush()
}

/// `op` with every entry replaced by `transform(key, row, col, value)`.
func mapEntries(_ op: BlockOperator, _ transform: (BlockKey, Int, Int, Double) -> Double) -> BlockOperator {
    var out = BlockOperator()
    for (b, key) in op.keys.enumerated() {
        let s = op.shape(at: b)
        let v = Array(op.values(at: b))
        out.append(key, rows: s.x, cols: s.y, values: (0 ..< s.x * s.y).map { transform(key, $0 / s.y, $0 % s.y, v[$0]) })
    }
    return out
}

/// H + c·S over the union of H's and S's blocks: the generalized eigenvalues shift by exactly c.
func shifted(_ h: BlockOperator, by c: Double, overlap s: BlockOperator) -> BlockOperator {
    var out = mapEntries(h) { key, r, col, v in
        guard let sv = s.values(for: key) else { return v }
        return v + c * sv[sv.startIndex + r * h.shape(at: h.position(of: key)!).y + col]
    }
    for (b, key) in s.keys.enumerated() where !h.contains(key) {
        out.append(key, rows: s.shape(at: b).x, cols: s.shape(at: b).y, values: s.values(at: b).map { c * $0 })
    }
    return out
}

final class HamiltonianErrorTests: XCTestCase {
    let water = Fixtures.url("datasets/water-0020")

    func testKnownOffsetsGiveExactMAEAndRMSE() throws {
        let record = try FormatReader.readRecord(at: water)
        let h = try XCTUnwrap(record.hamiltonian)
        // +2 meV on on-site blocks, −1 meV elsewhere.
        let pred = mapEntries(h) { key, _, _, v in key.shift == .zero && key.i == key.j ? v + 0.002 : v - 0.001 }
        let e = HamiltonianErrors.compare(reference: h, prediction: pred, structure: record.structure, name: "water")
        // O has 14 orbitals, each H 5: on-site entries 14² + 2·5² = 246 of 24² = 576.
        XCTAssertEqual(e.overall.count, 576)
        XCTAssertEqual(e.onsite.count, 246)
        XCTAssertEqual(e.offsite.count, 330)
        XCTAssertEqual(e.onsite.mae, 0.002, accuracy: 1e-12)
        XCTAssertEqual(e.offsite.mae, 0.001, accuracy: 1e-12)
        XCTAssertEqual(e.overall.mae, (246 * 0.002 + 330 * 0.001) / 576, accuracy: 1e-12)
        XCTAssertEqual(e.overall.rmse, ((246 * 4e-6 + 330 * 1e-6) / 576).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(e.overall.maxAbs, 0.002, accuracy: 1e-12)
        XCTAssertEqual(e.missingBlocks, 0)
        XCTAssertEqual(e.extraBlocks, 0)
        let worst = try XCTUnwrap(e.worst)
        XCTAssertTrue(worst.key.shift == .zero && worst.key.i == worst.key.j)
        XCTAssertEqual(worst.error, 0.002, accuracy: 1e-12)
    }

    func testShellPairBookkeeping() throws {
        let record = try FormatReader.readRecord(at: water)
        let h = try XCTUnwrap(record.hamiltonian)
        let s = record.structure
        // Error (l_row + l_col + 1) meV: every l pair has one known error.
        func lOfOrbital(_ atom: Int) -> [Int] { s.shells(ofAtom: atom).ls.flatMap { l in [Int](repeating: l, count: 2 * l + 1) } }
        let pred = mapEntries(h) { key, r, c, v in v + 0.001 * Double(lOfOrbital(key.i)[r] + lOfOrbital(key.j)[c] + 1) }
        let e = HamiltonianErrors.compare(reference: h, prediction: pred, structure: s, name: "water")
        let expected: [String: Double] = ["s-s": 1, "s-p": 2, "p-p": 3, "s-d": 3, "p-d": 4, "d-d": 5]
        XCTAssertEqual(Set(e.byLPair.keys), Set(expected.keys))
        for (pair, meV) in expected {
            XCTAssertEqual(e.byLPair[pair]!.mae, meV / 1000, accuracy: 1e-12, pair)
            XCTAssertEqual(e.byLPair[pair]!.rmse, meV / 1000, accuracy: 1e-12, pair)
        }
        // Element pairs (lighter first): O–O 14², H–O 2·2·14·5, H–H 4·5².
        XCTAssertEqual(e.byElementPair.mapValues(\.count), ["O-O": 196, "H-O": 280, "H-H": 100])
        // O shells [s s s p p d]; H shells [s s p]. Shell pair O#3(p)–O#4(p): blocks (3,4) and (4,3).
        let o3 = ShellLabel(atomicNumber: 8, shell: 3, l: 1), o4 = ShellLabel(atomicNumber: 8, shell: 4, l: 1)
        XCTAssertEqual(e.byShellPair[ShellPair(o4, o3)]?.count, 18)
        XCTAssertEqual(e.byShellPair[ShellPair(o3, o4)]?.mae ?? 0, 0.003, accuracy: 1e-12)
        // H#0(s)–H#2(p) on four H–H blocks, 1×3 and 3×1 each.
        let h0 = ShellLabel(atomicNumber: 1, shell: 0, l: 0), h2 = ShellLabel(atomicNumber: 1, shell: 2, l: 1)
        XCTAssertEqual(e.byShellPair[ShellPair(h0, h2)]?.count, 24)
        XCTAssertEqual(ShellPair(h2, h0).description, "H#0(s)-H#2(p)")
        XCTAssertEqual(ShellPair(o3, h0).description, "H#0(s)-O#3(p)")
        XCTAssertEqual(e.byShellPair.values.reduce(0) { $0 + $1.count }, 576)
        // O: 6 shells, H: 3 → unordered shell pairs: C(6+1,2) + C(3+1,2) + 6·3 = 21 + 6 + 18.
        XCTAssertEqual(e.byShellPair.count, 45)
    }

    func testMissingBlocksCountAsZeroAndMergeAddsUp() throws {
        let record = try FormatReader.readRecord(at: water)
        let h = try XCTUnwrap(record.hamiltonian)
        let dropped = BlockKey(0, 0, 0, 0, 1)
        var pred = BlockOperator()
        for (b, key) in h.keys.enumerated() where key != dropped {
            pred.append(key, rows: h.shape(at: b).x, cols: h.shape(at: b).y, values: h.values(at: b))
        }
        pred.append(BlockKey(1, 0, 0, 0, 0), rows: 14, cols: 14, values: [Double](repeating: 0.5, count: 196))
        let e = HamiltonianErrors.compare(reference: h, prediction: pred, structure: record.structure, name: "water")
        XCTAssertEqual(e.missingBlocks, 1)
        XCTAssertEqual(e.extraBlocks, 1)
        let lost = h.values(for: dropped)!
        XCTAssertEqual(e.overall.count, 576)
        XCTAssertEqual(e.overall.mae, lost.reduce(0) { $0 + abs($1) } / 576, accuracy: 1e-12)
        XCTAssertEqual(e.overall.maxAbs, lost.map(abs).max()!, accuracy: 1e-15)

        var twice = e
        twice.merge(e)
        XCTAssertEqual(twice.overall.count, 1152)
        XCTAssertEqual(twice.overall.mae, e.overall.mae, accuracy: 1e-15)
        XCTAssertEqual(twice.missingBlocks, 2)
    }

    func testReservoirSampleIsSeededAndBounded() {
        var a = ReservoirSample(capacity: 100), b = ReservoirSample(capacity: 100)
        for k in 0 ..< 10_000 { a.add(Double(k), -Double(k)); b.add(Double(k), -Double(k)) }
        XCTAssertEqual(a.reference, b.reference)
        XCTAssertEqual(a.reference.count, 100)
        XCTAssertEqual(a.seen, 10_000)
        XCTAssertEqual(zip(a.reference, a.predicted).filter { $0 != -$1 }.count, 0, "pairs stay together")
        // A uniform sample of 0..<10000 has mean near 5000 (σ of the mean ≈ 290).
        XCTAssertEqual(a.reference.reduce(0, +) / 100, 5000, accuracy: 1500)
    }

    func testHermitianPartAveragesPartners() {
        var op = BlockOperator()
        op.append(BlockKey(0, 0, 0, 0, 1), rows: 1, cols: 2, values: [1, 2])
        op.append(BlockKey(0, 0, 0, 1, 0), rows: 2, cols: 1, values: [3, 6])
        op.append(BlockKey(0, 0, 0, 0, 0), rows: 2, cols: 2, values: [1, 2, 4, 1])
        let sym = Evaluator.hermitianPart(op)
        XCTAssertEqual(Array(sym.values(at: 0)), [2, 4])
        XCTAssertEqual(Array(sym.values(at: 1)), [2, 4])
        XCTAssertEqual(Array(sym.values(at: 2)), [1, 3, 3, 1])
        XCTAssertEqual(sym.hermiticityDeviation().maxDeviation, 0)
    }
}

final class BandErrorTests: XCTestCase {
    let mote2 = Fixtures.url("peer/deeph-dock/MoTe2")
    let water = Fixtures.url("datasets/water-0020")

    func testIdenticalHamiltonianGivesZeroBandError() throws {
        let record = try FormatReader.readRecord(at: mote2)
        var sample = ReservoirSample(capacity: 10)
        let e = try Evaluator.evaluate(reference: record, prediction: record.hamiltonian!, kpath: try KPath.read(mote2.appendingPathComponent("K_PATH")),
                                       sample: &sample)
        let b = try XCTUnwrap(e.bands)
        XCTAssertEqual(b.kind, .periodic)
        XCTAssertEqual(b.bandCount, 57)
        XCTAssertGreaterThan(b.kpointCount, 10)
        XCTAssertEqual(b.window.maxAbs, 0)
        XCTAssertEqual(b.allBands.maxAbs, 0)
        XCTAssertEqual(e.errors.overall.maxAbs, 0)
        XCTAssertEqual(b.gapError, 0)
    }

    func testHPlusConstantTimesSShiftsEveryBandByTheConstant() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let h = record.hamiltonian!, s = record.overlap!
        let c = 0.25
        var sample = ReservoirSample(capacity: 1000)
        let e = try Evaluator.evaluate(reference: record, prediction: shifted(h, by: c, overlap: s),
                                       kpath: try KPath.read(mote2.appendingPathComponent("K_PATH")), sample: &sample)
        let b = try XCTUnwrap(e.bands)
        // Exact up to the eigensolver's round-off on eigenvalues of tens of eV.
        XCTAssertEqual(b.window.mae, c, accuracy: 1e-8)
        XCTAssertEqual(b.window.maxAbs, c, accuracy: 1e-8)
        XCTAssertEqual(b.allBands.mae, c, accuracy: 1e-8)
        XCTAssertEqual(try XCTUnwrap(b.homoError), c, accuracy: 1e-8)
        XCTAssertEqual(try XCTUnwrap(b.lumoError), c, accuracy: 1e-8)
        XCTAssertEqual(try XCTUnwrap(b.gapError), 0, accuracy: 1e-8)
        // The H error is c·|S| entry by entry.
        let sAbs = h.keys.reduce(0.0) { acc, key in acc + (s.values(for: key)?.reduce(0) { $0 + abs($1) } ?? 0) }
        XCTAssertEqual(e.errors.overall.mae, c * sAbs / Double(h.entries.count), accuracy: 1e-12)
        // MoTe2 (OpenMX, semicore Mo 4s4p and Te 4d: 14 + 2·16 = 46 electrons): 23 occupied
        // bands of 57, counted below info.json's E_F; window 23 + 4.
        XCTAssertEqual(b.occupiedBands, 23)
        XCTAssertEqual(b.windowBands, 27)
        XCTAssertEqual(b.window.count, 27 * b.kpointCount)
    }

    /// A rigid shift of −3 eV pulls the bands 2–4 eV above E_F into the ±1 eV window: ghost bands
    /// are the per-k excess of predicted over DFT levels there, counted from the reference bands;
    /// the error at DeepH's threshold 5e-4 is the same exact shift; the smallest S eigenvalue is
    /// that of LAPACK on S(k) at the path's points.
    func testGhostBandsAlternativeThresholdAndSmallestOverlapEigenvalue() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let c = -3.0
        var sample = ReservoirSample(capacity: 0)
        let path = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        let e = try Evaluator.evaluate(reference: record, prediction: shifted(record.hamiltonian!, by: c, overlap: record.overlap!),
                                       kpath: path, sample: &sample)
        let b = try XCTUnwrap(e.bands)
        let ef = try XCTUnwrap(b.fermiEnergy)
        var expected = 0
        for k in 0 ..< b.kpointCount {
            let moved = b.referenceBands.filter { abs($0[k] + c - ef) <= 1 }.count
            let dft = b.referenceBands.filter { abs($0[k] - ef) <= 1.1 }.count
            expected = max(expected, moved - dft)
        }
        XCTAssertGreaterThan(expected, 0)
        XCTAssertEqual(b.ghostBands, expected)
        let alt = try XCTUnwrap(b.alternative)
        XCTAssertEqual(alt.threshold, 5e-4)
        XCTAssertEqual(alt.window.mae, abs(c), accuracy: 1e-8)
        let system = try BlochSystem(record: record)
        var smallest = Double.infinity
        for k in path.kpoints { smallest = min(smallest, try Eigen.hermitian(system.overlap(at: k), vectors: false).values[0]) }
        XCTAssertEqual(b.smallestOverlapEigenvalue, smallest, accuracy: 1e-12)
        // The identical prediction has no ghosts.
        let same = try Evaluator.evaluate(reference: record, prediction: record.hamiltonian!, kpath: path, sample: &sample)
        XCTAssertEqual(same.bands?.ghostBands, 0)
    }

    func testMoleculeHOMOAndLUMO() throws {
        let record = try FormatReader.readRecord(at: water)
        let c = -0.1
        var sample = ReservoirSample(capacity: 0)
        let e = try Evaluator.evaluate(reference: record, prediction: shifted(record.hamiltonian!, by: c, overlap: record.overlap!),
                                       electronCount: 10, sample: &sample)
        let b = try XCTUnwrap(e.bands)
        XCTAssertEqual(b.kind, .molecule)
        XCTAssertEqual(b.kpointCount, 1)
        XCTAssertEqual(b.occupiedBands, 5)
        // info.json: homo_eV −6.340235022931284, lumo_eV 1.133051602452452 (PySCF).
        XCTAssertEqual(try XCTUnwrap(b.homoReference), -6.340235022931284, accuracy: 1e-5)
        XCTAssertEqual(try XCTUnwrap(b.lumoReference), 1.133051602452452, accuracy: 1e-5)
        XCTAssertEqual(try XCTUnwrap(b.homoError), c, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(b.lumoError), c, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(b.gapError), 0, accuracy: 1e-9)
        XCTAssertEqual(b.windowBands, 9)
        XCTAssertEqual(b.window.mae, abs(c), accuracy: 1e-9)
    }
}

final class EvaluationFileTests: XCTestCase {
    let datasets = Fixtures.url("datasets")
    let mote2 = Fixtures.url("peer/deeph-dock/MoTe2")

    /// A predictions folder: for each (name, operator), name/hamiltonian_pred.h5.
    func makePredictions(_ items: [(String, BlockOperator)]) throws -> URL {
        let root = try makeTemporaryDirectory(self).appendingPathComponent("pred")
        for (name, op) in items {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try writeDockOperator(op, to: dir.appendingPathComponent("hamiltonian_pred.h5"))
        }
        return root
    }

    func testEvaluateFoldersWritesMetricsTableAndPlots() throws {
        var items: [(String, BlockOperator)] = []
        for name in ["ethanol-0046", "water-0020"] {
            let r = try FormatReader.readRecord(at: datasets.appendingPathComponent(name))
            items.append((name, mapEntries(r.hamiltonian!) { _, _, _, v in v + 0.003 }))
        }
        let pred = try makePredictions(items)
        // The reference folder has mos2 as well: give only the molecules a reference folder.
        let ref = try makeTemporaryDirectory(self).appendingPathComponent("ref")
        try FileManager.default.createDirectory(at: ref, withIntermediateDirectories: true)
        for name in ["ethanol-0046", "water-0020"] {
            try FileManager.default.createSymbolicLink(at: ref.appendingPathComponent(name), withDestinationURL: datasets.appendingPathComponent(name))
        }
        var options = EvaluationOptions()
        options.paritySample = 500
        let report = try Evaluator.evaluate(predictions: pred, reference: ref, options: options)
        XCTAssertEqual(report.structures.map(\.name), ["ethanol-0046", "water-0020"])
        XCTAssertEqual(report.total.overall.count, 72 * 72 + 576)
        XCTAssertEqual(report.total.overall.mae, 0.003, accuracy: 1e-12)
        XCTAssertEqual(report.total.overall.rmse, 0.003, accuracy: 1e-12)
        XCTAssertEqual(report.sample.reference.count, 500)

        let out = try makeTemporaryDirectory(self).appendingPathComponent("eval")
        try report.write(to: out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["metrics.json", "parity.svg", "table.txt"])
        let metrics = try JSONValue.parse(try Data(contentsOf: out.appendingPathComponent("metrics.json")))
        XCTAssertEqual(metrics["format_version"], .int(1))
        XCTAssertEqual(metrics["structure_count"], .int(2))
        XCTAssertEqual(try XCTUnwrap(metrics["hamiltonian"]?["overall"]?["mae_meV"]?.doubleValue), 3, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(metrics["hamiltonian"]?["by_element_pair"]?["C-O"]?["mae_meV"]?.doubleValue), 3, accuracy: 1e-9)
        XCTAssertNotNil(metrics["hamiltonian"]?["by_shell_pair"]?["H#0(s)-O#3(p)"])
        XCTAssertEqual(metrics["bands"]?["structures"], .int(2))
        XCTAssertNotNil(metrics["structures"]?.arrayValue?.first?["bands"]?["homo_error_meV"]?.doubleValue)
        let parser = XMLParser(data: try Data(contentsOf: out.appendingPathComponent("parity.svg")))
        XCTAssertTrue(parser.parse(), "parity.svg is well-formed XML")
        let table = try String(contentsOf: out.appendingPathComponent("table.txt"), encoding: .utf8)
        XCTAssertTrue(table.contains("on-site") && table.contains("water-0020") && table.contains("HOMO MAE"))
    }

    func testPeriodicFolderWithKPathAndBandOverlay() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let pred = try makePredictions([("MoTe2", shifted(record.hamiltonian!, by: 0.1, overlap: record.overlap!))])
        let report = try Evaluator.evaluate(predictions: pred, reference: mote2)
        let b = try XCTUnwrap(report.structures.first?.bands)
        // The folder's K_PATH is used (its point count, not the automatic path's).
        let kpath = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        XCTAssertEqual(b.kpointCount, kpath.kpoints.count)
        XCTAssertEqual(b.window.mae, 0.1, accuracy: 1e-8)
        XCTAssertEqual(report.bandSummary.mae.mae, 0.1, accuracy: 1e-8)
        let out = try makeTemporaryDirectory(self)
        try report.write(to: out)
        let overlay = out.appendingPathComponent("bands/MoTe2.svg")
        XCTAssertTrue(XMLParser(data: try Data(contentsOf: overlay)).parse())
    }

    /// evaluate given a bands stage's artifact: the stored DFT bands (their k-points and overlap
    /// filter) are the reference, and the numbers agree with recomputing them with those settings.
    func testStoredReferenceBandsAreUsedAndAgreeWithRecomputing() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let pred = try makePredictions([("MoTe2", shifted(record.hamiltonian!, by: 0.1, overlap: record.overlap!))])
        let input = try BandInput.load(structure: mote2)
        let kpath = try KPath.read(mote2.appendingPathComponent("K_PATH"))
        let bands = try BandStructure.compute(input.system, path: kpath, fermiEnergy: input.record.fermiEnergy,
                                              electronCount: input.electronCount, overlapThreshold: 1e-3)
        let artifact = try makeTemporaryDirectory(self)
        try bands.write(to: artifact.appendingPathComponent("bands/MoTe2"))

        var options = EvaluationOptions()
        options.overlapThreshold = nil  // the stored bands' filter (1e-3) must win
        options.referenceBands = artifact
        let stored = try XCTUnwrap(try Evaluator.evaluate(predictions: pred, reference: mote2, options: options).structures.first?.bands)
        var same = EvaluationOptions()
        same.overlapThreshold = 1e-3
        let recomputed = try XCTUnwrap(try Evaluator.evaluate(predictions: pred, reference: mote2, options: same).structures.first?.bands)
        XCTAssertEqual(stored.kpointCount, kpath.kpoints.count)
        XCTAssertEqual(stored.kpointCount, recomputed.kpointCount)
        XCTAssertEqual(stored.bandCount, recomputed.bandCount)
        XCTAssertLessThan(maxAbsDifference(stored.referenceBands.flatMap { $0 }, recomputed.referenceBands.flatMap { $0 }), 1e-8)
        XCTAssertEqual(stored.predictedBands, recomputed.predictedBands, "the predicted side is solved the same way")
        XCTAssertEqual(stored.window.mae, 0.1, accuracy: 1e-8)
        XCTAssertEqual(stored.window.mae, recomputed.window.mae, accuracy: 1e-9)
        XCTAssertEqual(stored.occupiedBands, recomputed.occupiedBands)

        // A bands artifact without this structure names the file it looked for.
        options.referenceBands = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred, reference: mote2, options: options)) { error in
            XCTAssertTrue("\(error)".contains("bands/MoTe2/band.h5") && "\(error)".contains("no reference bands"), "\(error)")
        }
    }

    func testLegacyPredictionIsAlignedOntoDockReference() throws {
        // The legacy MoTe2 folder is the same calculation as the dock one (other layout, OpenMX
        // orbital order, 1-based atoms): as a prediction it must match to storage precision.
        let legacy = Fixtures.url("peer/deeph-legacy/MoTe2")
        let pred = try makeTemporaryDirectory(self).appendingPathComponent("pred/MoTe2")
        try FileManager.default.createDirectory(at: pred, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: legacy.path) where name != "hamiltonians.h5" && name != "overlaps.h5" {
            try FileManager.default.copyItem(at: legacy.appendingPathComponent(name), to: pred.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: legacy.appendingPathComponent("hamiltonians.h5"), to: pred.appendingPathComponent("hamiltonians_pred.h5"))
        var options = EvaluationOptions()
        options.computeBands = false
        let report = try Evaluator.evaluate(predictions: pred.deletingLastPathComponent(), reference: mote2, options: options)
        let e = report.total
        XCTAssertEqual(e.missingBlocks, 0)
        XCTAssertEqual(e.extraBlocks, 0)
        XCTAssertLessThan(e.overall.maxAbs, 1e-6)

        // Without its structure files a legacy prediction cannot be laid onto a dock reference.
        for name in ["element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat", "info.json", "rlat.dat"] {
            try FileManager.default.removeItem(at: pred.appendingPathComponent(name))
        }
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred.deletingLastPathComponent(), reference: mote2, options: options)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(pred.appendingPathComponent("hamiltonians_pred.h5").path), text)
            XCTAssertTrue(text.contains("layout"), text)
        }
    }

    func testMissingPredictionNamesTheReferenceAndTheExpectedFile() throws {
        let water = try FormatReader.readRecord(at: datasets.appendingPathComponent("water-0020"))
        let pred = try makePredictions([("water-0020", water.hamiltonian!)])
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred, reference: datasets)) { error in
            guard case let EvaluationError.missingPrediction(reference, root, expected) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(reference, datasets.appendingPathComponent("ethanol-0046").path)
            XCTAssertEqual(root, pred.path)
            XCTAssertTrue(expected.hasPrefix(pred.appendingPathComponent("ethanol-0046/hamiltonian_pred.h5").path))
        }
        // Skipping them instead (only one split predicted).
        var options = EvaluationOptions()
        options.skipMissingPredictions = true
        options.computeBands = false
        let partial = try Evaluator.evaluate(predictions: pred, reference: datasets, options: options)
        XCTAssertEqual(partial.structures.map(\.name), ["water-0020"])
        XCTAssertEqual(partial.skippedReferences, ["ethanol-0046", "mos2-2x2-0000"])
        XCTAssertEqual(partial.json["skipped_references"]?.arrayValue?.count, 2)
        XCTAssertTrue(partial.text.contains("2 reference structure(s) without a prediction were skipped"))
        // A reference without its DFT Hamiltonian.
        let noH = try makeTemporaryDirectory(self).appendingPathComponent("water-0020")
        try FileManager.default.createDirectory(at: noH, withIntermediateDirectories: true)
        for name in ["POSCAR", "info.json", "overlap.h5"] {
            try FileManager.default.copyItem(at: datasets.appendingPathComponent("water-0020/\(name)"), to: noH.appendingPathComponent(name))
        }
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred, reference: noH)) { error in
            XCTAssertEqual("\(error)", "\(noH.path)/hamiltonian.h5: missing file: the reference structure has no DFT Hamiltonian to compare with")
        }
        let empty = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: empty, reference: datasets)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(empty.path): no predicted Hamiltonians found"), "\(error)")
        }
    }

    func testShapeMismatchAndNaNNameFileAndField() throws {
        let waterRef = datasets.appendingPathComponent("water-0020")
        let water = try FormatReader.readRecord(at: waterRef)
        // Shape mismatch: a block with the wrong number of columns.
        var bad = BlockOperator()
        for (b, key) in water.hamiltonian!.keys.enumerated() {
            let s = water.hamiltonian!.shape(at: b)
            if b == 1 {
                bad.append(key, rows: s.x, cols: s.y - 1, values: Array(water.hamiltonian!.values(at: b).prefix(s.x * (s.y - 1))))
            } else {
                bad.append(key, rows: s.x, cols: s.y, values: water.hamiltonian!.values(at: b))
            }
        }
        let pred1 = try makePredictions([("water-0020", bad)])
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred1, reference: waterRef)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(pred1.appendingPathComponent("water-0020/hamiltonian_pred.h5").path), text)
            XCTAssertTrue(text.contains("chunk_shapes[1]"), text)
        }
        // NaN in the prediction.
        let nan = mapEntries(water.hamiltonian!) { key, r, c, v in key == BlockKey(0, 0, 0, 0, 0) && r == 2 && c == 3 ? .nan : v }
        let pred2 = try makePredictions([("water-0020", nan)])
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred2, reference: waterRef)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(pred2.appendingPathComponent("water-0020/hamiltonian_pred.h5").path), text)
            XCTAssertTrue(text.contains("entries[31] (block [0, 0, 0, 0, 0])") && text.contains("non-finite"), text)
        }
        // A prediction for another structure (ethanol's H for water): atom indices out of range.
        let ethanol = try FormatReader.readRecord(at: datasets.appendingPathComponent("ethanol-0046"))
        let pred3 = try makePredictions([("water-0020", ethanol.hamiltonian!)])
        XCTAssertThrowsError(try Evaluator.evaluate(predictions: pred3, reference: waterRef)) { error in
            XCTAssertTrue("\(error)".contains("hamiltonian_pred.h5: chunk_shapes[1] (block [0, 0, 0, 0, 1])"), "\(error)")
        }
    }

    func testAblationTable() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let root = try makeTemporaryDirectory(self)
        func predictions(_ name: String, _ op: BlockOperator) throws -> URL {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("MoTe2"), withIntermediateDirectories: true)
            try writeDockOperator(op, to: dir.appendingPathComponent("MoTe2/hamiltonian_pred.h5"))
            return dir
        }
        let exact = try predictions("exact", record.hamiltonian!)
        let shiftedSet = try predictions("shifted", shifted(record.hamiltonian!, by: 0.02, overlap: record.overlap!))
        // "Rotated copies": a second reference (the water molecule rotated by DFT) and its own prediction.
        let rotatedRef = Fixtures.url("peer/deeph-dock/h2o-rotated/1")
        let rotatedRecord = try FormatReader.readRecord(at: rotatedRef)
        let rotatedPred = root.appendingPathComponent("rot")
        try FileManager.default.createDirectory(at: rotatedPred.appendingPathComponent("1"), withIntermediateDirectories: true)
        try writeDockOperator(mapEntries(rotatedRecord.hamiltonian!) { _, _, _, v in v - 0.004 },
                              to: rotatedPred.appendingPathComponent("1/hamiltonian_pred.h5"))

        let table = try AblationTable.evaluate(variants: [("stage1", exact), ("hybrid", shiftedSet)], reference: mote2,
                                               rotated: [("hybrid", rotatedPred)], rotatedReference: rotatedRef)
        XCTAssertEqual(table.rows.map(\.name), ["stage1", "hybrid"])
        XCTAssertEqual(table.rows[0].hamiltonianMAE, 0)
        XCTAssertEqual(try XCTUnwrap(table.rows[0].bandMAE), 0, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(table.rows[1].bandMAE), 0.02, accuracy: 1e-8)
        XCTAssertNil(table.rows[0].rotatedHamiltonianMAE)
        XCTAssertEqual(try XCTUnwrap(table.rows[1].rotatedHamiltonianMAE), 0.004, accuracy: 1e-12)
        let md = table.markdown
        XCTAssertTrue(md.contains("| variant | structures | H MAE (meV) | H RMSE (meV) | band MAE (meV) | gap MAE (meV) | rotated H MAE (meV) | rotated band MAE (meV) |"), md)
        XCTAssertTrue(md.contains("| hybrid | 1 |"), md)
        XCTAssertTrue(md.contains("| 20.000 |"), md)
        XCTAssertTrue(md.contains("| 4.000 |"), md)
        let json = table.json
        XCTAssertEqual(json["variants"]?.arrayValue?.count, 2)
        XCTAssertEqual(json["variants"]?.arrayValue?[0]["rotated_h_mae_meV"], .null)
        XCTAssertEqual(try XCTUnwrap(json["variants"]?.arrayValue?[1]["band_mae_meV"]?.doubleValue), 20, accuracy: 1e-6)

        XCTAssertThrowsError(try AblationTable.evaluate(variants: [("a", exact), ("a", shiftedSet)], reference: mote2)) { error in
            XCTAssertTrue("\(error)".contains("variant name 'a' given twice"))
        }
        XCTAssertThrowsError(try AblationTable.evaluate(variants: [("a", exact)], reference: mote2, rotated: [("b", rotatedPred)], rotatedReference: rotatedRef)) { error in
            XCTAssertTrue("\(error)".contains("'b', which is not one of the variants"))
        }
    }

    func testEvaluateStageKind() throws {
        let record = try FormatReader.readRecord(at: mote2)
        let pred = try makePredictions([("MoTe2", mapEntries(record.hamiltonian!) { _, _, _, v in v + 0.001 })])
        let kind = EvaluateStageKind()
        let out = try makeTemporaryDirectory(self).appendingPathComponent("artifact")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var values: [String: JSONValue] = [:]
        for p in kind.parameters { values[p.name] = p.defaultValue }
        values["bands"] = .bool(false)
        let context = StageContext(stageName: "evaluate", parameters: StageParameters(values),
                                   inputs: ["predictions": [pred], "reference": [mote2]], outputDirectory: out, reporter: .discard)
        let metrics = try kind.run(context)
        XCTAssertEqual(metrics["structures"], .int(1))
        XCTAssertEqual(try XCTUnwrap(metrics["h_mae_meV"]?.doubleValue), 1, accuracy: 1e-9)
        XCTAssertEqual(metrics["band_mae_meV"], .null)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.json").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("parity.svg").path))
    }
}
