// HDF5Snapshot: files from outside are parsed by libhdf5 in a short-lived child process, never in
// this one. libhdf5 1.10 (Debian) dereferences null or wild pointers on damaged files — in its
// metadata cache (H5C_protect → H5F__accum_read, looking up or iterating a group's local heap) and
// in raw-data reads (H5D__contig_read → H5VM_memcpyvv) — from disk (sec2 driver) as from in-memory
// images (core driver), at places no check of ours can anticipate (docs/robustness.md). So
// `HDF5File(readingAt:)` and `HDF5File(image:name:)` fork; the child opens the file with libhdf5
// and walks all of it through HDF5File's own library-backed reads (same bounds, same messages):
// every group's members, every dataset's shape, kind and values, every attribute. It streams that
// to the parent over a pipe and exits; the parent's HDF5File then answers every read from the
// snapshot. A child killed by a signal becomes an error naming the file and the object being read
// ("…: HDF5 library crashed (SIGSEGV) while reading it: the file is damaged"): no untrusted HDF5
// input can take the process down.
//
// The child is forked by a small helper, the reader process (HDF5ReaderProcess.swift), not by
// this process, whose size would make every fork cost 5–40 ms; where that helper cannot be
// started, by this process (`forkedRead`: the HDF5 lock held across fork, so no other thread is
// inside libhdf5, and re-initialised in the child). Either way the child runs only HDF5Kit and
// leaves with _exit (no atexit handlers, no stdio flush).
import CHDF5
import CHDF5Reader
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A reason stored by the child, rethrown in the parent as an HDF5Error with the caller's names.
struct SnapshotMessage: Error { var text: String }

final class HDF5Snapshot {
    /// Most objects (groups, datasets, other) in one file.
    static let maxObjects = 1 << 22
    /// Deepest nesting of groups (the walk recurses once per level).
    static let maxDepth = 64
    /// Most bytes of values a file may hold in all: its size × HDF5File.maxStorageRatio, and at
    /// least this much (fill values of small unwritten datasets).
    static let minValueBudget = 1 << 28

    enum Values {
        case doubles([Double]), floats([Float]), int64s([Int64])
    }

    struct Dataset {
        var info: Result<(shape: [Int], kind: HDF5ScalarKind), SnapshotMessage>
        var values: Result<Values, SnapshotMessage>?
        var strings: Result<HDF5Array<String>, SnapshotMessage>
    }

    enum Kind {
        case group(members: Result<[String], SnapshotMessage>)
        case dataset(Dataset)
        case other
    }

    struct Attribute {
        var string: Result<String, SnapshotMessage>
        var doubles: Result<[Double], SnapshotMessage>
    }

    struct Object {
        /// nil: libhdf5 could not open the object its link names.
        var kind: Kind?
        var attributeNames: Result<[String], SnapshotMessage> = .failure(SnapshotMessage(text: "object not found"))
        var attributes: [String: Attribute] = [:]
        var opened: Bool { if case .none = kind { return false }; return true }
    }

    let file: String
    /// By path without leading "/" ("" is the root group).
    var objects: [String: Object] = [:]

    init(file: String) { self.file = file }

