// Chunks filtered by HDF5Kit (shuffle + libdeflate on a pool) and written whole inflate, with
// zlib as libhdf5's gzip filter does, to exactly the bytes of the chunks libhdf5's own filters
// store for the same appends — full chunks, a partial last chunk (zero-filled past the end), 1-D
// and 2-D, compressible and incompressible data, an empty dataset — and libhdf5 reads them back;
// and the file is the same whatever the number in flight.
import CZlib
import Foundation
import HDF5Kit
import TestSupport
import XCTest

final class FilteredChunkTests: XCTestCase {
    /// Datasets of every shape the streamed operator files use, and the appends made to them
    /// (irregular sizes, so library appends end inside chunks).
    struct Case {
        var name: String, kind: HDF5ScalarKind, columns: Int, chunkRows: Int
        var appends: [[Int64]]   // bit patterns (doubles via Double(bitPattern:))
    }

    static func cases() -> [Case] {
        var rng = SplitMix(state: 15)
        func smooth(_ n: Int, from: Int) -> [Int64] { (0 ..< n).map { Int64(bitPattern: (0.25 * sin(0.01 * Double(from + $0))).bitPattern) } }
        var doubles: [[Int64]] = [], from = 0
        for n in [1, 999, 1000, 2500, 17, 0, 3333] { doubles.append(smooth(n, from: from)); from += n }
        let pairs = (0 ..< 40).map { k in (0 ..< 5 * (k % 4)).map { _ in Int64.random(in: -3 ... 300, using: &rng) } }
        let noise = (0 ..< 5).map { _ in (0 ..< 700).map { _ in Int64(bitPattern: rng.next()) } }
        return [
            Case(name: "entries", kind: .float64, columns: 0, chunkRows: 1000, appends: doubles),          // 7850 rows: 7 full + 850
            Case(name: "atom_pairs", kind: .int64, columns: 5, chunkRows: 7, appends: pairs),              // 60 rows: 8 full + 4
            Case(name: "noise", kind: .int64, columns: 0, chunkRows: 512, appends: noise),                  // incompressible
            Case(name: "exact", kind: .int64, columns: 2, chunkRows: 3, appends: [[1, 2, 3, 4, 5, 6]]),    // one full chunk, no partial
            Case(name: "empty", kind: .float64, columns: 0, chunkRows: 64, appends: [[]]),
        ]
    }

    func write(_ cases: [Case], to path: String, library: Bool, inFlight: Int = 3) throws {
        let file = try HDF5File(creatingAt: path)
        if library {
            for c in cases {
                try file.createAppendable(c.name, kind: c.kind, columns: c.columns, chunkRows: c.chunkRows)
                for a in c.appends {
                    if c.kind == .float64 { try file.append(c.name, doubles: a.map { Double(bitPattern: UInt64(bitPattern: $0)) }) }
                    else { try file.append(c.name, int64s: a) }
                }
            }
        } else {
            let chunks = FilteredChunkAppender(file: file, inFlight: inFlight)
            let ids = try cases.map { try chunks.createDataset($0.name, kind: $0.kind, columns: $0.columns, chunkRows: $0.chunkRows) }
            // Interleaved across datasets, as the operator writer appends.
            for k in 0 ..< cases.map(\.appends.count).max()! {
                for (c, id) in zip(cases, ids) where k < c.appends.count {
                    if c.kind == .float64 { try chunks.append(id, c.appends[k].map { Double(bitPattern: UInt64(bitPattern: $0)) }) }
                    else { try chunks.append(id, c.appends[k][...]) }   // a slice: the non-Array path
                }
            }
            try chunks.finish()
        }
        try file.flush()
    }

