import Bands
import Foundation
import Formats
import StageAPI
import Structures
import TestSupport
import XCTest

/// The electron count (info.json `occupation`) survives ingest, so the bands stage can fix E_F from
/// it when the source has no Fermi energy.
final class IngestedOccupationTests: XCTestCase {
    func testBandsAfterIngestUseTheElectronCount() throws {
        let tmp = try makeTemporaryDirectory(self)
        let data = tmp.appendingPathComponent("data")
        let water = data.appendingPathComponent("water-0020")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: water)
        // No Fermi energy: only `occupation` can place E_F.
        let infoURL = water.appendingPathComponent("info.json")
        let text = try String(contentsOf: infoURL, encoding: .utf8)
        let edited = text.replacingOccurrences(of: "\"fermi_energy_eV\": -2.6035917102394164", with: "\"fermi_energy_eV\": null")
        XCTAssertNotEqual(edited, text)
        try edited.write(to: infoURL, atomically: true, encoding: .utf8)
        let info = try JSONValue.parse(Data(contentsOf: infoURL))

        func run(_ kind: some StageKind, inputs: [String: [URL]], out: String) throws -> URL {
            let dir = tmp.appendingPathComponent(out)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let parameters = StageParameters(Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) }))
            _ = try kind.run(StageContext(stageName: out, parameters: parameters, inputs: inputs, outputDirectory: dir, reporter: .discard))
            return dir
        }
        let ingested = try run(IngestStage(), inputs: ["dataset": [data]], out: "ingest")
        let stored = try FormatReader.readRecord(at: ingested.appendingPathComponent("structures/water-0020"))
        XCTAssertNil(stored.fermiEnergy)
        XCTAssertEqual(stored.electronCount, 10)
        XCTAssertEqual(try BandInput.load(structure: ingested.appendingPathComponent("structures/water-0020")).electronCount, 10)

        let bands = try run(BandsStage(), inputs: ["structures": [ingested]], out: "bands")
        let lines = try String(contentsOf: bands.appendingPathComponent("summary.tsv"), encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        let row = Dictionary(uniqueKeysWithValues: zip(lines[0], lines[1]))
        XCTAssertEqual(row["fermi_source"], "electron count (occupation), mid-gap")
        XCTAssertEqual(row["metal"], "0")
        // Five doubly occupied levels: PySCF's HOMO and LUMO (stored in info.json).
        XCTAssertEqual(Double(row["homo_eV"]!)!, info["homo_eV"]!.doubleValue!, accuracy: 1e-4)
        XCTAssertEqual(Double(row["lumo_eV"]!)!, info["lumo_eV"]!.doubleValue!, accuracy: 1e-4)
    }
}
