// Streamed prediction of large structures — a stage-1 model or a hybrid layer by layer over chunks
// of atoms, on one or two workers — equals the whole-structure prediction block for block, and the
// streamed file reads back as a DeepH-dock operator.
import XCTest
import Autograd
import Foundation
import Formats
import Structures
import Training
import TestSupport

final class LargeStructureTests: XCTestCase {
    func testStreamingEqualsWholeStructurePrediction() throws {
        let run = try makeTemporaryDirectory(self)
        var config = Tiny.config(epochs: 1)
        config.model.layers = 2
        try Trainer(config: config, outputDirectory: run).run(data: Tiny.data)
        let predictor = try Predictor(checkpoint: run)

        let record = try Self.waterChain()
        let whole = try predictor.predict(record)

        let dir = try makeTemporaryDirectory(self).appendingPathComponent("chain")
        try FormatWriter.write(record, to: dir, format: .deephDock)
        let writer = try StreamingOperatorWriter(url: dir.appendingPathComponent("hamiltonian.h5"), chunkRows: .init(pairs: 4, boundaries: 8, shapes: 4, entries: 500))
        let keys = whole.keys
        var reports = 0
        let written = try predictor.predictStreaming(record, keys: keys, to: writer, chunkAtoms: 3) { _, _ in reports += 1 }
        try writer.finish()
        XCTAssertGreaterThan(reports, 5)
        try assertStreamedEqualsWhole(at: dir, written: written, whole: whole)

        // A structure with POSCAR + info.json only (basis def2-svp): predict computes S from the
        // basis, writes it, and predicts on its blocks — the same H as predicting with the DFT S.
        let bare = try makeTemporaryDirectory(self).appendingPathComponent("water-0020")
        try FileManager.default.createDirectory(at: bare, withIntermediateDirectories: true)
        for f in ["POSCAR", "info.json"] {
            try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020/\(f)"), to: bare.appendingPathComponent(f))
        }
        let out = try makeTemporaryDirectory(self).appendingPathComponent("pred")
        let results = try predictor.predict(inputs: [bare], outputDirectory: out)
        XCTAssertEqual(results.map(\.name), ["water-0020"])
        let predicted = try FormatReader.readRecord(at: out.appendingPathComponent("water-0020"))
        let dft = try FormatReader.readRecord(at: Fixtures.url("datasets/water-0020"))
        let s = try XCTUnwrap(predicted.overlap), reference = try XCTUnwrap(dft.overlap)
        XCTAssertEqual(Set(s.keys), Set(reference.keys))
        let h = try XCTUnwrap(try DFTRecord.readPredicted(at: out.appendingPathComponent("water-0020")))
        let expected = try predictor.predict(dft)
        XCTAssertEqual(Set(h.keys), Set(expected.keys))
        for (b, key) in expected.keys.enumerated() {
            XCTAssertLessThan(maxAbsDifference(Array(h.values(for: key)!), Array(expected.values(at: b))), 1e-9)
        }
    }
    /// A chain of 14 water molecules 5 Å apart in a box (42 atoms).
    static func waterChain() throws -> DFTRecord {
        let water = try FormatReader.readRecord(at: Fixtures.url("training/water-0001"))
        // Atoms grouped by element, as the dock layout stores them.
        var numbers: [Int] = [], positions: [Vec3] = []
        for z in [8, 1] {
            for k in 0 ..< 14 {
                for (a, p) in water.structure.positions.enumerated() where water.structure.atomicNumbers[a] == z {
                    numbers.append(z)
                    positions.append(p + Vec3(5.0 * Double(k), 0, 0))
                }
            }
        }
        let box = Lattice(vectors: [Vec3(100, 0, 0), Vec3(0, 30, 0), Vec3(0, 0, 30)], periodic: [false, false, false])
        let structure = Structure(lattice: box, atomicNumbers: numbers, positions: positions, basis: water.structure.basis)
        return DFTRecord(name: "chain", structure: structure)
    }

