// The `overlap` stage writes an ingest-shaped artifact whose overlap.h5 reads back as the DFT S.
import XCTest
import Foundation
import Basis
import Formats
import StageAPI
import TestSupport

final class OverlapStageTests: XCTestCase {
    func testStageWritesIngestShapedArtifact() throws {
        let root = try makeTemporaryDirectory(self)
        let input = root.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: input.appendingPathComponent("water-0020"))
        let kind = OverlapStage()
        let params = StageParameters(["threshold": .double(0), "basis_path": .array([]), "max_memory_gib": .double(0)])
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let metrics = try kind.run(StageContext(stageName: "ov", parameters: params, inputs: ["structures": [input]],
                                                outputDirectory: out, reporter: .discard))
        XCTAssertEqual(metrics["structures"], .int(1))
        let folders = try IngestStage.structureFolders(in: out)
        XCTAssertEqual(folders.map(\.name), ["water-0020"])
        let written = try FormatReader.readRecord(at: folders[0].url)
        let reference = try FormatReader.readRecord(at: Fixtures.url("datasets/water-0020"))
        let s = try XCTUnwrap(written.overlap), r = try XCTUnwrap(reference.overlap)
        XCTAssertNil(written.hamiltonian)
        XCTAssertEqual(Set(s.keys), Set(r.keys))
        for (b, key) in r.keys.enumerated() {
            XCTAssertLessThan(maxAbsDifference(Array(s.values(for: key)!), Array(r.values(at: b))), 1e-9)
        }
        XCTAssertEqual(written.extraInfoValue("basis"), .string("def2-svp"))
    }
}