    static func key(_ name: String) -> String {
        // A plain member name (every lookup of a DeepH legacy block) is its own key.
        if !name.isEmpty, name != ".", !name.utf8.contains(UInt8(ascii: "/")) { return name }
        return name.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    // MARK: Reads (the parent's HDF5File calls these; messages as the library-backed reads give)

    private func fail(_ object: String?, _ text: String) -> HDF5Error { HDF5Error(file: file, object: object, message: text) }

    private func rethrow<T>(_ r: Result<T, SnapshotMessage>, _ object: String?) throws -> T {
        switch r {
        case .success(let v): return v
        case .failure(let m): throw fail(object, m.text)
        }
    }

    func exists(_ name: String) -> Bool { objects[Self.key(name)] != nil }

    func memberNames(of group: String) throws -> [String] {
        guard case .group(let members)? = objects[Self.key(group)]?.kind else { throw fail(group, "no such group") }
        return try rethrow(members, group)
    }

    private func dataset(_ name: String) throws -> Dataset {
        guard let o = objects[Self.key(name)] else { throw fail(name, "dataset not found") }
        guard case .dataset(let d)? = o.kind else { throw fail(name, "not a dataset") }
        return d
    }

    func datasetInfo(_ name: String) throws -> (shape: [Int], kind: HDF5ScalarKind) {
        try rethrow(try dataset(name).info, name)
    }

    func numbers<T: BinaryFloatingPoint>(_ name: String, as: T.Type) throws -> HDF5Array<T> {
        let d = try dataset(name)
        let shape = try rethrow(d.info, name).shape
        switch try rethrow(d.values ?? .failure(SnapshotMessage(text: "not a numeric dataset")), name) {
        case .doubles(let v): return HDF5Array(values: T.self == Double.self ? v as! [T] : v.map { T($0) }, shape: shape)
        case .floats(let v): return HDF5Array(values: T.self == Float.self ? v as! [T] : v.map { T($0) }, shape: shape)
        case .int64s(let v): return HDF5Array(values: v.map { T($0) }, shape: shape)
        }
    }

    func integers(_ name: String) throws -> HDF5Array<Int64> {
        let d = try dataset(name)
        let (shape, kind) = try rethrow(d.info, name)
        guard kind == .int64 || kind == .int32,
              case .int64s(let v) = try rethrow(d.values ?? .failure(SnapshotMessage(text: "not a numeric dataset")), name) else {
            throw fail(name, "expected an integer dataset, found \(kind)")
        }
        return HDF5Array(values: v, shape: shape)
    }

    func strings(_ name: String) throws -> HDF5Array<String> { try rethrow(try dataset(name).strings, name) }

    func string(_ name: String) throws -> String {
        let s = try strings(name)
        guard s.values.count == 1 else { throw fail(name, "expected one string, found \(s.values.count)") }
        return s.values[0]
    }

    private func attribute(_ attribute: String, of object: String) throws -> Attribute {
        guard let o = objects[Self.key(object)], o.opened else { throw fail(object, "object not found") }
        guard let a = o.attributes[attribute] else { throw fail("\(object)@\(attribute)", "attribute not found") }
        return a
    }

    func attributeNames(of object: String) throws -> [String] {
        guard let o = objects[Self.key(object)], o.opened else { throw fail(object, "object not found") }
        return try rethrow(o.attributeNames, object)
    }

    func stringAttribute(_ name: String, of object: String) throws -> String {
        try rethrow(try attribute(name, of: object).string, "\(object)@\(name)")
    }

    func doubleAttribute(_ name: String, of object: String) throws -> [Double] {
        try rethrow(try attribute(name, of: object).doubles, "\(object)@\(name)")
    }

    // MARK: Taking a snapshot

    /// What a snapshot child opens with libhdf5: a file on disk or an in-memory image.
    enum Source {
        case path(String)
        case image([UInt8])

        func open(name: String) throws -> HDF5File {
            switch self {
            case .path(let path): return try HDF5File(readingInProcessAt: path)
            case .image(let bytes): return try HDF5File(inProcessImage: bytes, name: name)
            }
        }
    }

    /// The values a file of `byteCount` bytes may hold in all.
    static func valueBudget(byteCount: Int) -> Int {
        max(minValueBudget, byteCount.multipliedReportingOverflow(by: HDF5File.maxStorageRatio).overflow ? Int.max : byteCount * HDF5File.maxStorageRatio)
    }

    /// A child process opens `source` with libhdf5 and streams the snapshot back (forked by the
    /// reader process, HDF5ReaderProcess.swift). `byteCount` (the file's size) bounds the values
    /// it may hold; `name` names the file in messages.
    static func take(name: String, byteCount: Int, source: Source) throws -> HDF5Snapshot {
        let budget = valueBudget(byteCount: byteCount)
        let read: (stream: [UInt8], status: Int32)
        if case .path(let path) = source, isOpenHere(path) {
            // A file this process has open in libhdf5 (one it is writing): only a fork of this
            // process sees it as libhdf5 here does (what is not flushed yet; and libhdf5's file
            // lock refuses it to another process's library).
            read = try forkedRead(name: name, budget: budget, source: source)
        } else {
            read = try HDF5ReaderProcess.shared.read(name: name, budget: budget, source: source)
        }
        return try decode(read.stream, name: name, status: read.status)
    }

    /// Whether libhdf5 in this process has the file at `path` open (same device and inode).
    static func isOpenHere(_ path: String) -> Bool {
        var target = stat()
        guard stat(path, &target) == 0 else { return false }
        return withHDF5 {
            let count = harmose_h5f_open_file_count()
            guard count > 0 else { return false }
            var ids = [hid_t](repeating: 0, count: count)
            let listed = harmose_h5f_open_file_ids(count, &ids)
            for id in ids.prefix(max(listed, 0)) {
                let length = H5Fget_name(id, nil, 0)
                guard length > 0 else { continue }
                var name = [CChar](repeating: 0, count: length + 1)
                guard H5Fget_name(id, &name, length + 1) > 0 else { continue }
                var open = stat()
                if stat(name, &open) == 0, open.st_dev == target.st_dev, open.st_ino == target.st_ino { return true }
            }
            return false
        }
    }

    /// The child's whole life: opens `source` with libhdf5, walks it into `fd` and exits — by
    /// `_exit` (no atexit handlers, no stdio flush), or by the signal of a crash, which the parent
    /// turns into an error naming the object being read.
    static func walkAndExit(source: Source, name: String, budget: Int, to fd: Int32) -> Never {
        // A crash here must end this process by its signal (the parent reports it), not run
        // the Swift runtime's backtracer or a sanitizer's report on the user's terminal.
        harmose_default_crash_signals()
        var out = SnapshotWriter(fd: fd)
        do {
            var walk = Walk(file: try source.open(name: name), out: SnapshotWriter(fd: fd), budget: budget)
            try walk.run()
            out.byte(UInt8(ascii: "Z"))
        } catch let e as HDF5Error {
            out.byte(UInt8(ascii: "E")); out.string(e.object.map { "\($0): \(e.message)" } ?? e.message)
        } catch {
            out.byte(UInt8(ascii: "E")); out.string("\(error)")
        }
        out.flush()
        _exit(0)
    }

    /// Forks this process for the child (where the reader process cannot be started): the stream
    /// and the child's wait status. The parent holds the HDF5 lock across fork, so no other thread
    /// is inside libhdf5 while its state is copied; the child re-initialises that lock.
    static func forkedRead(name: String, budget: Int, source: Source) throws -> (stream: [UInt8], status: Int32) {
        var fds: [Int32] = [-1, -1]
        guard harmose_hdf5_reader_pipe(&fds) == 0 else { throw HDF5Error(file: name, message: "cannot start the HDF5 reader process: \(String(cString: strerror(errno)))") }
        hdf5Lock.lock()
        let pid = harmose_fork()
        if pid == 0 {
            hdf5Lock.reinitialize()
            close(fds[0])
            walkAndExit(source: source, name: name, budget: budget, to: fds[1])
        }
        let forkError = errno
        hdf5Lock.unlock()
        close(fds[1])
        guard pid > 0 else {
            close(fds[0])
            throw HDF5Error(file: name, message: "cannot start the HDF5 reader process: \(String(cString: strerror(forkError)))")
        }
        let stream = readToEnd(fds[0])
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (stream, status)
    }

    /// Everything until end of file (the child exited: its copy of the write end is closed).
    static func readToEnd(_ fd: Int32) -> [UInt8] {
        var stream: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { stream += chunk[0 ..< n] } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return stream
    }

    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGSEGV: return "SIGSEGV"
        case SIGBUS: return "SIGBUS"
        case SIGILL: return "SIGILL"
        case SIGFPE: return "SIGFPE"
        case SIGABRT: return "SIGABRT"
        case SIGTRAP: return "SIGTRAP"
        case SIGKILL: return "SIGKILL"
        default: return "signal \(s)"
        }
    }

    static func decode(_ stream: [UInt8], name: String, status: Int32) throws -> HDF5Snapshot {
        var r = SnapshotReader(bytes: stream)
        let snapshot = HDF5Snapshot(file: name)
        var current: String?
        func crashed() -> HDF5Error {
            let object = current.map { $0.isEmpty ? "/" : "/\($0)" }
            let reason: String
            if harmose_wifsignaled(status) != 0 {
                reason = "HDF5 library crashed (\(signalName(harmose_wtermsig(status)))) while \(object == nil ? "opening" : "reading") it: the file is damaged"
            } else {
                reason = "the HDF5 reader process ended early (exit status \(harmose_wexitstatus(status))) while \(object == nil ? "opening" : "reading") it: the file is damaged"
            }
            return HDF5Error(file: name, object: object, message: reason)
        }
        do {
            while true {
                switch try r.byte() {
                case UInt8(ascii: "B"): current = try r.string()
                case UInt8(ascii: "O"):
                    let key = try r.string()
                    snapshot.objects[key] = try r.object()
                case UInt8(ascii: "E"): throw HDF5Error(file: name, message: try r.string())
                case UInt8(ascii: "Z"): return snapshot
                default: throw crashed()
                }
            }
        } catch is SnapshotReader.Truncated {
            throw crashed()
        }
    }
}