    /// A trained hybrid (stage 1 + stage 2) is predicted layer by layer over chunks of atoms on two
    /// workers: the same blocks as the whole-structure prediction.
    func testHybridStreamingOnTwoWorkersEqualsWholeStructurePrediction() throws {
        let dir = try makeTemporaryDirectory(self)
        var config = Tiny.config(epochs: 1)
        config.model.layers = 2
        let s1 = dir.appendingPathComponent("stage1")
        try Trainer(config: config, outputDirectory: s1).run(data: Tiny.data)
        var refine = RefineConfig()
        refine.epochs = 1
        refine.batchSize = 2
        refine.stage2.width = 8; refine.stage2.heads = 2; refine.stage2.layers = 1; refine.stage2.feedForward = 8; refine.stage2.radialCount = 4
        let hybridDir = dir.appendingPathComponent("hybrid")
        try Refiner(config: refine, stage1: s1, outputDirectory: hybridDir).run(data: Tiny.data)
        let predictor = try Predictor(checkpoint: hybridDir)
        XCTAssertEqual(predictor.kind, .hybrid)

        let record = try Self.waterChain()
        let whole = try predictor.predict(record)
        let file = dir.appendingPathComponent("chain")
        try FormatWriter.write(record, to: file, format: .deephDock)
        let writer = try StreamingOperatorWriter(url: file.appendingPathComponent("hamiltonian.h5"), chunkRows: .init(pairs: 4, boundaries: 8, shapes: 4, entries: 500))
        var reported: [Int] = []
        let written = try ExecutionContext(threads: 2).run {
            try predictor.predictStreaming(record, keys: whole.keys, to: writer, chunkAtoms: 6) { done, _ in reported.append(done) }
        }
        try writer.finish()
        XCTAssertGreaterThanOrEqual(reported.count, 4)   // chunk passes, two chunks at a time
        XCTAssertEqual(reported, reported.sorted())
        XCTAssertEqual(reported.last, record.structure.atomCount)
        try assertStreamedEqualsWhole(at: file, written: written, whole: whole)
    }
}

/// The streamed hamiltonian.h5 in `folder` holds every block of the whole-structure prediction,
/// equal to within 1e-5 of its largest entry (Float rounding of a different summation order).
func assertStreamedEqualsWhole(at folder: URL, written: Int, whole: BlockOperator, file: StaticString = #filePath, line: UInt = #line) throws {
    let streamed = try XCTUnwrap(try FormatReader.readRecord(at: folder).hamiltonian, file: file, line: line)
    XCTAssertEqual(written, whole.blockCount, file: file, line: line)
    XCTAssertEqual(Set(streamed.keys), Set(whole.keys), file: file, line: line)
    var worst = 0.0, scale = 0.0
    for (b, key) in whole.keys.enumerated() {
        worst = max(worst, maxAbsDifference(Array(streamed.values(for: key)!), Array(whole.values(at: b))))
        scale = max(scale, whole.values(at: b).map(abs).max() ?? 0)
    }
    XCTAssertLessThan(worst, 1e-5 * max(scale, 1), "streamed vs whole: \(worst) eV (largest |H| \(scale))", file: file, line: line)
}

extension DFTRecord {
    /// hamiltonian_pred.h5 of a prediction folder, read as the folder's Hamiltonian.
    static func readPredicted(at folder: URL) throws -> BlockOperator? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pred-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in ["POSCAR", "info.json"] { try FileManager.default.copyItem(at: folder.appendingPathComponent(f), to: dir.appendingPathComponent(f)) }
        try FileManager.default.copyItem(at: folder.appendingPathComponent("hamiltonian_pred.h5"), to: dir.appendingPathComponent("hamiltonian.h5"))
        return try FormatReader.readRecord(at: dir).hamiltonian
    }
}
