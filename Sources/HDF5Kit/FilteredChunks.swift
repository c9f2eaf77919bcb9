// Appendable datasets written by whole chunks that this module filters itself — HDF5's shuffle
// then deflate, the format libhdf5's own filters store and read — on a pool of threads, and hands
// to libhdf5 finished (`H5Dwrite_chunk`). Through `append` (HDF5Kit.swift) libhdf5 filters every
// chunk inside the library lock, so one thread compresses a whole streamed file; and a write that
// ends inside a chunk larger than the chunk cache (1 MiB by default) makes it read, inflate and
// deflate that chunk again on the next append. Here each chunk is deflated once, off the caller's
// thread, and written in a fixed order: the same file for the same appends, whatever the threads.
// The deflate is libdeflate's (level 1: ≈ 2.2× faster than zlib's level 1 on shuffled float64
// Hamiltonian blocks, ≈ 2.8× on overlaps, and 6–23 % smaller), so the stored bytes differ from
// zlib's while inflating to the same shuffled chunk (FilteredChunkTests).
import CHDF5
import CDeflate
import Dispatch
import Foundation

/// HDF5's filters as libhdf5 applies them on write: H5Z_FILTER_SHUFFLE, then H5Z_FILTER_DEFLATE.
public enum HDF5ChunkFilter {
    /// The deflate level of every compressed appendable dataset (`createAppendable`).
    public static let appendableDeflateLevel: Int32 = 1

    /// HDF5's shuffle: byte k of every element, for k = 0 ..< elementSize, one run after another
    /// (libhdf5 leaves a chunk of one element, or of 1-byte elements, as it is; the bytes past
    /// the last whole element stay at the end).
    public static func shuffle(_ raw: UnsafeRawBufferPointer, elementSize: Int, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= raw.count)
        let n = raw.count / elementSize
        guard elementSize > 1, n > 1 else {
            if raw.count > 0 { out.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
            return
        }
        let src = raw.bindMemory(to: UInt8.self), dst = out.bindMemory(to: UInt8.self)
        for k in 0 ..< elementSize {
            let base = k * n
            var s = k
            for i in 0 ..< n { dst[base + i] = src[s]; s += elementSize }
        }
        let whole = n * elementSize
        for t in whole ..< raw.count { dst[t] = src[t] }
    }

    /// The stored bytes of one chunk (`raw`: the whole chunk, rows past the dataset's end zero,
    /// as libhdf5 fills them), written to `stored` (at least `storedBound` bytes; `scratch` holds
    /// the shuffled chunk): shuffled, then deflated in the zlib format (libdeflate at `level`);
    /// returns their length. libhdf5 1.10's deflate filter keeps the compressed bytes even when
    /// they are not shorter (checked on Debian's 1.10.8: random bytes are stored 1.1 % longer,
    /// filter mask 0), and so does this, so the mask is always 0.
    public static func filter(_ raw: UnsafeRawBufferPointer, elementSize: Int, level: Int32 = appendableDeflateLevel,
                              scratch: UnsafeMutableRawBufferPointer, into stored: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(scratch.count >= raw.count && stored.count >= storedBound(raw.count))
        shuffle(raw, elementSize: elementSize, into: scratch)
        guard let compressor = libdeflate_alloc_compressor(level) else {
            throw HDF5Error(file: "", message: "libdeflate: cannot allocate a compressor at level \(level)")
        }
        defer { libdeflate_free_compressor(compressor) }
        let length = libdeflate_zlib_compress(compressor, scratch.baseAddress!, raw.count, stored.baseAddress!, stored.count)
        guard length > 0 else { throw HDF5Error(file: "", message: "libdeflate: a chunk of \(raw.count) bytes did not fit in \(stored.count)") }
        return length
    }

    /// The most bytes `filter` stores for a chunk of `rawBytes` bytes.
    public static func storedBound(_ rawBytes: Int) -> Int { libdeflate_zlib_compress_bound(nil, rawBytes) }
}

extension HDF5File {
    /// Writes the stored (already filtered) bytes of the chunk that starts at row `firstRow` of an
    /// appendable dataset, first growing its extent to `extentRows` rows (the chunk's last row, or
    /// the dataset's last where it ends inside the chunk).
    public func writeStoredChunk(_ name: String, firstRow: Int, extentRows: Int, bytes: UnsafeRawBufferPointer, filterMask: UInt32 = 0) throws {
        try withDataset(name) { d in
            let s = H5Dget_space(d)
            let rank = Int(H5Sget_simple_extent_ndims(s))
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(s, &dims, nil)
            H5Sclose(s)
            if dims[0] < hsize_t(extentRows) {
                dims[0] = hsize_t(extentRows)
                guard H5Dset_extent(d, &dims) >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot extend") }
            }
            var offset = [hsize_t](repeating: 0, count: rank)
            offset[0] = hsize_t(firstRow)
            let status = H5Dwrite_chunk(d, harmose_h5p_default(), filterMask, &offset, bytes.count, bytes.baseAddress)
            guard status >= 0 else { throw HDF5Error(file: path, object: name, message: "chunk write failed\(systemReason())") }
        }
    }

