// `make test` replays the fuzz harnesses' seed corpora and every past finding
// (Tests/Fixtures/fuzz/<harness>/): each input must be parsed or rejected, never crash.
import Foundation
import TestSupport
import XCTest

final class FuzzCorpusTests: XCTestCase {
    func replay(_ args: [String]) throws -> ProcessOutcome {
        let binary = try Harmose.binary().deletingLastPathComponent().appendingPathComponent("harmose-fuzz")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw HostileTestError(description: "harmose-fuzz not built at \(binary.path)")
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return ProcessOutcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                              stderr: String(decoding: e, as: UTF8.self), signalled: p.terminationReason == .uncaughtSignal)
    }

    func testSeedCorporaAndPastFindingsReplayWithoutACrash() throws {
        let seeds = try replay(["replay", "all"])
        XCTAssertEqual(seeds.status, 0, seeds.stderr)
        XCTAssertEqual(seeds.stdout.components(separatedBy: "replayed").count - 1, 15, seeds.stdout)
        let findings = Fixtures.url("fuzz")
        for harness in try FileManager.default.contentsOfDirectory(atPath: findings.path).sorted() {
            let r = try replay(["replay", harness, findings.appendingPathComponent(harness).path])
            XCTAssertEqual(r.status, 0, "\(harness): \(r.stderr.suffix(2000))")
            XCTAssertFalse(r.signalled, harness)
        }
    }
}
