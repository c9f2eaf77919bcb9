import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

/// Text written by runner consoles, possibly from several threads.
final class CapturedText: @unchecked Sendable {
    // @unchecked: `text` is read and written only while `lock` is held.
    private let lock = NSLock()
    private var text = ""
    func append(_ s: String) { lock.lock(); text += s; lock.unlock() }
    var value: String { lock.lock(); defer { lock.unlock() }; return text }
}

/// A project folder in a temporary directory: data files, a pipeline.json, outputs/.
final class Project {
    let root: URL
    var registry: StageRegistry
    private let console = CapturedText()
    var consoleText: String { console.value }

    init(_ testCase: XCTestCase, registry: StageRegistry = testRegistry()) throws {
        root = try makeTemporaryDirectory(testCase)
        self.registry = registry
        try FileManager.default.createDirectory(at: root.appendingPathComponent("data/set"), withIntermediateDirectories: true)
        for i in 0 ..< 5 { try write("data/set/item-\(i).txt", "\(i + 1)\n\(10 * (i + 1))\n") }
        try write("data/other.txt", "7\n")
    }

    var outputs: URL { root.appendingPathComponent("outputs") }
    var pipelineURL: URL { root.appendingPathComponent("pipeline.json") }

    func write(_ relative: String, _ text: String) throws {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: false, encoding: .utf8)
    }

    func read(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    func setPipeline(_ json: String) throws { try write("pipeline.json", json) }

    func load() throws -> PipelineSpec { try PipelineSpec.load(from: pipelineURL, registry: registry) }

    func runner() throws -> PipelineRunner {
        let captured = console
        return PipelineRunner(spec: try load(), outputs: outputs, toolVersion: "test", console: RunConsole(isTerminal: false) { captured.append($0) })
    }

    @discardableResult
    func run(_ configure: (inout RunOptions) -> Void = { _ in }) throws -> RunSummary {
        var options = RunOptions()
        options.jobs = 2
        configure(&options)
        return try runner().run(options)
    }

    func status() throws -> [String: StageStatus] {
        Dictionary(uniqueKeysWithValues: try runner().status().map { ($0.name, $0) })
    }

    /// Every file under a stage's latest artifact except the ones that record times.
    func artifactFiles(_ stage: String, outputs: URL? = nil) throws -> [String: Data] {
        let dir = (outputs ?? self.outputs).appendingPathComponent("\(stage)/latest").resolvingSymlinksInPath()
        var out: [String: Data] = [:]
        for rel in try FileManager.default.subpathsOfDirectory(atPath: dir.path) where !ArtifactStore.runRecordNames.contains(rel) {
            var isDir: ObjCBool = false
            let url = dir.appendingPathComponent(rel)
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = try Data(contentsOf: url)
            }
        }
        return out
    }
}

/// scale (data/set) → double (×2) → concat; side (data/other.txt) → concat. Stage names get a
/// per-test suffix so execution counts never mix between tests.
func chainPipeline(_ s: String, factor: Int = 3, extra: String = "") -> String {
    """
    {
      "version": 1,
      "description": "test chain",
      "stages": {
        "scale\(s)": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"factor": \(factor)\(extra)}},
        "double\(s)": {"kind": "test-scale", "inputs": {"source": {"stage": "scale\(s)"}}, "params": {"factor": 2}},
        "side\(s)": {"kind": "test-scale", "inputs": {"source": "data/other.txt"}},
        "concat\(s)": {"kind": "test-concat", "inputs": {"parts": [{"stage": "double\(s)"}, {"stage": "side\(s)"}]}}
      }
    }
    """
}

final class RunnerTests: XCTestCase {
    let log = ExecutionLog.shared

    func counts(_ s: String) -> [Int] {
        ["scale", "double", "side", "concat"].map { log.count($0 + s) }
    }

    func testFirstRunBuildsEverythingSecondRunExecutesNothing() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-a"))
        let first = try p.run()
        XCTAssertTrue(first.succeeded)
        XCTAssertEqual(Set(first.executed), ["scale-a", "double-a", "side-a", "concat-a"])
        XCTAssertEqual(counts("-a"), [1, 1, 1, 1])
        // (1+10+…+5+50) × 3 × 2 = 990, plus 7 from side.
        let concat = try p.read("outputs/concat-a/latest/all.txt")
        XCTAssertEqual(concat.split(separator: "\n").compactMap { Int($0) }.reduce(0, +), 990 + 7)