    /// The stored bytes and filter mask of the chunk that starts at row `firstRow` (files opened
    /// in this process: created here or `readingOwnArtifactAt:`).
    public func storedChunk(_ name: String, firstRow: Int) throws -> (filterMask: UInt32, bytes: [UInt8]) {
        guard snapshot == nil else { throw HDF5Error(file: path, object: name, message: "stored chunks are read from files opened in this process only") }
        return try withDataset(name) { d in
            let s = H5Dget_space(d)
            let rank = Int(H5Sget_simple_extent_ndims(s))
            H5Sclose(s)
            var offset = [hsize_t](repeating: 0, count: rank)
            offset[0] = hsize_t(firstRow)
            var size: hsize_t = 0
            guard H5Dget_chunk_storage_size(d, &offset, &size) >= 0 else {
                throw HDF5Error(file: path, object: name, message: "no chunk at row \(firstRow)")
            }
            var bytes = [UInt8](repeating: 0, count: Int(size))
            var mask: UInt32 = 0
            let status = bytes.withUnsafeMutableBytes { H5Dread_chunk(d, harmose_h5p_default(), &offset, &mask, $0.baseAddress) }
            guard status >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot read chunk at row \(firstRow)") }
            return (mask, bytes)
        }
    }
}

/// Appendable, shuffle + deflate datasets of one file (`createAppendable`'s layout) filled by
/// whole chunks: `append` copies rows into the current chunk of its dataset; a full chunk is
/// filtered on a pool thread while the caller goes on, and the filtered chunks are written in the
/// order they filled (every dataset's, interleaved), by the caller, when more than `inFlight`
/// are pending and at `finish`. Memory: one chunk per dataset + `inFlight` chunks (raw, shuffled
/// and filtered bytes each), their buffers reused. `finish` writes each dataset's last, partial
/// chunk (rows past the end zero, as libhdf5 fills them) and sets its extent to its rows.
public final class FilteredChunkAppender {
    public let file: HDF5File
    let inFlight: Int
    private var streams: [Stream] = []
    private var pending: [PendingChunk] = []   // oldest first
    private let pool = DispatchQueue.global(qos: .userInitiated)

    struct Stream {
        let name: String
        let elementSize: Int, rowElements: Int, chunkRows: Int, chunkBytes: Int
        var current: ChunkBuffers
        var spare: [ChunkBuffers] = []   // buffers of written chunks, reused (no fresh pages per chunk)
        var filled = 0            // bytes of `current.raw` holding rows
        var rowsQueued = 0        // rows in chunks already handed to the pool
        func take() -> ChunkBuffers { ChunkBuffers(chunkBytes: chunkBytes) }
    }

    /// One chunk's raw rows, its shuffled bytes and its stored (filtered) bytes.
    final class ChunkBuffers: @unchecked Sendable {
        let raw, shuffled, stored: UnsafeMutableRawBufferPointer
        init(chunkBytes: Int) {
            raw = .allocate(byteCount: chunkBytes, alignment: 16)
            shuffled = .allocate(byteCount: chunkBytes, alignment: 16)
            stored = .allocate(byteCount: HDF5ChunkFilter.storedBound(chunkBytes), alignment: 16)
        }
        deinit { raw.deallocate(); shuffled.deallocate(); stored.deallocate() }
    }

    /// A chunk being filtered on the pool; `stored` waits for it.
    final class PendingChunk: @unchecked Sendable {
        let stream: Int, firstRow: Int, extentRows: Int
        let buffers: ChunkBuffers
        private var result: Result<Int, Error>?
        private let done = DispatchSemaphore(value: 0)
        init(stream: Int, firstRow: Int, extentRows: Int, buffers: ChunkBuffers) {
            self.stream = stream; self.firstRow = firstRow; self.extentRows = extentRows; self.buffers = buffers
        }
        func filter(elementSize: Int) {
            result = Result {
                try HDF5ChunkFilter.filter(UnsafeRawBufferPointer(buffers.raw), elementSize: elementSize,
                                           scratch: buffers.shuffled, into: buffers.stored)
            }
            done.signal()
        }
        func stored() throws -> UnsafeRawBufferPointer {
            done.wait()
            return UnsafeRawBufferPointer(rebasing: buffers.stored[0 ..< (try result!.get())])
        }
    }

