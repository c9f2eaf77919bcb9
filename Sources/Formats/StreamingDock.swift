// Writes a DeepH-dock operator file (`atom_pairs`, `chunk_boundaries`, `chunk_shapes`, `entries`)
// block by block, so an operator far larger than memory can be written: the datasets are chunked
// and gzip-compressed (readers accept both, docs/formats.md) and grow as blocks arrive. The chunks
// are compressed on a pool of threads and written whole (HDF5Kit's `FilteredChunkAppender`): the
// thread that appends only copies, and the file is what libhdf5's own filters would have stored.
// Held: one chunk per dataset + a bounded number of chunks being compressed.
import Foundation
import HDF5Kit
import Structures

public final class StreamingOperatorWriter {
    public let url: URL
    let chunks: FilteredChunkAppender
    let pairs: Int, boundaries: Int, shapes: Int, entries: Int
    var offset: Int64 = 0
    public private(set) var blockCount = 0

    /// Rows per chunk of each dataset (entries: 2 MiB chunks by default).
    public struct ChunkRows: Sendable {
        public var pairs = 8192, boundaries = 65536, shapes = 8192, entries = 1 << 18
        public init() {}
        public init(pairs: Int, boundaries: Int, shapes: Int, entries: Int) {
            self.pairs = pairs; self.boundaries = boundaries; self.shapes = shapes; self.entries = entries
        }
    }

    public init(url: URL, chunkRows: ChunkRows = ChunkRows()) throws {
        self.url = url
        do {
            chunks = FilteredChunkAppender(file: try HDF5File(creatingAt: url.path))
            pairs = try chunks.createDataset("atom_pairs", kind: .int64, columns: 5, chunkRows: chunkRows.pairs)
            boundaries = try chunks.createDataset("chunk_boundaries", kind: .int64, chunkRows: chunkRows.boundaries)
            shapes = try chunks.createDataset("chunk_shapes", kind: .int64, columns: 2, chunkRows: chunkRows.shapes)
            entries = try chunks.createDataset("entries", kind: .float64, chunkRows: chunkRows.entries)
            try chunks.append(boundaries, [Int64(0)])
        } catch let e as HDF5Error {
            throw FormatError(file: e.file, field: e.object, message: e.message)
        }
    }

    public func append(_ key: BlockKey, rows: Int, cols: Int, values: some Collection<Double>) throws {
        precondition(values.count == rows * cols, "block \(key): \(values.count) values for \(rows)×\(cols)")
        offset += Int64(values.count)
        do {
            try chunks.append(pairs, [Int64(key.shift.x), Int64(key.shift.y), Int64(key.shift.z), Int64(key.i), Int64(key.j)])
            try chunks.append(shapes, [Int64(rows), Int64(cols)])
            try chunks.append(boundaries, [offset])
            try chunks.append(entries, values)
        } catch let e as HDF5Error {
            throw FormatError(file: e.file, field: e.object, message: e.message)
        }
        blockCount += 1
    }

    /// Writes the last chunks and closes the file.
    public func finish() throws {
        do {
            try chunks.finish()
            try chunks.file.flush()
        } catch let e as HDF5Error { throw FormatError(file: e.file, field: e.object, message: e.message) }
    }
}
