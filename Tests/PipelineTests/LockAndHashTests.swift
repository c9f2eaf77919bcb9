import Foundation
@testable import Pipeline
@testable import StageAPI
import TestSupport
import XCTest

final class LockTests: XCTestCase {
    func testSecondRunnerWithNoWaitFailsNamingTheHolder() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-l"))
        let held = try OutputsLock.acquire(outputs: p.outputs, wait: false)
        defer { held.release() }
        XCTAssertThrowsError(try p.run { $0.wait = false }) { error in
            guard case let .lockBusy(path, holder)? = error as? PipelineError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, p.outputs.appendingPathComponent(".lock").path)
            XCTAssertTrue(holder.contains("pid \(getpid())"), holder)
        }
        XCTAssertEqual(ExecutionLog.shared.count("scale-l"), 0)
        XCTAssertThrowsError(try collectGarbage(outputs: p.outputs, keep: 1, dryRun: false, wait: false,
                                                console: RunConsole(isTerminal: false) { _ in }))
        // A dry run reads only, so it does not need the lock.
        XCTAssertEqual(try p.run { $0.dryRun = true; $0.wait = false }.plan.count, 4)
    }

    func testSecondRunnerWaitsThenRuns() throws {
        let p = try Project(self)
        try p.setPipeline(chainPipeline("-w"))
        let held = try OutputsLock.acquire(outputs: p.outputs, wait: false)
        let finished = expectation(description: "waiting runner finished")
        // Written by the runner's thread, read after `finished` (the lock orders the two).
        final class Outcome: @unchecked Sendable {
            private let lock = NSLock()
            private var stored: RunSummary?
            var summary: RunSummary? {
                get { lock.lock(); defer { lock.unlock() }; return stored }
                set { lock.lock(); stored = newValue; lock.unlock() }
            }
        }
        let outcome = Outcome()
        let runner = try p.runner()
        Thread {
            var options = RunOptions()
            options.wait = true
            outcome.summary = try? runner.run(options)
            finished.fulfill()
        }.start()
        // The waiting runner announces itself and does nothing while the lock is held.
        let deadline = Date().addingTimeInterval(10)
        while !p.consoleText.contains("waiting for another harmose process"), Date() < deadline { usleep(2000) }
        XCTAssertTrue(p.consoleText.contains("waiting for another harmose process (pid \(getpid())"), p.consoleText)
        XCTAssertEqual(ExecutionLog.shared.count("scale-w"), 0)
        held.release()
        wait(for: [finished], timeout: 20)
        XCTAssertEqual(outcome.summary?.executed.count, 4)
    }

    func testLockIsReleasedForTheNextRunner() throws {
        let dir = try makeTemporaryDirectory(self)
        let a = try OutputsLock.acquire(outputs: dir, wait: false)
        a.release()
        let b = try OutputsLock.acquire(outputs: dir, wait: false)
        b.release()
    }
}

final class ContentHasherTests: XCTestCase {
    func testDirectoryDigestDependsOnNamesAndContentOnly() throws {
        let dir = try makeTemporaryDirectory(self)
        let fm = FileManager.default
        for root in ["a", "b"] {
            try fm.createDirectory(at: dir.appendingPathComponent("\(root)/sub"), withIntermediateDirectories: true)
            try Data("one".utf8).write(to: dir.appendingPathComponent("\(root)/x.txt"))
            try Data("two".utf8).write(to: dir.appendingPathComponent("\(root)/sub/y.txt"))
        }
        try Data("ignored".utf8).write(to: dir.appendingPathComponent("b/.hidden"))
        let hasher = ContentHasher(cacheURL: nil)
        let a = try hasher.digest(of: dir.appendingPathComponent("a"))
        let b = try hasher.digest(of: dir.appendingPathComponent("b"))
        XCTAssertEqual(a.hash, b.hash, "same tree elsewhere, hidden files skipped")
        XCTAssertEqual(a.files.map(\.relativePath), ["sub/y.txt", "x.txt"])
        XCTAssertEqual(a.files[1].hash, SHA256.hash("one"))

        // Renaming a file changes the directory digest even with the same bytes.
        try fm.moveItem(at: dir.appendingPathComponent("b/x.txt"), to: dir.appendingPathComponent("b/z.txt"))
        XCTAssertNotEqual(try ContentHasher(cacheURL: nil).digest(of: dir.appendingPathComponent("b")).hash, a.hash)
        XCTAssertEqual(try hasher.digest(of: dir.appendingPathComponent("a/x.txt")).hash, SHA256.hash("one"))
    }

    func testCacheAvoidsRereadingAndDetectsSameSizeChanges() throws {
        let dir = try makeTemporaryDirectory(self)
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for i in 0 ..< 20 { try Data("value \(i)".utf8).write(to: data.appendingPathComponent("f\(i)")) }
        let cache = dir.appendingPathComponent("cache/hashes.tsv")

        let first = ContentHasher(cacheURL: cache)
        let d1 = try first.digest(of: data)
        XCTAssertEqual(first.filesRead, 20)
        try first.save()

        let second = ContentHasher(cacheURL: cache)
        XCTAssertEqual(try second.digest(of: data), d1)
        XCTAssertEqual(second.filesRead, 0)

        try Data("value 99".utf8).write(to: data.appendingPathComponent("f3"))  // one byte longer
        try Data("value X".utf8).write(to: data.appendingPathComponent("f4"))   // same size, new bytes
        let third = ContentHasher(cacheURL: cache)
        let d3 = try third.digest(of: data)
        XCTAssertEqual(third.filesRead, 2)
        XCTAssertNotEqual(d3.hash, d1.hash)
        XCTAssertEqual(d3.files.first { $0.relativePath == "f4" }?.hash, SHA256.hash("value X"))
    }

    func testSymlinkLoopsAreFollowedOnce() throws {
        let dir = try makeTemporaryDirectory(self)
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: data.appendingPathComponent("sub/f"))
        try FileManager.default.createSymbolicLink(atPath: data.appendingPathComponent("sub/loop").path, withDestinationPath: "..")
        let digest = try ContentHasher(cacheURL: nil).digest(of: data)
        XCTAssertEqual(digest.files.map(\.relativePath), ["sub/f"])
    }

    func testCorruptCacheIsIgnored() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("f")
        try Data("abc".utf8).write(to: file)
        let cache = dir.appendingPathComponent("hashes.tsv")
        try Data("harmose-content-hash-cache 1\n\(file.path)\tgarbage\n\u{0}\u{1}".utf8).write(to: cache)
        XCTAssertEqual(try ContentHasher(cacheURL: cache).digest(of: file).hash, SHA256.hash("abc"))
    }
}