/// The child's walk over every object of a file, through the library-backed reads.
struct Walk {
    let file: HDF5File
    var out: SnapshotWriter
    var budget: Int
    var objects = 0
    var visitedGroups: Set<UInt64> = []

    init(file: HDF5File, out: SnapshotWriter, budget: Int) {
        self.file = file; self.out = out; self.budget = budget
    }

    mutating func run() throws {
        try visit("")
        out.flush()
    }

    func result<T>(_ body: () throws -> T) -> Result<T, SnapshotMessage> {
        do { return .success(try body()) } catch let e as HDF5Error { return .failure(SnapshotMessage(text: e.message)) } catch {
            return .failure(SnapshotMessage(text: "\(error)"))
        }
    }

    mutating func visit(_ key: String, depth: Int = 0) throws {
        objects += 1
        guard objects <= HDF5Snapshot.maxObjects else {
            throw HDF5Error(file: file.path, message: "more than \(HDF5Snapshot.maxObjects) objects, the limit per file")
        }
        guard depth <= HDF5Snapshot.maxDepth else {
            throw HDF5Error(file: file.path, object: "/" + key, message: "groups nested more than \(HDF5Snapshot.maxDepth) deep, the limit per file")
        }
        // Told before libhdf5 touches the object, so a crash names it.
        out.byte(UInt8(ascii: "B")); out.string(key); out.flush()
        let path = "/" + key
        var object = HDF5Snapshot.Object()
        var type = H5O_TYPE_UNKNOWN
        var address: UInt64 = 0
        var attributeCount: hsize_t?
        let opened: Bool = withHDF5 {
            let o = H5Oopen(file.id, path, harmose_h5p_default())
            guard o >= 0 else { return false }
            defer { H5Oclose(o) }
            var info = H5O_info_t()
            guard H5Oget_info2(o, &info, UInt32(H5O_INFO_BASIC)) >= 0 else { return false }
            type = info.type
            address = UInt64(info.addr)
            var counted = H5O_info_t()
            if H5Oget_info2(o, &counted, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 { attributeCount = counted.num_attrs }
            return true
        }
        var members: [String] = []
        if opened {
            switch type {
            case H5O_TYPE_GROUP:
                if visitedGroups.insert(address).inserted {
                    let r = result { try file.memberNames(of: path) }
                    members = (try? r.get()) ?? []
                    object.kind = .group(members: r)
                } else {
                    object.kind = .group(members: .failure(SnapshotMessage(text: "a link back to a group that contains it (cyclic)")))
                }
            case H5O_TYPE_DATASET:
                object.kind = .dataset(try dataset(path))
            default:
                object.kind = .other
            }
            // No attributes (every block of a DeepH legacy file): the listing attributeNames would
            // give, without opening the object once more.
            object.attributeNames = attributeCount == 0 ? .success([]) : result { try file.attributeNames(of: path) }
            for a in (try? object.attributeNames.get()) ?? [] {
                object.attributes[a] = .init(string: result { try file.stringAttribute(a, of: path) },
                                             doubles: result { try file.doubleAttribute(a, of: path) })
            }
        }
        out.byte(UInt8(ascii: "O")); out.string(key); out.object(object)
        for m in members { try visit(key.isEmpty ? m : "\(key)/\(m)", depth: depth + 1) }
    }

    mutating func dataset(_ path: String) throws -> HDF5Snapshot.Dataset {
        var budget = self.budget
        let whole = try file.readWhole(path) { bytes in
            // Checked before reading: many small unwritten datasets (fill values) in a tiny file.
            guard bytes <= budget else {
                throw HDF5Error(file: file.path, message: "datasets claim more than \(HDF5Snapshot.minValueBudget) bytes and over \(HDF5File.maxStorageRatio)× the file's size in all (truncated or corrupt data)")
            }
            budget -= bytes
        }
        self.budget = budget
        let info = whole.info.mapError { SnapshotMessage(text: $0.message) }
        let values = whole.values.map { $0.mapError { SnapshotMessage(text: $0.message) } }
        var strings: Result<HDF5Array<String>, SnapshotMessage> = .failure(SnapshotMessage(text: "expected a string dataset"))
        switch info {
        case .success:
            break
        case .failure:
            strings = result { try file.readStrings(path) }
            if case .success(let s) = strings {
                let bytes = s.values.reduce(0) { $0 + $1.utf8.count + 16 }
                guard bytes <= budget else {
                    throw HDF5Error(file: file.path, message: "datasets claim more than \(HDF5Snapshot.minValueBudget) bytes and over \(HDF5File.maxStorageRatio)× the file's size in all (truncated or corrupt data)")
                }
                budget -= bytes
            }
        }
        return .init(info: info, values: values, strings: strings)
    }
}

// MARK: The stream between child and parent

/// Buffered writes to the pipe (child side).
struct SnapshotWriter {
    let fd: Int32
    var buffer: [UInt8] = []

