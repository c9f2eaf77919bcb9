// Code identity in fingerprints: the digests compiled into this build are those of the checkout's
// sources, and a source edit changes exactly the fingerprints of the stages whose kind's module
// links the edited module, plus everything downstream of them (on the repository's pipeline.json).
import Foundation
import HarmoSECLI
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class CodeIdentityTests: XCTestCase {
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testEmbeddedDigestsAreThoseOfTheCheckout() throws {
        let table = StageKinds.codeIdentityTable
        for kind in StageKinds.all {
            let identity = try XCTUnwrap(StageKinds.codeIdentity(of: kind), "kind '\(kind.name)' has no code identity")
            XCTAssertNotNil(table[identity.module], kind.name)
        }
        XCTAssertEqual(StageKinds.codeIdentity(of: StageKinds.production.first { $0.name == "train" }!)?.module, "Training")
        XCTAssertEqual(StageKinds.codeIdentity(of: StageKinds.production.first { $0.name == "bands" }!)?.module, "Bands")
        // The closure is what the module links: Training links the autograd engine and SO3, not Bands.
        let training = try XCTUnwrap(table["Training"]).dependencies
        XCTAssertTrue(Set(["Autograd", "Linalg", "SO3", "Models", "Formats", "StageAPI"]).isSubset(of: Set(training)), "\(training)")
        XCTAssertFalse(training.contains("Bands"))
        XCTAssertFalse(try XCTUnwrap(table["Bands"]).dependencies.contains("Training"))
        XCTAssertFalse(training.contains("Pipeline"), "kinds do not link the runner")
        // Recompute every module's digest from the files on disk: the build embedded the current sources.
        for (module, entry) in table {
            XCTAssertFalse(entry.files.isEmpty, module)
            let files = try entry.files.map { ($0, try SHA256.hashFile(atPath: packageRoot.appendingPathComponent($0).path)) }
            XCTAssertEqual(CodeIdentity.moduleDigest(files: files), entry.own, "\(module): embedded digest is stale")
        }
        // Every Swift file of a module's folder is covered.
        let trainingFiles = try FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("Sources/Training").path)
            .filter { $0.hasSuffix(".swift") }.map { "Sources/Training/\($0)" }
        XCTAssertEqual(Set(trainingFiles), Set(try XCTUnwrap(table["Training"]).files))
    }

    private var cacheURL: URL?
    func hashCache() throws -> URL {
        if let cacheURL { return cacheURL }
        let url = try makeTemporaryDirectory(self).appendingPathComponent("hashes.tsv")
        cacheURL = url
        return url
    }

    /// Fingerprints of the repository's pipeline.json under a registry whose digest of `module` is replaced.
    func fingerprints(editing module: String?) throws -> [String: String] {
        let digests = module.map { [$0: String(repeating: "e", count: 64)] } ?? [:]
        let registry = try StageRegistry(StageKinds.all, codeIdentity: { StageKinds.codeIdentity(of: $0, ownDigests: digests) })
        let spec = try PipelineSpec.load(from: packageRoot.appendingPathComponent("pipeline.json"), registry: registry)
        let hasher = ContentHasher(cacheURL: try hashCache(), excluding: [])
        let fps = try computeFingerprints(spec, hasher: hasher)
        try hasher.save()  // data/ is hashed once per test, not once per simulated edit
        return fps.mapValues(\.full)
    }

    func changed(_ a: [String: String], _ b: [String: String]) -> Set<String> {
        Set(a.keys.filter { a[$0] != b[$0] })
    }

    func testASourceEditInvalidatesExactlyTheStagesThatRunTheEditedCode() throws {
        let base = try fingerprints(editing: nil)
        let stages = Set(base.keys)
        func named(_ prefixes: [String]) -> Set<String> { stages.filter { s in prefixes.contains { s.hasPrefix($0) } } }
        let learning = named(["features-", "train-", "refine-", "predict-", "evaluate-"])
        XCTAssertFalse(learning.isEmpty)

        // Training: everything that runs it or reads what it made; ingest and bands stay.
        XCTAssertEqual(changed(base, try fingerprints(editing: "Training")), learning)
        // Bands: the bands stages and evaluation (which computes bands); training stays up to date.
        XCTAssertEqual(changed(base, try fingerprints(editing: "Bands")), named(["bands-", "evaluate-"]))
        // Autograd is linked by Training only (not by Bands, Formats or Evaluation).
        XCTAssertEqual(changed(base, try fingerprints(editing: "Autograd")), learning)
        // Formats is linked by every kind: everything.
        XCTAssertEqual(changed(base, try fingerprints(editing: "Formats")), stages)
        // The runner is not part of any kind's code.
        XCTAssertEqual(changed(base, try fingerprints(editing: "Pipeline")), [])
    }

    func testStatusSaysCodeChangedAndTheStageReruns() throws {
        func registry(_ digest: String) throws -> StageRegistry {
            try StageRegistry([ScaleKind()], codeIdentity: { _ in CodeIdentity(module: "PipelineTests", digest: digest) })
        }
        let project = try Project(self, registry: try registry(String(repeating: "a", count: 64)))
        try project.setPipeline(#"{"stages": {"scale": {"kind": "test-scale", "inputs": {"source": "data/set"}}, "after": {"kind": "test-scale", "inputs": {"source": {"stage": "scale"}}}}}"#)
        XCTAssertTrue(try project.run().succeeded)
        let manifest = try JSONValue.parse(Data(contentsOf: project.outputs.appendingPathComponent("scale/latest/manifest.json")))
        XCTAssertEqual(manifest["code"]?["digest"]?.stringValue, String(repeating: "a", count: 64))
        XCTAssertEqual(manifest["code"]?["module"]?.stringValue, "PipelineTests")

        project.registry = try registry(String(repeating: "b", count: 64))
        let status = try project.status()
        XCTAssertEqual(status["scale"]?.state.word, "stale")
        let reason = try XCTUnwrap(status["scale"]?.state.reasons.first)
        XCTAssertTrue(reason.hasPrefix("code changed: module PipelineTests or a module it links differs"), reason)
        XCTAssertTrue(status["after"]?.state.reasons.contains { $0.contains("code changed") } ?? false)
        let again = try project.run()
        XCTAssertEqual(Set(again.executed), ["scale", "after"])
    }
}