    /// A stored chunk inflated with zlib (as libhdf5's deflate filter reads it).
    func inflated(_ stored: [UInt8], rawBytes: Int, _ what: String) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rawBytes)
        var length = uLong(rawBytes)
        let status = out.withUnsafeMutableBufferPointer { o in
            stored.withUnsafeBufferPointer { uncompress(o.baseAddress!, &length, $0.baseAddress!, uLong(stored.count)) }
        }
        XCTAssertEqual(status, Z_OK, what)
        XCTAssertEqual(Int(length), rawBytes, what)
        return out
    }

    func testFilteredChunksInflateToLibraryChunks() throws {
        let dir = try makeTemporaryDirectory(self)
        let cases = Self.cases()
        let library = dir.appendingPathComponent("library.h5").path, ours = dir.appendingPathComponent("ours.h5").path
        try write(cases, to: library, library: true)
        try write(cases, to: ours, library: false)
        let a = try HDF5File(readingOwnArtifactAt: library), b = try HDF5File(readingOwnArtifactAt: ours)
        var compared = 0
        for c in cases {
            let all = c.appends.flatMap { $0 }
            let rows = all.count / max(1, c.columns)
            let width = max(1, c.columns)
            let expectedShape = c.columns > 0 ? [rows, c.columns] : [rows]
            if c.kind == .float64 {
                let x = try a.readDoubles(c.name), y = try b.readDoubles(c.name)
                XCTAssertEqual(y.shape, expectedShape, c.name)
                XCTAssertEqual(x.shape, y.shape, c.name)
                XCTAssertEqual(y.values.map { Int64(bitPattern: $0.bitPattern) }, all, c.name)
                XCTAssertEqual(x.values.map(\.bitPattern), y.values.map(\.bitPattern), c.name)
            } else {
                let x = try a.readInt64s(c.name), y = try b.readInt64s(c.name)
                XCTAssertEqual(y.shape, expectedShape, c.name)
                XCTAssertEqual(y.values, all, c.name)
                XCTAssertEqual(x.values, y.values, c.name)
            }
            for firstRow in stride(from: 0, to: rows, by: c.chunkRows) {
                let x = try a.storedChunk(c.name, firstRow: firstRow), y = try b.storedChunk(c.name, firstRow: firstRow)
                XCTAssertEqual(y.filterMask, 0, "\(c.name) row \(firstRow)")
                XCTAssertEqual(x.filterMask, y.filterMask, "\(c.name) row \(firstRow)")
                let rawBytes = c.chunkRows * width * 8, what = "\(c.name) row \(firstRow)"
                XCTAssertEqual(inflated(x.bytes, rawBytes: rawBytes, what), inflated(y.bytes, rawBytes: rawBytes, what), what)
                if c.name == "noise", firstRow + c.chunkRows <= rows { XCTAssertGreaterThan(y.bytes.count, c.chunkRows * width * 8, "incompressible: stored longer") }
                compared += 1
            }
            if rows == 0 { XCTAssertThrowsError(try b.storedChunk(c.name, firstRow: 0), "an empty dataset has no chunk") }
        }
        XCTAssertEqual(compared, 8 + 9 + 7 + 1)
    }

    /// The order of the writes is fixed, so the file is too: the same bytes with 1 or 16 chunks
    /// in flight.
    func testFileIsTheSameWhateverTheChunksInFlight() throws {
        let dir = try makeTemporaryDirectory(self)
        let cases = Self.cases()
        let one = dir.appendingPathComponent("one.h5").path, many = dir.appendingPathComponent("many.h5").path
        try write(cases, to: one, library: false, inFlight: 1)
        try write(cases, to: many, library: false, inFlight: 16)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: one)), try Data(contentsOf: URL(fileURLWithPath: many)))
    }

    /// The shuffle is HDF5's: byte k of every element in one run, tail bytes left in place; one
    /// element, or 1-byte elements, unchanged.
    func testShuffleIsHDF5s() {
        func shuffled(_ bytes: [UInt8], _ size: Int) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: bytes.count)
            bytes.withUnsafeBytes { r in out.withUnsafeMutableBytes { HDF5ChunkFilter.shuffle(r, elementSize: size, into: $0) } }
            return out
        }
        XCTAssertEqual(shuffled([1, 2, 3, 4, 5, 6, 7], 3), [1, 4, 2, 5, 3, 6, 7])
        XCTAssertEqual(shuffled([1, 2, 3, 4], 4), [1, 2, 3, 4])
        XCTAssertEqual(shuffled([1, 2, 3], 1), [1, 2, 3])
    }
}
