import Foundation
import Formats
import StageAPI
import Structures
import TestSupport
import XCTest

/// info.json keys DFTRecord does not model (`occupation`, `homo_eV`, …) travel with the record:
/// read → write is byte for byte, and convert and ingest keep them.
final class InfoExtrasTests: XCTestCase {
    /// Every DeepH-dock fixture whose info.json DeepH-dock (or the dataset scripts, which use
    /// Python's json.dumps the same way) wrote. molecules/4990 is left out: its "0.00" is not how
    /// Python prints 0.0, so no writer that parses the number can give those bytes back.
    static let dockFolders = [
        "peer/deeph-dock/MoTe2", "peer/deeph-dock/Si", "peer/deeph-dock/H2O-pyscf",
        "peer/deeph-dock/molecules/1000", "peer/deeph-dock/molecules/25000",
        "peer/deeph-dock/single-atoms/Mo", "peer/deeph-dock/h2o-rotated/1",
        "datasets/water-0020", "datasets/ethanol-0046", "datasets/mos2-2x2-0000",
    ]

    func testDockInfoJSONRoundTripsByteForByte() throws {
        let tmp = try makeTemporaryDirectory(self)
        for (n, folder) in Self.dockFolders.enumerated() {
            let record = try FormatReader.readRecord(at: Fixtures.url(folder))
            let out = tmp.appendingPathComponent("\(n)")
            try FormatWriter.write(record, to: out, format: .deephDock)
            let original = try String(contentsOf: Fixtures.url("\(folder)/info.json"), encoding: .utf8)
            let written = try String(contentsOf: out.appendingPathComponent("info.json"), encoding: .utf8)
            XCTAssertEqual(written, original, folder)
            var back = try FormatReader.readRecord(at: out)
            back.name = record.name
            XCTAssertEqual(back, record, folder)
        }
    }

    func testExtrasAreReadInFileOrderWithTheirValues() throws {
        let water = try FormatReader.readRecord(at: Fixtures.url("datasets/water-0020"))
        XCTAssertEqual(water.extraInfo.map(\.key), ["occupation", "basis", "xc", "code", "scf_seconds", "homo_eV", "lumo_eV"])
        XCTAssertEqual(water.electronCount, 10)
        XCTAssertEqual(water.extraInfoValue("homo_eV"), .double(-6.340235022931284))
        XCTAssertEqual(water.extraInfoValue("occupation"), .int(10), "an integer stays an integer")
        XCTAssertEqual(water.extraInfoValue("basis"), "def2-svp")
        let mos2 = try FormatReader.readRecord(at: Fixtures.url("datasets/mos2-2x2-0000"))
        XCTAssertEqual(mos2.extraInfoValue("scf_kmesh"), [4, 4, 1])
        XCTAssertEqual(mos2.extraInfoValue("setups"), ["Mo": "6"])
        XCTAssertEqual(mos2.electronCount, 72)
        // A null value is kept too (DeepH-dock writes fermi_energy_eV: null; extras may be null).
        let peer = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/MoTe2"))
        XCTAssertEqual(peer.extraInfo, [])
        XCTAssertNil(peer.electronCount)
    }

