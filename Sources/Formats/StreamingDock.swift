// Writes a DeepH-dock operator file (`atom_pairs`, `chunk_boundaries`, `chunk_shapes`, `entries`)
// block by block, so an operator far larger than memory can be written: the datasets are chunked
// and gzip-compressed (readers accept both, docs/formats.md) and grow as blocks arrive; only the
// current buffer (≈ `bufferEntries` values) is held.
import Foundation
import HDF5Kit
import Structures

public final class StreamingOperatorWriter {
    public let url: URL
    let file: HDF5File
    var pairs: [Int64] = [], shapes: [Int64] = [], bounds: [Int64] = [], entries: [Double] = []
    var offset: Int64 = 0
    public private(set) var blockCount = 0
    let bufferEntries: Int

    public init(url: URL, bufferEntries: Int = 1 << 20) throws {
        self.url = url
        self.bufferEntries = bufferEntries
        do {
            file = try HDF5File(creatingAt: url.path)
            try file.createAppendable("atom_pairs", kind: .int64, columns: 5, chunkRows: 8192)
            try file.createAppendable("chunk_boundaries", kind: .int64, chunkRows: 65536)
            try file.createAppendable("chunk_shapes", kind: .int64, columns: 2, chunkRows: 8192)
            try file.createAppendable("entries", kind: .float64, chunkRows: 1 << 18)
            bounds.append(0)
        } catch let e as HDF5Error {
            throw FormatError(file: e.file, field: e.object, message: e.message)
        }
    }

    public func append(_ key: BlockKey, rows: Int, cols: Int, values: some Collection<Double>) throws {
        precondition(values.count == rows * cols, "block \(key): \(values.count) values for \(rows)×\(cols)")
        pairs += [key.shift.x, key.shift.y, key.shift.z, key.i, key.j].map { Int64($0) }
        shapes += [Int64(rows), Int64(cols)]
        entries.append(contentsOf: values)
        offset += Int64(values.count)
        bounds.append(offset)
        blockCount += 1
        if entries.count >= bufferEntries { try flush() }
    }

    public func flush() throws {
        do {
            try file.append("atom_pairs", int64s: pairs)
            try file.append("chunk_shapes", int64s: shapes)
            try file.append("chunk_boundaries", int64s: bounds)
            try file.append("entries", doubles: entries)
        } catch let e as HDF5Error {
            throw FormatError(file: e.file, field: e.object, message: e.message)
        }
        pairs.removeAll(keepingCapacity: true); shapes.removeAll(keepingCapacity: true)
        bounds.removeAll(keepingCapacity: true); entries.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered and closes the file.
    public func finish() throws {
        try flush()
        do { try file.flush() } catch let e as HDF5Error { throw FormatError(file: e.file, field: e.object, message: e.message) }
    }
}