    mutating func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { _exit(3) }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func byte(_ b: UInt8) { buffer.append(b) }
    mutating func int(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { buffer += $0 } }
    mutating func int32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { buffer += $0 } }
    mutating func string(_ s: String) { int(s.utf8.count); buffer += s.utf8 }
    mutating func raw<T>(_ values: [T]) {
        int(values.count)
        values.withUnsafeBytes { buffer += $0 }
        if buffer.count > 1 << 20 { flush() }
    }

    mutating func result<T>(_ r: Result<T, SnapshotMessage>, _ body: (inout SnapshotWriter, T) -> Void) {
        switch r {
        case .success(let v): byte(0); body(&self, v)
        case .failure(let m): byte(1); string(m.text)
        }
    }

    mutating func strings(_ values: [String]) { int(values.count); for s in values { string(s) } }

    mutating func object(_ o: HDF5Snapshot.Object) {
        switch o.kind {
        case nil: byte(0)
        case .group(let members)?: byte(1); result(members) { $0.strings($1) }
        case .other?: byte(3)
        case .dataset(let d)?:
            byte(2)
            result(d.info) { w, info in
                w.raw(info.shape.map { Int64($0) })
                w.byte(info.kind == .float64 ? 0 : info.kind == .float32 ? 1 : info.kind == .int64 ? 2 : 3)
            }
            if let values = d.values {
                byte(1)
                result(values) { w, v in
                    switch v {
                    case .doubles(let a): w.byte(0); w.raw(a)
                    case .floats(let a): w.byte(1); w.raw(a)
                    case .int64s(let a): w.byte(2); w.raw(a)
                    }
                }
            } else {
                byte(0)
            }
            result(d.strings) { w, s in w.raw(s.shape.map { Int64($0) }); w.strings(s.values) }
        }
        if !o.opened { return }
        result(o.attributeNames) { $0.strings($1) }
        for name in (try? o.attributeNames.get()) ?? [] {
            let a = o.attributes[name]!
            result(a.string) { $0.string($1) }
            result(a.doubles) { $0.raw($1) }
        }
        if buffer.count > 1 << 16 { flush() }
    }
}

