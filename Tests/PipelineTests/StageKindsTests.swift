// The production stage kinds (ingest, features, bands) run through the real runner on fixture data,
// checked against the modules' direct APIs and against the DFT code's own numbers.
import Bands
import Formats
import Foundation
import Graphs
import HarmoSECLI
@testable import Pipeline
@testable import StageAPI
import Structures
import TestSupport
import XCTest

final class StageKindsTests: XCTestCase {
    /// data/molecules/{water-0020, ethanol-0046}, data/crystals/mos2-2x2-0000 in a temporary folder.
    func makeProject() throws -> URL {
        let root = try makeTemporaryDirectory(self)
        let fm = FileManager.default
        for (folder, names) in [("molecules", ["water-0020", "ethanol-0046"]), ("crystals", ["mos2-2x2-0000"])] {
            try fm.createDirectory(at: root.appendingPathComponent("data/\(folder)"), withIntermediateDirectories: true)
            for name in names {
                try fm.copyItem(at: Fixtures.url("datasets/\(name)"), to: root.appendingPathComponent("data/\(folder)/\(name)"))
            }
        }
        // A short k-path for the crystal (the standard path has ≥ 150 points: slow in debug).
        try "5 0 0 0 0.5 0 0 GAMMA M\n4 0.5 0 0 0.3333333333 0.3333333333 0 M K\n"
            .write(to: root.appendingPathComponent("data/crystals/mos2-2x2-0000/K_PATH"), atomically: true, encoding: .utf8)
        try """
        {
          "version": 1,
          "stages": {
            "ingest-molecules": {"kind": "ingest", "inputs": {"dataset": "data/molecules"}},
            "ingest-crystals": {"kind": "ingest", "inputs": {"dataset": "data/crystals"}},
            "features-molecules": {"kind": "features", "inputs": {"data": {"stage": "ingest-molecules"}}, "params": {"cutoff": 4.0}},
            "features-crystals": {"kind": "features", "inputs": {"data": {"stage": "ingest-crystals"}}},
            "bands-molecules": {"kind": "bands", "inputs": {"structures": {"stage": "ingest-molecules"}}},
            "bands-crystals": {"kind": "bands", "inputs": {"structures": {"stage": "ingest-crystals"}}, "params": {"points_per_inverse_angstrom": 8}}
          }
        }
        """.write(to: root.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        return root
    }

    func runner(_ root: URL) throws -> PipelineRunner {
        let spec = try PipelineSpec.load(from: root.appendingPathComponent("pipeline.json"), registry: StageKinds.registry())
        return PipelineRunner(spec: spec, outputs: root.appendingPathComponent("outputs"), toolVersion: "test",
                              console: RunConsole(isTerminal: false) { _ in })
    }

    func tsv(_ url: URL) throws -> [[String: String]] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(lines[0], $0)) }
    }

    func testIngestFeaturesBandsChainMatchesTheModulesAndTheDFTReference() throws {
        let root = try makeProject()
        var options = RunOptions()
        options.jobs = 2
        let summary = try runner(root).run(options)
        XCTAssertTrue(summary.succeeded, "\(summary.failed)")
        XCTAssertEqual(summary.executed.count, 6)
        let outputs = root.appendingPathComponent("outputs")

        // ingest: the stored records are the originals (atoms grouped by element), bit for bit.
        let index = try tsv(outputs.appendingPathComponent("ingest-molecules/latest/index.tsv"))
        XCTAssertEqual(index.map { $0["name"]! }, ["ethanol-0046", "water-0020"])
        XCTAssertEqual(index.first { $0["name"] == "water-0020" }?["formula"], "O1H2")
        for (set, name) in [("molecules", "water-0020"), ("molecules", "ethanol-0046"), ("crystals", "mos2-2x2-0000")] {
            let original = try FormatReader.readRecord(at: root.appendingPathComponent("data/\(set)/\(name)"))
            let expected = original.permutingAtoms(DeepHDock.atomOrder(for: original.structure))
            let stored = try FormatReader.readRecord(at: outputs.appendingPathComponent("ingest-\(set)/latest/structures/\(name)"))
            XCTAssertEqual(stored.structure.atomicNumbers, expected.structure.atomicNumbers, name)
            XCTAssertLessThan(maxAbsDifference(stored.structure.positions.flatMap { [$0.x, $0.y, $0.z] },
                                               expected.structure.positions.flatMap { [$0.x, $0.y, $0.z] }), 1e-9, name)
            for (a, b) in [(stored.hamiltonian!, expected.hamiltonian!), (stored.overlap!, expected.overlap!)] {
                XCTAssertEqual(a.sorted().keys, b.sorted().keys, name)
                XCTAssertEqual(a.sorted().entries, b.sorted().entries, name)
            }
            XCTAssertEqual(stored.fermiEnergy, original.fermiEnergy)
        }
        let ingestManifest = try JSONValue.parse(Data(contentsOf: outputs.appendingPathComponent("ingest-crystals/latest/manifest.json")))
        XCTAssertEqual(ingestManifest["metrics"]?["structures"], 1)
        XCTAssertEqual(ingestManifest["metrics"]?["atoms"], 12)

        // features: the stored edges are what the Graphs module builds from the stored structures.
        let water = try FormatReader.readRecord(at: outputs.appendingPathComponent("ingest-molecules/latest/structures/water-0020"))
        let waterRow = try tsv(outputs.appendingPathComponent("features-molecules/latest/index.tsv")).first { $0["name"] == "water-0020" }
        XCTAssertEqual(Int(waterRow?["edges"] ?? ""), try NeighborGraphBuilder.withinCutoff(water.structure, cutoff: 4.0, includeSelf: false).edgeCount)
        XCTAssertEqual(Int(waterRow?["edges"] ?? ""), 6, "3 atoms, all within 4 Å of each other")
        let mos2 = try FormatReader.readRecord(at: outputs.appendingPathComponent("ingest-crystals/latest/structures/mos2-2x2-0000"))
        let mos2Row = try tsv(outputs.appendingPathComponent("features-crystals/latest/index.tsv"))[0]
        XCTAssertEqual(Int(mos2Row["edges"] ?? ""), mos2.overlap!.blockCount - mos2.structure.atomCount,
                       "blocks mode: one edge per off-site overlap block")

        // bands: a molecule's levels at Γ are PySCF's orbital energies (info.json homo_eV/lumo_eV).
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("data/molecules/water-0020/info.json"))) as! [String: Any]
        let bands = try tsv(outputs.appendingPathComponent("bands-molecules/latest/summary.tsv"))
        let w = bands.first { $0["name"] == "water-0020" }!
        XCTAssertEqual(Double(w["homo_eV"]!)!, info["homo_eV"] as! Double, accuracy: 1e-5)
        XCTAssertEqual(Double(w["lumo_eV"]!)!, info["lumo_eV"] as! Double, accuracy: 1e-5)
        XCTAssertEqual(w["bands"], "24")
        XCTAssertTrue(FileManager.default.fileExists(atPath: outputs.appendingPathComponent("bands-molecules/latest/bands/water-0020/band.h5").path))
        // A crystal: the same numbers as the Bands module computes directly from the original folder.
        let direct = try BandInput.load(structure: root.appendingPathComponent("data/crystals/mos2-2x2-0000"))
        let path = try KPath.read(XCTUnwrap(direct.folderKPath))
        XCTAssertTrue(FileManager.default.fileExists(atPath: outputs.appendingPathComponent("ingest-crystals/latest/structures/mos2-2x2-0000/K_PATH").path),
                      "ingest keeps the structure's K_PATH")
        let reference = try BandStructure.compute(direct.system, path: path, fermiEnergy: direct.record.fermiEnergy, electronCount: direct.electronCount)
        let c = try tsv(outputs.appendingPathComponent("bands-crystals/latest/summary.tsv"))[0]
        XCTAssertEqual(Int(c["kpoints"]!), 9)
        XCTAssertEqual(Int(c["kpoints"]!), reference.kpoints.count)
        XCTAssertEqual(Int(c["bands"]!), 164)
        if let gap = reference.analysis.bandGap { XCTAssertEqual(Double(c["gap_eV"]!)!, gap, accuracy: 1e-5) }

        // Nothing to do the second time.
        let again = try runner(root).run(options)
        XCTAssertTrue(again.executed.isEmpty)
        XCTAssertEqual(again.upToDate.count, 6)
    }

    func testIngestProcessesOnlyItsPartition() throws {
        let root = try makeProject()
        let out = root.appendingPathComponent("rank1")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let spec = try PipelineSpec.load(from: root.appendingPathComponent("pipeline.json"), registry: StageKinds.registry())
        let context = StageContext(stageName: "ingest-molecules", parameters: spec.stages["ingest-molecules"]!.parameters,
                                   inputs: ["dataset": [root.appendingPathComponent("data/molecules")]], outputDirectory: out,
                                   partition: Partition(rank: 1, size: 2), reporter: .discard)
        let metrics = try IngestStage().run(context)
        XCTAssertEqual(metrics["structures"], 1)
        XCTAssertEqual(try tsv(out.appendingPathComponent("index.tsv")).map { $0["name"]! }, ["water-0020"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("structures").path), ["water-0020"])
    }

    func testCorruptStructureFailsIngestNamingTheFileAndBlocksItsDependents() throws {
        let root = try makeProject()
        let h = root.appendingPathComponent("data/molecules/water-0020/hamiltonian.h5")
        let bytes = try Data(contentsOf: h)
        try bytes.prefix(bytes.count / 3).write(to: h)
        let summary = try runner(root).run(RunOptions())
        XCTAssertEqual(Array(summary.failed.keys), ["ingest-molecules"])
        XCTAssertTrue(summary.failed["ingest-molecules"]!.contains("water-0020/hamiltonian.h5"), summary.failed["ingest-molecules"]!)
        XCTAssertEqual(Set(summary.blocked), ["features-molecules", "bands-molecules"])
        XCTAssertEqual(Set(summary.executed), ["ingest-crystals", "features-crystals", "bands-crystals"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("outputs/ingest-molecules/latest").path))
    }

    func testNonHermitianDataIsAWarningOrAnErrorWithStrict() throws {
        let root = try makeProject()
        // Break the Hermiticity of water: H(0; 0, 1) no longer equals H(0; 1, 0)ᵀ.
        let folder = root.appendingPathComponent("data/molecules/water-0020")
        var record = try FormatReader.readRecord(at: folder)
        var h = record.hamiltonian!
        let b = h.position(of: BlockKey(0, 0, 0, 0, 1))!
        h.entries[h.offsets[b]] += 0.01
        record.hamiltonian = h
        try FormatWriter.write(record, to: folder, format: .deephDock)

        var options = RunOptions()
        options.only = ["ingest-molecules"]
        let lenient = try runner(root).run(options)
        XCTAssertTrue(lenient.succeeded)
        let manifest = try JSONValue.parse(Data(contentsOf: root.appendingPathComponent("outputs/ingest-molecules/latest/manifest.json")))
        XCTAssertEqual(manifest["metrics"]?["warnings"], 1)
        let log = try String(contentsOf: root.appendingPathComponent("outputs/ingest-molecules/latest/log.txt"), encoding: .utf8)
        XCTAssertTrue(log.contains("water-0020: hamiltonian: not Hermitian"), log)

        let text = try String(contentsOf: root.appendingPathComponent("pipeline.json"), encoding: .utf8)
            .replacingOccurrences(of: #""inputs": {"dataset": "data/molecules"}"#,
                                  with: #""inputs": {"dataset": "data/molecules"}, "params": {"strict": true}"#)
        try text.write(to: root.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let strict = try runner(root).run(options)
        let error = try XCTUnwrap(strict.failed["ingest-molecules"])
        XCTAssertTrue(error.contains("water-0020: hamiltonian: not Hermitian") && error.contains("params.strict is true"), error)
    }

    /// Typed input contracts: a stage reference to an artifact of the wrong kind is a validation
    /// error naming the stage, the input and the kinds it takes.
    func testAnInputOfTheWrongKindIsAValidationErrorNamingTheStage() throws {
        let root = try makeProject()
        let text = """
        {"stages": {
          "ingest": {"kind": "ingest", "inputs": {"dataset": "data/molecules"}},
          "bands": {"kind": "bands", "inputs": {"structures": {"stage": "ingest"}}},
          "evaluate": {"kind": "evaluate", "inputs": {"predictions": {"stage": "bands"}, "reference": {"stage": "ingest"},
                                                      "reference_bands": {"stage": "ingest"}}}
        }}
        """
        XCTAssertThrowsError(try PipelineSpec.parse(Data(text.utf8), file: root.appendingPathComponent("pipeline.json"),
                                                    registry: StageKinds.registry())) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("stages.evaluate.inputs.predictions.stage: stage \"bands\" is of kind 'bands', but this input takes the output of 'predict'"), message)
            XCTAssertTrue(message.contains("stages.evaluate.inputs.reference_bands.stage: stage \"ingest\" is of kind 'ingest', but this input takes the output of 'bands'"), message)
        }
    }

    func testKindsAreRegisteredAndDocumented() throws {
        let registry = try StageKinds.registry()
        XCTAssertTrue(Set(StageKinds.production.map(\.name)).isSuperset(of: ["ingest", "features", "bands", "evaluate"]))
        for kind in StageKinds.production {
            XCTAssertNotNil(registry.kind(named: kind.name))
            XCTAssertFalse(kind.summary.isEmpty)
            for p in kind.parameters { XCTAssertFalse(p.help.isEmpty, "\(kind.name).\(p.name)") }
            for i in kind.inputs { XCTAssertFalse(i.help.isEmpty, "\(kind.name).\(i.name)") }
        }
    }
}