        let second = try p.run()
        XCTAssertTrue(second.executed.isEmpty)
        XCTAssertEqual(Set(second.upToDate), ["scale-a", "double-a", "side-a", "concat-a"])
        XCTAssertEqual(second.filesHashed, 0, "a no-op run must not reread input files")
        XCTAssertEqual(counts("-a"), [1, 1, 1, 1])
        XCTAssertTrue(try p.status().values.allSatisfy { $0.state == .upToDate })
    }

    func testManifestAndLatestLink() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-m"))
        try p.run()
        let st = try p.status()["scale-m"]!
        let dir = p.outputs.appendingPathComponent("scale-m/\(st.fingerprint.id)")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: p.outputs.appendingPathComponent("scale-m/latest").path),
                       st.fingerprint.id)
        let m = try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        XCTAssertEqual(m["stage"], "scale-m")
        XCTAssertEqual(m["kind"], "test-scale")
        XCTAssertEqual(m["fingerprint"]?.stringValue, st.fingerprint.full)
        XCTAssertEqual(m["params"]?["factor"], 3)
        XCTAssertEqual(m["params"]?["prefix"], "", "defaults are recorded")
        XCTAssertEqual(m["inputs"]?["source"]?.arrayValue?.first?["path"], "data/set")
        XCTAssertEqual(m["inputs"]?["source"]?.arrayValue?.first?["files"], 5)
        XCTAssertEqual(m["metrics"]?["files"], 5)
        XCTAssertEqual(m["metrics"]?["sum"], 495)
        XCTAssertEqual(m["harmoseVersion"], "test")
        for key in ["startTime", "endTime", "durationSeconds", "host"] { XCTAssertNotNil(m[key], key) }
        let logText = try String(contentsOf: dir.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(logText.contains("scaled 5 files"), logText)
        let m2 = try JSONValue.parse(Data(contentsOf: p.outputs.appendingPathComponent("concat-m/latest/manifest.json")))
        XCTAssertEqual(m2["inputs"]?["parts"]?.arrayValue?.compactMap { $0["stage"]?.stringValue }, ["double-m", "side-m"])
    }

    func testChangingOneParameterRerunsThatStageAndItsDependentsOnly() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-b"))
        try p.run()
        try p.setPipeline(chainPipeline("-b", factor: 4))
        let status = try p.status()
        XCTAssertEqual(status["scale-b"]!.state, .stale(reasons: ["params.factor: 3 → 4"]))
        XCTAssertEqual(status["double-b"]!.state, .stale(reasons: ["inputs.source: upstream stage 'scale-b' changed (it is stale)"]))
        XCTAssertEqual(status["side-b"]!.state, .upToDate)
        XCTAssertEqual(status["concat-b"]!.state.word, "stale")

        let second = try p.run()
        XCTAssertEqual(second.executed.sorted(), ["concat-b", "double-b", "scale-b"])
        XCTAssertEqual(second.upToDate, ["side-b"])
        XCTAssertEqual(counts("-b"), [2, 2, 1, 2])
        let concat = try p.read("outputs/concat-b/latest/all.txt")
        XCTAssertEqual(concat.split(separator: "\n").compactMap { Int($0) }.reduce(0, +), 1320 + 7)

        // Going back to the old value relinks the stored versions without executing anything.
        try p.setPipeline(chainPipeline("-b"))
        XCTAssertEqual(try p.status()["scale-b"]!.state, .stored)
        let third = try p.run()
        XCTAssertTrue(third.executed.isEmpty)
        XCTAssertEqual(Set(third.relinked), ["scale-b", "double-b", "concat-b"])
        XCTAssertEqual(counts("-b"), [2, 2, 1, 2])
        XCTAssertTrue(try p.status().values.allSatisfy { $0.state == .upToDate })
    }

    func testSpellingADefaultOrAnEquivalentNumberChangesNothing() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-d"))
        try p.run()
        try p.setPipeline(chainPipeline("-d", extra: ", \"prefix\": \"\""))
        XCTAssertTrue(try p.run().executed.isEmpty)
        XCTAssertEqual(counts("-d"), [1, 1, 1, 1])
    }

    func testTouchingAnInputWithoutChangingItsContentRerunsNothing() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-t"))
        try p.run()
        let file = p.root.appendingPathComponent("data/set/item-2.txt")
        let later = Date().addingTimeInterval(60)
        try FileManager.default.setAttributes([.modificationDate: later], ofItemAtPath: file.path)
        // Rewrite with identical bytes too: new mtime, maybe new inode.
        let other = p.root.appendingPathComponent("data/other.txt")
        let bytes = try Data(contentsOf: other)
        try FileManager.default.removeItem(at: other)
        try bytes.write(to: other)

        let summary = try p.run()
        XCTAssertTrue(summary.executed.isEmpty)
        XCTAssertEqual(summary.filesHashed, 2, "only the two touched files are reread")
        XCTAssertEqual(counts("-t"), [1, 1, 1, 1])
        XCTAssertEqual(try p.run().filesHashed, 0, "the cache now knows the new stamps")
    }

    func testChangedInputContentIsExplainedAndRerun() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-c"))
        try p.run()
        try p.write("data/set/item-3.txt", "4\n41\n")  // same size as before ("4\n40\n")
        try p.write("data/set/new.txt", "1\n")
        let st = try p.status()
        XCTAssertEqual(st["scale-c"]!.state, .stale(reasons: ["inputs.source (data/set): 1 file changed (item-3.txt), 1 file added (new.txt)"]))
        XCTAssertEqual(st["side-c"]!.state, .upToDate)
        let summary = try p.run()
        XCTAssertEqual(summary.executed.sorted(), ["concat-c", "double-c", "scale-c"])
        XCTAssertEqual(try p.status()["scale-c"]!.state, .upToDate)
    }

    func testArtifactFormatVersionBumpRebuildsTheKind() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-v"))
        try p.run()
        p.registry = testRegistry(scaleVersion: 2)
        let st = try p.status()
        XCTAssertEqual(st["scale-v"]!.state, .stale(reasons: ["artifact format of kind 'test-scale' changed: version 1 → 2"]))
        XCTAssertEqual(st["concat-v"]!.state.word, "stale")
        XCTAssertEqual(Set(try p.run().executed), ["scale-v", "double-v", "side-v", "concat-v"])
    }

    func testFailureStopsDependentsKeepsOthersAndIsReported() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-f", extra: ", \"fail\": true"))
        let summary = try p.run()
        XCTAssertFalse(summary.succeeded)
        XCTAssertEqual(Array(summary.failed.keys), ["scale-f"])
        XCTAssertEqual(summary.blocked.sorted(), ["concat-f", "double-f"])
        XCTAssertEqual(summary.executed, ["side-f"])
        XCTAssertTrue(p.consoleText.contains("scale-f: FAILED"), p.consoleText)
        XCTAssertTrue(p.consoleText.contains("test-scale failed on purpose"), p.consoleText)
        XCTAssertTrue(p.consoleText.contains("scaled 5 files"), "the log tail is printed: \(p.consoleText)")
        // No half-written artifact, no leftover temporary folder.
        let entries = try FileManager.default.contentsOfDirectory(atPath: p.outputs.appendingPathComponent("scale-f").path).sorted()
        XCTAssertEqual(entries, ["failed.json", "failed.log"])
        let st = try p.status()
        XCTAssertEqual(st["scale-f"]!.state, .failed(error: "test-scale failed on purpose"))
        XCTAssertEqual(st["side-f"]!.state, .upToDate)
        XCTAssertEqual(st["double-f"]!.state, .missing)

        try p.setPipeline(chainPipeline("-f"))
        let fixed = try p.run()
        XCTAssertTrue(fixed.succeeded)
        XCTAssertEqual(fixed.executed.sorted(), ["concat-f", "double-f", "scale-f"])
        XCTAssertEqual(log.count("side-f"), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputs.appendingPathComponent("scale-f/failed.json").path))
    }

    func testOnlyUntilForceAndDryRun() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-o"))
        let dry = try p.run { $0.dryRun = true }
        XCTAssertEqual(dry.plan.count, 4)
        XCTAssertTrue(dry.executed.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputs.appendingPathComponent("scale-o").path))

        XCTAssertThrowsError(try p.run { $0.only = ["double-o"] }) { error in
            XCTAssertEqual(error as? PipelineError, .upstreamNotReady(stage: "double-o", upstream: "scale-o"))
        }
        let until = try p.run { $0.until = ["double-o"] }
        XCTAssertEqual(until.executed.sorted(), ["double-o", "scale-o"])
        XCTAssertEqual(counts("-o"), [1, 1, 0, 0])

        let only = try p.run { $0.only = ["side-o"] }
        XCTAssertEqual(only.executed, ["side-o"])

        let forced = try p.run { $0.force = ["scale-o"] }
        XCTAssertEqual(forced.executed.sorted(), ["concat-o", "scale-o"], "forced scale, missing concat; double's fingerprint is unchanged")
        XCTAssertEqual(counts("-o"), [2, 1, 1, 1])
        XCTAssertThrowsError(try p.run { $0.only = ["nope"] }) { error in
            XCTAssertTrue("\(error)".contains("unknown stage 'nope'"), "\(error)")
        }
    }

    func testIndependentStagesRunInParallel() throws {
        let p = try Project(self)
        try p.setPipeline("""
        {"stages": {
          "left-p": {"kind": "test-scale", "inputs": {"source": "data/set"}, "params": {"wait_for_peers": 2}},
          "right-p": {"kind": "test-scale", "inputs": {"source": "data/other.txt"}, "params": {"wait_for_peers": 2}}
        }}
        """)
        log.resetConcurrency()
        let summary = try p.run { $0.jobs = 2 }
        XCTAssertEqual(summary.executed.count, 2)
        // Both stages were inside their run at the same moment. (No wall-clock assertion: in one
        // clean-clone run the first stage waited its full 10 s for the second, and timing
        // belongs in benchmarks.)
        XCTAssertEqual(log.maxConcurrent, 2)
    }

    func testGarbageCollectionKeepsLatestAndNewest() throws {
        let p = try Project(self)
        for factor in [3, 4, 5] {
            try p.setPipeline(chainPipeline("-g", factor: factor))
            try p.run()
        }
        try p.setPipeline(chainPipeline("-g", factor: 4))
        try p.run()  // relinks the factor-4 version, the middle one by build time
        let store = ArtifactStore(root: p.outputs)
        XCTAssertEqual(store.versions(stage: "scale-g").count, 3)
        let latest = store.latestID(stage: "scale-g")!
        let console = RunConsole(isTerminal: false) { _ in }
        let removed = try collectGarbage(outputs: p.outputs, keep: 2, dryRun: false, wait: false, console: console)
        XCTAssertEqual(removed.filter { $0.stage == "scale-g" }.count, 1)
        let kept = store.versions(stage: "scale-g").map(\.id)
        XCTAssertEqual(kept.count, 2)
        XCTAssertTrue(kept.contains(latest))
        _ = try collectGarbage(outputs: p.outputs, keep: 1, dryRun: false, wait: false, console: console)
        XCTAssertEqual(store.versions(stage: "scale-g").map(\.id), [latest])
        XCTAssertTrue(try p.status().values.allSatisfy { $0.state == .upToDate })
    }

    func testAnInputFolderHoldingTheOutputsDoesNotHashThem() throws {
        let p = try Project(self)
        // The whole project folder as input: outputs/ lives inside it.
        try p.setPipeline(#"{"stages": {"root-x": {"kind": "test-scale", "inputs": {"source": "."}, "params": {"factor": 0}}}}"#)
        XCTAssertTrue(try p.run().succeeded)
        XCTAssertEqual(try p.status()["root-x"]!.state, .upToDate)
        XCTAssertTrue(try p.run().executed.isEmpty, "a run's own outputs must not make the next run stale")
        XCTAssertEqual(ExecutionLog.shared.count("root-x"), 1)
    }

    func testAbandonedTemporaryFoldersAreRemovedAndNeverMistakenForArtifacts() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-k"))
        let id = try p.status()["scale-k"]!.fingerprint.id
        // What a killed run leaves: a temporary folder with partial output, and a version folder
        // with data but no manifest.
        try p.write("outputs/scale-k/.tmp-\(id)-2147483646-2/0-item-0.txt", "partial")  // a pid that cannot exist
        try p.write("outputs/scale-k/\(id)/0-item-0.txt", "partial")
        XCTAssertEqual(try p.status()["scale-k"]!.state, .missing)
        try p.run()
        let entries = try FileManager.default.contentsOfDirectory(atPath: p.outputs.appendingPathComponent("scale-k").path)
        XCTAssertFalse(entries.contains { $0.hasPrefix(".tmp-") }, "\(entries)")
        XCTAssertEqual(try p.read("outputs/scale-k/latest/0-item-0.txt"), "3\n30\n")
    }
}