    /// Legacy info.json carries the extras after its own four keys, so dock → legacy → dock
    /// gives the dock info.json back unchanged.
    func testDockToLegacyToDockKeepsExtras() throws {
        let tmp = try makeTemporaryDirectory(self)
        let original = try FormatReader.readRecord(at: Fixtures.url("datasets/ethanol-0046"))
        try FormatWriter.write(original, to: tmp.appendingPathComponent("legacy"), format: .deephLegacy)
        let legacyInfo = try JSONValue.parse(Data(contentsOf: tmp.appendingPathComponent("legacy/info.json")))
        XCTAssertEqual(legacyInfo.objectValue?.map(\.0),
                       ["nsites", "isorthogonal", "isspinful", "fermi_level"] + original.extraInfo.map(\.key))
        let legacy = try FormatReader.readRecord(at: tmp.appendingPathComponent("legacy"))
        XCTAssertEqual(legacy.extraInfo, original.extraInfo)
        XCTAssertEqual(legacy.electronCount, 26)
        try FormatWriter.write(legacy, to: tmp.appendingPathComponent("dock"), format: .deephDock)
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("dock/info.json")),
                       try Data(contentsOf: Fixtures.url("datasets/ethanol-0046/info.json")))
    }

    /// An extra whose key the target format writes itself is dropped: the modelled value wins.
    func testModelledKeyWinsOverAnExtraOfTheSameName() throws {
        let tmp = try makeTemporaryDirectory(self)
        var record = try FormatReader.readRecord(at: Fixtures.url("peer/deeph-dock/Si"))
        record.extraInfo = [.init(key: "fermi_level", json: "1.5"), .init(key: "occupation", json: "8")]
        try FormatWriter.write(record, to: tmp.appendingPathComponent("legacy"), format: .deephLegacy)
        let legacy = try FormatReader.readRecord(at: tmp.appendingPathComponent("legacy"))
        XCTAssertEqual(legacy.fermiEnergy, record.fermiEnergy)
        XCTAssertEqual(legacy.extraInfo, [.init(key: "occupation", json: "8")])
        // Written to dock, "fermi_level" is no dock key, so it stays an extra.
        try FormatWriter.write(record, to: tmp.appendingPathComponent("dock"), format: .deephDock)
        XCTAssertEqual(try FormatReader.readRecord(at: tmp.appendingPathComponent("dock")).extraInfo, record.extraInfo)
    }

    func testBadExtrasNameTheFileAndField() throws {
        let tmp = try makeTemporaryDirectory(self)
        let s = tmp.appendingPathComponent("s")
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: s)
        let info = s.appendingPathComponent("info.json")
        let text = try String(contentsOf: info, encoding: .utf8)
        for bad in ["\"ten\"", "-2", "[10]"] {
            try text.replacingOccurrences(of: "\"occupation\": 10", with: "\"occupation\": \(bad)").write(to: info, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try FormatReader.readRecord(at: s), bad) { error in
                let e = error as? FormatError
                XCTAssertEqual(e?.file, info.path)
                XCTAssertEqual(e?.field, "occupation")
                XCTAssertTrue(e?.message.contains("electrons") == true, "\(error)")
            }
        }
        // A record built in code with a value that is not JSON text fails on writing, naming the key.
        var record = try FormatReader.readRecord(at: Fixtures.url("datasets/water-0020"))
        record.extraInfo.append(.init(key: "note", json: "not json"))
        XCTAssertThrowsError(try FormatWriter.write(record, to: tmp.appendingPathComponent("w"), format: .deephDock)) { error in
            XCTAssertEqual((error as? FormatError)?.field, "note")
        }
    }

    /// Archives go through the same reader: extras arrive in the record.
    func testExtrasFromAnArchive() throws {
        let tmp = try makeTemporaryDirectory(self)
        let url = tmp.appendingPathComponent("set.tar.gz")
        try TestArchive.write(url, kind: .tarGz, root: Fixtures.url("datasets"), folders: ["water-0020"])
        var records: [DFTRecord] = []
        try DatasetSource(url: url).forEachRecord { records.append($0) }
        XCTAssertEqual(records.count, 1)
        let folder = try FormatReader.readRecord(at: Fixtures.url("datasets/water-0020"))
        XCTAssertEqual(records.first?.extraInfo, folder.extraInfo)
        XCTAssertEqual(records.first?.electronCount, 10)
    }

    /// Python's json never writes a key twice; a file that does is ambiguous and rejected.
    func testDuplicateInfoKeyIsAnError() throws {
        let tmp = try makeTemporaryDirectory(self)
        let s = tmp.appendingPathComponent("s")
        try FileManager.default.copyItem(at: Fixtures.url("datasets/water-0020"), to: s)
        let info = s.appendingPathComponent("info.json")
        let text = try String(contentsOf: info, encoding: .utf8)
        try text.replacingOccurrences(of: "\"xc\": \"pbe\"", with: "\"xc\": \"pbe\", \"xc\": \"b3lyp\"")
            .write(to: info, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FormatReader.readRecord(at: s)) { error in
            let e = error as? FormatError
            XCTAssertEqual(e?.file, info.path)
            XCTAssertTrue(e?.message.contains("duplicate key \"xc\"") == true, "\(error)")
        }
    }

    /// The ingest stage stores dock folders whose info.json is the source's, extras included.
    func testIngestKeepsExtras() throws {
        let tmp = try makeTemporaryDirectory(self)
        let data = tmp.appendingPathComponent("data")
        for name in ["water-0020", "ethanol-0046"] {
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Fixtures.url("datasets/\(name)"), to: data.appendingPathComponent(name))
        }
        let kind = IngestStage()
        let parameters = StageParameters(Dictionary(uniqueKeysWithValues: kind.parameters.map { ($0.name, $0.defaultValue!) }))
        let out = tmp.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let metrics = try kind.run(StageContext(stageName: "ingest", parameters: parameters, inputs: ["dataset": [data]],
                                                outputDirectory: out, reporter: .discard))
        XCTAssertEqual(metrics["structures"], 2)
        for (name, folder) in try IngestStage.structureFolders(in: out) {
            XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("info.json")),
                           try Data(contentsOf: Fixtures.url("datasets/\(name)/info.json")), name)
            let stored = try FormatReader.readRecord(at: folder)
            XCTAssertEqual(stored.electronCount, name == "water-0020" ? 10 : 26)
        }
    }
}
