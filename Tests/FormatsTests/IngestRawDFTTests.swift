import Foundation
import Formats
import StageAPI
import Structures
import TestSupport
import XCTest

/// The ingest stage takes ABACUS and CP2K run folders and archives of them.
final class IngestRawDFTTests: XCTestCase {
    func ingest(_ dataset: URL) throws -> (metrics: [String: JSONValue], out: URL) {
        let kind = IngestStage()
        let parameters = StageParameters(Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) }))
        let out = try makeTemporaryDirectory(self).appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let metrics = try kind.run(StageContext(stageName: "ingest", parameters: parameters, inputs: ["dataset": [dataset]],
                                                outputDirectory: out, reporter: .discard))
        return (metrics, out)
    }

    func testIngestsCP2KFolderOfRunsAndArchive() throws {
        // A folder holding the two water runs.
        let (metrics, out) = try ingest(Fixtures.url("cp2k"))
        XCTAssertEqual(metrics["structures"], 2)
        XCTAssertEqual(try IngestStage.structureFolders(in: out).map(\.name), ["water", "water-rotated"])
        let stored = try FormatReader.readRecord(at: out.appendingPathComponent("structures/water"))
        XCTAssertEqual(stored.electronCount, 8)
        let (archived, _) = try ingest(Fixtures.url("cp2k/graphene.tar.xz"))
        XCTAssertEqual(archived["structures"], 1)
    }

    func testIngestsABACUSArchive() throws {
        let (metrics, out) = try ingest(Fixtures.url("abacus/MoS2.tar.xz"))
        XCTAssertEqual(metrics["structures"], 1)
        XCTAssertEqual(metrics["warnings"], 0)
        let stored = try FormatReader.readRecord(at: out.appendingPathComponent("structures/MoS2"))
        XCTAssertEqual(stored.fermiEnergy, -2.3123356452)
        XCTAssertEqual(stored.structure.totalOrbitals, 53)
    }
}
