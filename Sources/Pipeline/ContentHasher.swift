// Content hashes of input files and directories. A file is hashed by its bytes (SHA-256), but only
// when its (path, size, mtime, inode) is not in the cache, so checking an unchanged 1,000-structure
// dataset costs one stat per file and never rereads it; touching a file without changing it costs
// one rehash and changes no fingerprint.
import Dispatch
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Identity of a file version as the cache sees it.
struct FileStamp: Equatable {
    var size: Int64
    var mtimeSeconds: Int
    var mtimeNanoseconds: Int
    var inode: UInt64
}

enum FileKind {
    case file(FileStamp)
    /// (device, inode) identifies a folder reached through several symlinks.
    case directory(device: UInt64, inode: UInt64)
    case other, missing
}

func fileKind(atPath path: String) -> FileKind {
    var st = stat()
    guard stat(path, &st) == 0 else { return .missing }
    switch st.st_mode & S_IFMT {
    case S_IFDIR: return .directory(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    case S_IFREG:
        #if os(Linux)
        let mtime = st.st_mtim
        #else
        let mtime = st.st_mtimespec
        #endif
        return .file(FileStamp(size: Int64(st.st_size), mtimeSeconds: Int(mtime.tv_sec),
                               mtimeNanoseconds: Int(mtime.tv_nsec), inode: UInt64(st.st_ino)))
    default: return .other
    }
}

/// Names in a directory (not "." or ".."), sorted, hidden names skipped.
func directoryEntries(atPath path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw posixError("opendir", path) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name.hasPrefix(".") { continue }  // ".", "..", and hidden files (editor swap files, .DS_Store)
        names.append(name)
    }
    return names.sorted()
}

/// A hashed input: its digest and the files it consists of (for explaining what changed).
public struct InputDigest: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Path relative to the input ("" when the input is a single file).
        public let relativePath: String
        public let size: Int64
        public let hash: String
    }
    public let hash: String
    public let files: [Entry]
}

/// Hashes files and directories by content, remembering hashes of unchanged files across runs.
/// Thread-safe; the cache file is rewritten (atomically) only when something new was hashed.
public final class ContentHasher: @unchecked Sendable {
    private struct CacheEntry {
        var stamp: FileStamp
        var hash: String
        var used: Bool
    }

    private let cacheURL: URL?
    private var cache: [String: CacheEntry] = [:]
    private var digests: [String: InputDigest] = [:]
    private var dirty = false
    private let lock = NSLock()
    /// Number of files whose bytes were read (tests check a no-op reads none).
    public private(set) var filesRead = 0

    private static let header = "harmose-content-hash-cache 1"

    /// Folders never descended into (the artifact store: an input folder that contains outputs/
    /// would otherwise change with every run).
    private let excluded: Set<String>

