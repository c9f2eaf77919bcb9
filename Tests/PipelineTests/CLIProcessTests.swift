// End-to-end tests through the built `harmose` binary: what only a separate process can show
// (kill -9 mid-stage, exit codes, the lock between processes). The binary's hidden diagnostic
// stage kinds are enabled with HARMOSE_DIAGNOSTIC_KINDS=1.
import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

/// The `harmose` executable built alongside this test bundle.
func harmoseBinary() throws -> URL { try builtHarmoseExecutable() }

struct ProcessResult {
    let status: Int32
    let output: String
    let error: String
}

final class CLIProcessTests: XCTestCase {
    func launch(_ args: [String], in dir: URL, stdout: URL) throws -> Process {
        let process = Process()
        process.executableURL = try harmoseBinary()
        process.arguments = args
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["HARMOSE_DIAGNOSTIC_KINDS"] = "1"
        process.environment = env
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        let handle = try FileHandle(forWritingTo: stdout)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    func harmose(_ args: [String], in dir: URL) throws -> ProcessResult {
        let process = Process()
        process.executableURL = try harmoseBinary()
        process.arguments = args
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["HARMOSE_DIAGNOSTIC_KINDS"] = "1"
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a chatty child never blocks on a full pipe.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: o, as: UTF8.self),
                             error: String(decoding: e, as: UTF8.self))
    }

    func makeProject(delayMs: Int) throws -> URL {
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
        for i in 0 ..< 12 {
            try Data("structure \(i)\n".utf8 + Data(repeating: UInt8(i), count: 1000 + i)).write(to: dir.appendingPathComponent("data/s\(i).bin"))
        }
        try """
        {
          "version": 1,
          "stages": {
            "slow": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"tag": "A", "delay_ms": \(delayMs)}},
            "after": {"kind": "diagnostic-copy", "inputs": {"source": {"stage": "slow"}}, "params": {"tag": "B"}}
          }
        }
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        return dir
    }

    /// Artifact files of a stage's latest version except the ones that record times.
    func artifact(_ outputs: URL, _ stage: String) throws -> [String: Data] {
        let dir = outputs.appendingPathComponent("\(stage)/latest").resolvingSymlinksInPath()
        var out: [String: Data] = [:]
        for rel in try FileManager.default.subpathsOfDirectory(atPath: dir.path) where !["manifest.json", "log.txt"].contains(rel) {
            var isDir: ObjCBool = false
            let url = dir.appendingPathComponent(rel)
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Data(contentsOf: url) }
        }
        return out
    }

    func testKillDuringAStageThenRerunEqualsAnUninterruptedRun() throws {
        let project = try makeProject(delayMs: 150)
        let outputs = project.appendingPathComponent("outputs")
        let slowDir = outputs.appendingPathComponent("slow")

        let logURL = project.appendingPathComponent("run1.log")
        let first = try launch(["run", "--pipeline", "pipeline.json"], in: project, stdout: logURL)
        // Wait until the stage is mid-way: some files copied into its temporary folder.
        let deadline = Date().addingTimeInterval(30)
        var copied = 0
        while Date() < deadline, first.isRunning {
            let tmp = (try? FileManager.default.contentsOfDirectory(atPath: slowDir.path))?.first { $0.hasPrefix(".tmp-") }
            if let tmp { copied = (FileManager.default.subpaths(atPath: slowDir.appendingPathComponent(tmp).path) ?? []).filter { $0.hasSuffix(".bin") }.count }
            if copied >= 3 { break }
            usleep(5000)
        }
        XCTAssertGreaterThanOrEqual(copied, 3, "stage never got going: \((try? String(contentsOf: logURL, encoding: .utf8)) ?? "")")
        // While it runs, status names the process building the stage.
        let during = try harmose(["status", "--json"], in: project)
        let building = try JSONValue.parse(during.output)["stages"]?.arrayValue?.first
        XCTAssertEqual(building?["state"], "running", during.output)
        XCTAssertEqual(building?["reasons"]?.arrayValue?.first?.stringValue, "being built by harmose process \(first.processIdentifier)")
        XCTAssertTrue(first.isRunning, "the run finished before it could be killed (machine too slow?)")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationReason, .uncaughtSignal)

        // Nothing looks complete after the kill.
        let store = ArtifactStore(root: outputs)
        XCTAssertNil(store.latestID(stage: "slow"))
        let status = try harmose(["status", "--json"], in: project)
        XCTAssertEqual(status.status, 0, status.error)
        let json = try JSONValue.parse(status.output)
        XCTAssertEqual(json["stages"]?.arrayValue?.map { $0["state"]?.stringValue ?? "" }, ["missing", "missing"])

        let rerun = try harmose(["run", "--pipeline", "pipeline.json"], in: project)
        XCTAssertEqual(rerun.status, 0, rerun.output + rerun.error)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: slowDir.path).contains { $0.hasPrefix(".tmp-") },
                       "the killed run's temporary folder is cleaned up")

        // Reference: the same pipeline, uninterrupted, into another outputs folder.
        let reference = project.appendingPathComponent("reference-outputs")
        let clean = try harmose(["run", "--outputs", reference.path], in: project)
        XCTAssertEqual(clean.status, 0, clean.output + clean.error)
        for stage in ["slow", "after"] {
            XCTAssertEqual(store.latestID(stage: stage), ArtifactStore(root: reference).latestID(stage: stage))
            let a = try artifact(outputs, stage), b = try artifact(reference, stage)
            XCTAssertEqual(a.count, stage == "slow" ? 13 : 13, "12 copies + inputs-index.tsv")
            XCTAssertEqual(a, b, stage)
        }
        XCTAssertEqual(try harmose(["status", "--check"], in: project).status, 0)
        let again = try harmose(["run"], in: project)
        XCTAssertTrue(again.output.contains("slow: up to date"), again.output)
        XCTAssertFalse(again.output.contains("running"), again.output)
    }

    func testFailingStageExitsNonZeroWithLogTail() throws {
        let project = try makeProject(delayMs: 0)
        try #"{"stages": {"boom": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"fail": true}}, "next": {"kind": "diagnostic-copy", "inputs": {"source": {"stage": "boom"}}}}}"#
            .write(to: project.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let r = try harmose(["run"], in: project)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.output.contains("boom: FAILED"), r.output)
        XCTAssertTrue(r.output.contains("copied 12 files"), "log tail: \(r.output)")
        XCTAssertTrue(r.output.contains("next: not run (upstream 'boom' did not complete)"), r.output)
        XCTAssertTrue(r.error.contains("stage 'boom' failed: failing on request"), r.error)
        let status = try harmose(["status"], in: project)
        XCTAssertEqual(status.status, 0)
        XCTAssertEqual(try harmose(["status", "--check"], in: project).status, 1)
        XCTAssertTrue(status.output.contains("boom   failed"), status.output)
        XCTAssertTrue(status.output.contains("failed.log"), status.output)
    }

    func testInvalidPipelineExitsWithTwoNamingStageAndField() throws {
        let project = try makeProject(delayMs: 0)
        try #"{"stages": {"slow": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"delay_ms": "fast"}}}}"#
            .write(to: project.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let r = try harmose(["run"], in: project)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.error.contains("pipeline.json: stages.slow.params.delay_ms: expected an integer, got a string \"fast\""), r.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: project.appendingPathComponent("outputs").path))
    }

    func testNoWaitExitsWhileAnotherProcessHoldsTheLock() throws {
        let project = try makeProject(delayMs: 0)
        let held = try OutputsLock.acquire(outputs: project.appendingPathComponent("outputs"), wait: false)
        defer { held.release() }
        let r = try harmose(["run", "--no-wait"], in: project)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.error.contains("holds \(project.appendingPathComponent("outputs/.lock").path)"), r.error)
        XCTAssertTrue(r.error.contains("pid \(getpid())"), r.error)
    }

    /// #12: a stage that traps takes down only its own worker process. The unrelated stage running
    /// beside it finishes, the trap is recorded as the stage's failure with its message in the
    /// log, `status` says "failed" (not "missing"), and the stage reading it is not run.
    func testCrashingStageIsRecordedAsFailedAndUnrelatedStagesFinish() throws {
        let project = try makeProject(delayMs: 0)
        try """
        {"stages": {
          "crash": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"crash": true, "delay_ms": 20}},
          "reads-crash": {"kind": "diagnostic-copy", "inputs": {"source": {"stage": "crash"}}},
          "beside": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"tag": "B", "delay_ms": 40}}
        }}
        """.write(to: project.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let r = try harmose(["run", "--jobs", "2"], in: project)
        XCTAssertEqual(r.status, 1, r.output + r.error)
        XCTAssertTrue(r.output.contains("crash: FAILED"), r.output)
        XCTAssertTrue(r.output.contains("stage worker crashed: signal"), r.output)
        XCTAssertTrue(r.error.contains("Fatal error: crashing on request (params.crash = true)"), "the trap's message names the cause: \(r.error)")
        XCTAssertTrue(r.output.contains("reads-crash: not run (upstream 'crash' did not complete)"), r.output)
        XCTAssertTrue(r.output.contains("beside: done"), r.output)
        let outputs = project.appendingPathComponent("outputs")
        XCTAssertEqual(try artifact(outputs, "beside").count, 13, "12 copies + inputs-index.tsv")

        let status = try harmose(["status", "--json"], in: project)
        XCTAssertEqual(status.status, 0, status.error)
        let stages = try JSONValue.parse(status.output)["stages"]?.arrayValue ?? []
        let states = Dictionary(uniqueKeysWithValues: stages.map { ($0["name"]?.stringValue ?? "", $0["state"]?.stringValue ?? "") })
        XCTAssertEqual(states, ["crash": "failed", "reads-crash": "missing", "beside": "up-to-date"], status.output)
        let log = try String(contentsOf: outputs.appendingPathComponent("crash/failed.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("copied 12 files"), log)
        XCTAssertTrue(log.contains("crashing on request (params.crash = true)"), "the trap's message is in the log: \(log)")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: outputs.appendingPathComponent("crash").path)
            .contains { $0.hasPrefix(".tmp-") }, "nothing half-written is left")
    }
}