/// Reading the stream (parent side); a short stream (the child died) throws `Truncated`.
struct SnapshotReader {
    struct Truncated: Error {}
    let bytes: [UInt8]
    var offset = 0

    mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw Truncated() }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func int() throws -> Int {
        guard bytes.count - offset >= 8 else { throw Truncated() }
        var v: Int64 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[offset ..< offset + 8]) }
        offset += 8
        return Int(Int64(littleEndian: v))
    }

    mutating func int32() throws -> Int32 {
        guard bytes.count - offset >= 4 else { throw Truncated() }
        var v: Int32 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[offset ..< offset + 4]) }
        offset += 4
        return Int32(littleEndian: v)
    }

    mutating func count(_ size: Int) throws -> Int {
        let n = try int()
        guard n >= 0, n <= (bytes.count - offset) / max(size, 1) else { throw Truncated() }
        return n
    }

    mutating func string() throws -> String {
        let n = try count(1)
        defer { offset += n }
        return String(decoding: bytes[offset ..< offset + n], as: UTF8.self)
    }

    mutating func raw<T>(_: T.Type) throws -> [T] {
        let n = try count(MemoryLayout<T>.stride)
        let size = n * MemoryLayout<T>.stride
        let values = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            bytes[offset ..< offset + size].withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = n
        }
        offset += size
        return values
    }

    mutating func strings() throws -> [String] {
        let n = try count(8)
        return try (0 ..< n).map { _ in try string() }
    }

    mutating func result<T>(_ body: (inout SnapshotReader) throws -> T) throws -> Result<T, SnapshotMessage> {
        switch try byte() {
        case 0: return .success(try body(&self))
        case 1: return .failure(SnapshotMessage(text: try string()))
        default: throw Truncated()
        }
    }

    mutating func object() throws -> HDF5Snapshot.Object {
        var o = HDF5Snapshot.Object()
        switch try byte() {
        case 0: return o
        case 1: o.kind = .group(members: try result { try $0.strings() })
        case 3: o.kind = .other
        case 2:
            let info: Result<(shape: [Int], kind: HDF5ScalarKind), SnapshotMessage> = try result { r in
                let shape = try r.raw(Int64.self).map { Int($0) }
                let kinds: [HDF5ScalarKind] = [.float64, .float32, .int64, .int32]
                let k = Int(try r.byte())
                guard k < kinds.count else { throw Truncated() }
                return (shape, kinds[k])
            }
            var values: Result<HDF5Snapshot.Values, SnapshotMessage>?
            if try byte() == 1 {
                values = try result { r in
                    switch try r.byte() {
                    case 0: return .doubles(try r.raw(Double.self))
                    case 1: return .floats(try r.raw(Float.self))
                    default: return .int64s(try r.raw(Int64.self))
                    }
                }
            }
            let strings: Result<HDF5Array<String>, SnapshotMessage> = try result { r in
                let shape = try r.raw(Int64.self).map { Int($0) }
                return HDF5Array(values: try r.strings(), shape: shape)
            }
            o.kind = .dataset(.init(info: info, values: values, strings: strings))
        default: throw Truncated()
        }
        o.attributeNames = try result { try $0.strings() }
        for name in (try? o.attributeNames.get()) ?? [] {
            o.attributes[name] = .init(string: try result { try $0.string() }, doubles: try result { try $0.raw(Double.self) })
        }
        return o
    }
}
