import Foundation
import Formats
import Structures
import TestSupport
@testable import Training
import XCTest

/// Predictions exported as ABACUS CSR text read back to the predicted blocks (to the 9 printed
/// digits, in Ry) with the input's overlap.
final class PredictABACUSTests: XCTestCase {
    func testPredictWritesABACUSCSR() throws {
        let run = try makeTemporaryDirectory(self)
        try Trainer(config: Tiny.config(epochs: 1), outputDirectory: run).run(data: Tiny.data)
        let predictor = try Predictor(checkpoint: run)
        let input = Fixtures.url("training/water-0001")
        let out = try makeTemporaryDirectory(self).appendingPathComponent("pred")
        _ = try predictor.predict(inputs: [input], outputDirectory: out, format: .abacus)
        let folder = out.appendingPathComponent("water-0001")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(Predictor.predictedFileName(.abacus)).path))
        let back = try FormatReader.readRecord(at: folder)
        let original = try FormatReader.readRecord(at: input)
        let direct = try predictor.predict(original)
        // Written atoms are grouped by element (ABACUS requires it): compare by position.
        let order = DeepHDock.atomOrder(for: original.structure)
        XCTAssertEqual(back.structure.atomicNumbers, order.map { original.structure.atomicNumbers[$0] })
        var inverse = [Int](repeating: 0, count: order.count)
        for (k, a) in order.enumerated() { inverse[a] = k }
        var worst = 0.0
        for (b, key) in direct.keys.enumerated() {
            let v = Array(direct.values(at: b))
            let w = back.hamiltonian!.values(for: BlockKey(shift: key.shift, i: inverse[key.i], j: inverse[key.j])).map(Array.init)
                ?? [Double](repeating: 0, count: v.count)
            for (x, y) in zip(v, w) { worst = max(worst, abs(x - y) / max(abs(x), 1e-3)) }
        }
        XCTAssertLessThan(worst, 1e-7)
        XCTAssertEqual(back.overlap!.blockCount, original.overlap!.blockCount)
    }
}