    /// `cacheURL`: where the cache lives (nil: in memory only). A missing or unreadable cache is
    /// treated as empty: it only saves time, never decides correctness of a hash.
    public init(cacheURL: URL?, excluding excludedFolders: [URL] = []) {
        self.cacheURL = cacheURL
        excluded = Set(excludedFolders.map { $0.standardizedFileURL.path })
        guard let cacheURL, let data = try? Data(contentsOf: cacheURL) else { return }
        // Parsed on raw bytes: this runs on every no-op check, over one line per input file.
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let header = Array(ContentHasher.header.utf8) + [0x0A]
            guard bytes.count >= header.count, zip(bytes, header).allSatisfy({ $0 == $1 }) else { return }
            var i = header.count
            var fields: [Range<Int>] = []
            fields.reserveCapacity(6)
            while i < bytes.count {
                fields.removeAll(keepingCapacity: true)
                var start = i
                while i < bytes.count, bytes[i] != 0x0A {
                    if bytes[i] == 0x09 { fields.append(start ..< i); start = i + 1 }
                    i += 1
                }
                fields.append(start ..< i)
                i += 1
                guard fields.count == 6, fields[5].count == 64,
                      let size = parseInteger(bytes, fields[1]), let s = parseInteger(bytes, fields[2]),
                      let ns = parseInteger(bytes, fields[3]), let ino = parseInteger(bytes, fields[4]) else { continue }
                let path = String(decoding: UnsafeBufferPointer(rebasing: bytes[fields[0]]), as: UTF8.self)
                let hash = String(decoding: UnsafeBufferPointer(rebasing: bytes[fields[5]]), as: UTF8.self)
                cache[path] = CacheEntry(stamp: FileStamp(size: Int64(size), mtimeSeconds: s, mtimeNanoseconds: ns, inode: UInt64(ino)),
                                         hash: hash, used: false)
            }
        }
    }

    /// The cached hash of a file whose stamp is unchanged.
    private func cachedHash(atPath path: String, stamp: FileStamp) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = cache[path], entry.stamp == stamp else { return nil }
        cache[path]!.used = true
        return entry.hash
    }

    /// SHA-256 of one regular file's bytes, from the cache when its stamp is unchanged.
    func hashFile(atPath path: String, stamp: FileStamp) throws -> String {
        if let cached = cachedHash(atPath: path, stamp: stamp) { return cached }
        let hash: String
        do { hash = try SHA256.hashFile(atPath: path) } catch let e as FileError { throw PipelineError.io(path: e.path, reason: e.reason) }
        // A file rewritten while we read it must not be cached under the new stamp with old bytes.
        guard case let .file(after) = fileKind(atPath: path), after == stamp else {
            throw PipelineError.io(path: path, reason: "file changed while it was being hashed")
        }
        lock.lock()
        filesRead += 1
        if !path.contains("\t"), !path.contains("\n") {
            cache[path] = CacheEntry(stamp: stamp, hash: hash, used: true)
            dirty = true
        }
        lock.unlock()
        return hash
    }

    /// Digest of a file (its content hash) or a directory (hash over the sorted relative paths and
    /// content hashes of every regular file below it, hidden names skipped). Memoised per process.
    public func digest(of url: URL) throws -> InputDigest {
        let path = url.standardizedFileURL.path
        lock.lock()
        if let d = digests[path] { lock.unlock(); return d }
        lock.unlock()
        let digest: InputDigest
        switch fileKind(atPath: path) {
        case let .file(stamp):
            let h = try hashFile(atPath: path, stamp: stamp)
            digest = InputDigest(hash: h, files: [.init(relativePath: "", size: stamp.size, hash: h)])
        case let .directory(device, inode):
            var found: [(relative: String, path: String, stamp: FileStamp)] = []
            var visited: Set<[UInt64]> = [[device, inode]]
            try walk(path, relative: "", into: &found, visited: &visited)
            let hashes = try hashAll(found.map { ($0.path, $0.stamp) })
            let files = zip(found, hashes).map { InputDigest.Entry(relativePath: $0.relative, size: $0.stamp.size, hash: $1) }
            var h = SHA256()
            for f in files {
                h.update(f.relativePath)
                h.update("\0\(f.hash)\n")
            }
            digest = InputDigest(hash: h.finalizeHex(), files: files)
        case .missing:
            throw PipelineError.io(path: path, reason: "input does not exist")
        case .other:
            throw PipelineError.io(path: path, reason: "input is neither a regular file nor a directory")
        }
        lock.lock()
        digests[path] = digest
        lock.unlock()
        return digest
    }

    /// Hashes of many files: cache hits first (no thread hand-off on a no-op), then the misses
    /// read in parallel, one file per worker (a cold dataset hashes at all cores' speed).
    private func hashAll(_ files: [(path: String, stamp: FileStamp)]) throws -> [String] {
        var hashes = files.map { cachedHash(atPath: $0.path, stamp: $0.stamp) ?? "" }
        let misses = hashes.indices.filter { hashes[$0].isEmpty }
        if misses.count <= 1 {
            for k in misses { hashes[k] = try hashFile(atPath: files[k].path, stamp: files[k].stamp) }
            return hashes
        }
        // Workers write disjoint slots of `results` and the first error, under the lock.
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var hashes: [String]
            var firstError: Error?
            init(_ hashes: [String]) { self.hashes = hashes }
        }
        let results = Results(hashes)
        DispatchQueue.concurrentPerform(iterations: misses.count) { m in
            let k = misses[m]
            let outcome = Result { try hashFile(atPath: files[k].path, stamp: files[k].stamp) }
            results.lock.lock(); defer { results.lock.unlock() }
            switch outcome {
            case let .success(hash): results.hashes[k] = hash
            case let .failure(error): if results.firstError == nil { results.firstError = error }
            }
        }
        if let firstError = results.firstError { throw firstError }
        return results.hashes
    }

    private func walk(_ dir: String, relative: String, into files: inout [(relative: String, path: String, stamp: FileStamp)],
                      visited: inout Set<[UInt64]>) throws
    {
        for name in try directoryEntries(atPath: dir) {
            let path = dir + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            switch fileKind(atPath: path) {
            case let .file(stamp):
                files.append((rel, path, stamp))
            case let .directory(device, inode):
                // Symlinked folders are followed once: a link loop must not recurse forever.
                if excluded.contains(path) || !visited.insert([device, inode]).inserted { continue }
                try walk(path, relative: rel, into: &files, visited: &visited)
            case .missing, .other:
                continue  // dangling links, sockets: not data
            }
        }
    }

    /// Writes the cache if anything was hashed. Entries not used in this process are kept while
    /// their file still exists, so several pipelines can share one outputs/ folder.
    public func save() throws {
        lock.lock()
        defer { lock.unlock() }
        guard dirty, let cacheURL else { return }
        var out = ContentHasher.header + "\n"
        for (path, entry) in cache.sorted(by: { $0.key < $1.key }) {
            if !entry.used, case .missing = fileKind(atPath: path) { continue }
            let s = entry.stamp
            out += "\(path)\t\(s.size)\t\(s.mtimeSeconds)\t\(s.mtimeNanoseconds)\t\(s.inode)\t\(entry.hash)\n"
        }
        try AtomicOutput.write(Data(out.utf8), to: cacheURL)
        dirty = false
    }
}

/// A non-negative decimal integer, or nil.
private func parseInteger(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
    guard !range.isEmpty, range.count <= 18 else { return nil }
    var v = 0
    for i in range {
        let d = Int(bytes[i]) - 48
        guard (0 ... 9).contains(d) else { return nil }
        v = v * 10 + d
    }
    return v
}
