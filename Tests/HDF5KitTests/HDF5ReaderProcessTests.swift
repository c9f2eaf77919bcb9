import Foundation
@testable import HDF5Kit
import TestSupport
import XCTest

/// The reader process (HDF5ReaderProcess.swift): a small helper that forks one child per file from
/// outside, so this process never forks per file; same snapshots, same errors, isolated.
final class HDF5ReaderProcessTests: XCTestCase {
    /// A file with groups, every dataset kind and attributes.
    func sampleFile() throws -> String {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("sample.h5").path
        let f = try HDF5File(creatingAt: path)
        try f.write("g/h/d", doubles: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        try f.write("f32", floats: [0.1, -3e38], shape: [2])
        try f.write("i", int64s: [Int64.min, 7], shape: [2])
        try f.write("s", string: "x")
        try f.setAttribute("a", doubles: [1, 2], on: "g")
        try f.setAttribute("t", string: "text", on: "g/h/d")
        return path
    }

    /// The helper's children and a child forked here stream the same bytes and end the same way,
    /// for a good file (from disk and as an image) and for the three files libhdf5 crashes on.
    func testReaderProcessAndForkHereGiveTheSameStreamAndStatus() throws {
        let good = try sampleFile()
        let inputs: [(String, HDF5Snapshot.Source)] = try [
            (good, .path(good)),
            ("member.h5", .image([UInt8](Data(contentsOf: URL(fileURLWithPath: good))))),
        ] + ["fuzz/dock-hdf5/crash-hdf5-segv-in-H5F__accum_read", "fuzz/legacy-hdf5/crash-hdf5-segv-in-H5F__accum_read"].map { name in
            let url = Fixtures.url(name)
            return (url.path, .image([UInt8](try Data(contentsOf: url))))
        }
        for (name, source) in inputs {
            let budget = HDF5Snapshot.valueBudget(byteCount: 1 << 20)
            let helper = try HDF5ReaderProcess.shared.read(name: name, budget: budget, source: source)
            let here = try HDF5Snapshot.forkedRead(name: name, budget: budget, source: source)
            XCTAssertEqual(helper.stream, here.stream, name)
            XCTAssertEqual(helper.status, here.status, name)
            let a = Result { try HDF5Snapshot.decode(helper.stream, name: name, status: helper.status) }
            let b = Result { try HDF5Snapshot.decode(here.stream, name: name, status: here.status) }
            switch (a, b) {
            case (.success(let x), .success(let y)): XCTAssertEqual(x.objects.keys.sorted(), y.objects.keys.sorted(), name)
            case (.failure(let x), .failure(let y)): XCTAssertEqual("\(x)", "\(y)", name)
            default: XCTFail("\(name): reader process \(a), forked here \(b)")
            }
        }
    }

    /// A child's crash costs the child only: the reader process lives on and serves the next file;
    /// it has one thread and holds only stdin, stdout, stderr and its socket — nothing this process
    /// had open (a file opened here without close-on-exec included).
    func testReaderProcessSurvivesCrashesAndInheritsNothing() throws {
        let held = open(try sampleFile(), O_RDONLY)
        defer { close(held) }
        guard let helper = HDF5ReaderProcess.Helper.start() else { return XCTFail("the reader process did not start") }
        defer { helper.stop() }
        let damaged = [UInt8](try Data(contentsOf: Fixtures.url("fuzz/dock-hdf5/crash-hdf5-segv-in-H5F__accum_read")))
        let budget = HDF5Snapshot.valueBudget(byteCount: damaged.count)
        let crashed = try helper.read(name: "d.h5", budget: budget, source: .image(damaged))
        XCTAssertThrowsError(try HDF5Snapshot.decode(crashed.stream, name: "d.h5", status: crashed.status)) { error in
            XCTAssertEqual("\(error)", "d.h5: /: HDF5 library crashed (SIGSEGV) while reading it: the file is damaged")
        }
        let good = try sampleFile()
        let read = try helper.read(name: good, budget: budget, source: .path(good))
        let snapshot = try HDF5Snapshot.decode(read.stream, name: good, status: read.status)
        XCTAssertEqual(try snapshot.numbers("g/h/d", as: Double.self).values, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(kill(helper.pid, 0), 0, "the reader process died with its child")
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(helper.pid)/fd").compactMap(Int.init).sorted()
        XCTAssertEqual(fds, [0, 1, 2, 3])
        let status = try String(contentsOfFile: "/proc/\(helper.pid)/status", encoding: .utf8)
        XCTAssertTrue(status.contains("\nThreads:\t1\n"), status)
    }

    /// The reader process ends by itself when its parent's end of the socket closes (as when the
    /// parent dies), and is reaped by the parent.
    func testReaderProcessExitsWhenItsSocketCloses() throws {
        guard let helper = HDF5ReaderProcess.Helper.start() else { return XCTFail("the reader process did not start") }
        close(helper.socket)
        var status: Int32 = 0, reaped: pid_t = 0
        for _ in 0 ..< 1000 {
            reaped = waitpid(helper.pid, &status, WNOHANG)
            if reaped != 0 { break }
            usleep(10_000)
        }
        XCTAssertEqual(reaped, helper.pid, "the reader process is still running 10 s after its socket closed")
        XCTAssertEqual(status, 0, "exit status")
    }

    /// A file this process still has open for writing is read as libhdf5 here sees it (a fork of
    /// this process, sharing its library state): the reader process's libhdf5 would be refused by
    /// the file lock.
    func testAFileBeingWrittenHereIsReadAsThisProcessSeesIt() throws {
        XCTAssertNotNil(HDF5ReaderProcess.shared.processID)
        let path = try makeTemporaryDirectory(self).appendingPathComponent("open.h5").path
        let writer = try HDF5File(creatingAt: path)
        try writer.write("d", doubles: [1, 2, 3], shape: [3])
        try writer.flush()
        XCTAssertTrue(HDF5Snapshot.isOpenHere(path))
        XCTAssertEqual(try HDF5File(readingAt: path).readDoubles("d").values, [1, 2, 3])
        XCTAssertFalse(HDF5Snapshot.isOpenHere(try sampleFile()))
    }

    /// HDF5File's reads go through the one shared reader process: many files, one helper.
    func testOneReaderProcessServesEveryFile() throws {
        let good = try sampleFile()
        let first = HDF5ReaderProcess.shared.processID
        XCTAssertNotNil(first)
        for _ in 0 ..< 20 { XCTAssertEqual(try HDF5File(readingAt: good).readDoubles("g/h/d").values, [1, 2, 3, 4, 5, 6]) }
        XCTAssertEqual(HDF5ReaderProcess.shared.processID, first)
    }
}