    /// `inFlight`: chunks filtered or waiting to be written at once (default: twice the cores).
    public init(file: HDF5File, inFlight: Int = 2 * ProcessInfo.processInfo.activeProcessorCount) {
        self.file = file
        self.inFlight = max(1, inFlight)
    }

    deinit {
        // Chunks still on the pool (after an error): wait for them, dropping their results.
        for p in pending { _ = try? p.stored() }
    }

    /// Creates an empty appendable dataset (`HDF5File.createAppendable`, compressed) of
    /// `columns`-wide rows (1-D when 0) in chunks of `chunkRows` rows; returns its index for
    /// `append`.
    public func createDataset(_ name: String, kind: HDF5ScalarKind, columns: Int = 0, chunkRows: Int) throws -> Int {
        try file.createAppendable(name, kind: kind, columns: columns, chunkRows: chunkRows, compressed: true)
        let elementSize: Int
        switch kind {
        case .float64, .int64: elementSize = 8
        case .float32, .int32: elementSize = 4
        }
        let rowElements = max(1, columns), rows = max(1, chunkRows)
        let chunkBytes = rows * rowElements * elementSize
        streams.append(Stream(name: name, elementSize: elementSize, rowElements: rowElements, chunkRows: rows,
                              chunkBytes: chunkBytes, current: ChunkBuffers(chunkBytes: chunkBytes)))
        return streams.count - 1
    }

    /// Appends whole rows (values in row-major order, of the dataset's element type and size).
    public func append<T: BitwiseCopyable>(_ dataset: Int, _ values: some Collection<T>) throws {
        precondition(MemoryLayout<T>.size == streams[dataset].elementSize, "\(streams[dataset].name): element size")
        precondition(values.count % streams[dataset].rowElements == 0, "\(streams[dataset].name): not whole rows")
        if try values.withContiguousStorageIfAvailable({ try append(dataset, bytes: UnsafeRawBufferPointer($0)) }) != nil { return }
        try Array(values).withUnsafeBytes { try append(dataset, bytes: $0) }
    }

    private func append(_ dataset: Int, bytes: UnsafeRawBufferPointer) throws {
        var at = 0
        while at < bytes.count {
            let s = streams[dataset]
            let n = min(bytes.count - at, s.chunkBytes - s.filled)
            (s.current.raw.baseAddress! + s.filled).copyMemory(from: bytes.baseAddress! + at, byteCount: n)
            streams[dataset].filled += n
            at += n
            if streams[dataset].filled == s.chunkBytes { try submit(dataset, rows: s.chunkRows) }
        }
    }

    /// Hands the current chunk of `dataset` (`rows` rows in it, zeros after them) to the pool.
    private func submit(_ dataset: Int, rows: Int) throws {
        let s = streams[dataset]
        let buffers = s.current
        if s.filled < s.chunkBytes { (buffers.raw.baseAddress! + s.filled).initializeMemory(as: UInt8.self, repeating: 0, count: s.chunkBytes - s.filled) }
        let chunk = PendingChunk(stream: dataset, firstRow: s.rowsQueued, extentRows: s.rowsQueued + rows, buffers: buffers)
        streams[dataset].current = streams[dataset].spare.popLast() ?? s.take()
        streams[dataset].filled = 0
        streams[dataset].rowsQueued += rows
        let elementSize = s.elementSize
        pool.async { chunk.filter(elementSize: elementSize) }
        pending.append(chunk)
        while pending.count > inFlight { try writeOldest() }
    }

    private func writeOldest() throws {
        let chunk = pending.removeFirst()
        let name = streams[chunk.stream].name
        let bytes: UnsafeRawBufferPointer
        do { bytes = try chunk.stored() } catch let e as HDF5Error { throw HDF5Error(file: file.path, object: name, message: e.message) }
        try file.writeStoredChunk(name, firstRow: chunk.firstRow, extentRows: chunk.extentRows, bytes: bytes)
        streams[chunk.stream].spare.append(chunk.buffers)
    }

    /// Writes every dataset's last, partial chunk and everything pending. The datasets then hold
    /// exactly the rows appended (an empty one stays empty, with no chunk).
    public func finish() throws {
        for d in streams.indices where streams[d].filled > 0 {
            let s = streams[d]
            try submit(d, rows: s.filled / (s.rowElements * s.elementSize))
        }
        while !pending.isEmpty { try writeOldest() }
    }
}
