// HDF5Kit: a small, typed, thread-safe Swift face on the HDF5 C library — open (from disk or from
// an in-memory image, for archive members), list, read and write n-dimensional numeric datasets,
// strings and attributes. Every error names the file and the object. The serial HDF5 library is
// not thread-safe, so every call goes through one process-wide lock. Files from outside (every
// read-only open except `readingOwnArtifactAt:`) are parsed by libhdf5 in a forked child process
// only, and read here from its snapshot (HDF5Snapshot.swift): libhdf5 1.10 segfaults on damaged
// files, which must cost an error naming the file, not the process.
import CHDF5
import Foundation

public struct HDF5Error: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var object: String?
    public var message: String
    public init(file: String, object: String? = nil, message: String) {
        self.file = file; self.object = object; self.message = message
    }
    public var description: String {
        if let object { return "\(file): \(object): \(message)" }
        return "\(file): \(message)"
    }
}

/// Element type stored on disk.
public enum HDF5ScalarKind: Sendable { case float64, float32, int64, int32 }

/// A numeric array read from a dataset: values in row-major (C) order plus the shape.
public struct HDF5Array<T>: Sendable where T: Sendable {
    public var values: [T]
    public var shape: [Int]
    public init(values: [T], shape: [Int]) { self.values = values; self.shape = shape }
}

/// The one lock around every libhdf5 call. A recursive pthread mutex rather than NSRecursiveLock
/// because a forked snapshot child (HDF5Snapshot.swift) is forked while its parent holds it and
/// must re-initialise it: a recursive mutex records its owner's thread id, which the child's only
/// thread does not have.
final class HDF5Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    init() { reinitialize() }
    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// In a forked child only (one thread, the lock's former state meaningless there).
    func reinitialize() {
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }
}

let hdf5Lock: HDF5Lock = {
    let lock = HDF5Lock()
    // No library clean-up at exit: every file is closed by its HDF5File, and after a failed
    // write (disk full) HDF5's own atexit pass dereferenced the half-closed file and crashed the
    // process after the error had been reported (issue #12). Must precede any other HDF5 call.
    _ = H5dont_atexit()
    // Silence HDF5's own error-stack printing: we report errors ourselves, naming file and key.
    _ = H5Eset_auto2(harmose_h5e_default(), nil, nil)
    return lock
}()

@inline(__always) func withHDF5<R>(_ body: () throws -> R) rethrows -> R {
    hdf5Lock.lock(); defer { hdf5Lock.unlock() }
    errno = 0
    return try body()
}

/// The operating system's reason for a failed HDF5 call (HDF5 itself only says "write failed"):
/// disk full, read-only file system, permission denied, … — empty when there is none.
func systemReason() -> String {
    switch errno {
    case 0: return ""
    case ENOSPC: return ": no space left on the device (disk full)"
    case EROFS: return ": read-only file system"
    case EACCES, EPERM: return ": permission denied"
    case EDQUOT: return ": disk quota exceeded"
    case ENOTDIR: return ": a part of the path is not a folder"
    case ENOENT: return ": no such folder"
    default: return ": \(String(cString: strerror(errno)))"
    }
}

public final class HDF5File {
    /// Most elements one dataset read may allocate (2 GiB of Float64): a file's declared shape is
    /// checked against this before any allocation, so a hostile header cannot exhaust memory.
    public static let maxElements = 1 << 28
    /// Claimed bytes a dataset may hold per stored byte (compression), and the size under which a
    /// dataset is read whatever it stores (fill values of small unwritten datasets).
    public static let maxStorageRatio = 2048
    public static let smallDataset = 1 << 20
    /// Most members listed in one group.
    public static let maxMembers = 1 << 26
    /// Most dimensions of a dataset.
    public static let maxRank = 8

    public let path: String
    /// The library's file id; -1 for a file read from a snapshot.
    let id: hid_t
    private var image: UnsafeMutableRawBufferPointer?
    /// Everything readable in a file from outside, parsed in a child process (nil: `id` is open).
    let snapshot: HDF5Snapshot?
    /// A recording file's writes, in order (nil: writes go to `id`); see `init(recording:)`.
    private var recorded: [(HDF5File) throws -> Void]?

    /// Opens an existing file read-only. Parsed by libhdf5 in a child process (see the header):
    /// for every file that comes from outside — structures, checkpoints, stored bands.
    public init(readingAt path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw HDF5Error(file: path, message: "file not found")
        }
        id = -1
        snapshot = try HDF5Snapshot.take(name: path, byteCount: HDF5Snapshot.fileSize(path), source: .path(path))
    }

    /// Opens a file that this program wrote itself (a stage's artifact under outputs/, e.g.
    /// features.h5) read-only, in this process: no copy, for large files read in parts.
    public convenience init(readingOwnArtifactAt path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw HDF5Error(file: path, message: "file not found")
        }
        try self.init(readingInProcessAt: path)
    }

    /// libhdf5 opening a file in this process: the snapshot child, and own artifacts.
    /// `metadataCacheLog`: a path where libhdf5 logs every metadata-cache operation (one JSON line
    /// each), for tests that count the library's work instead of timing it.
    init(readingInProcessAt path: String, metadataCacheLog: String? = nil) throws {
        self.path = path
        snapshot = nil
        id = try withHDF5 {
            guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(file: path, message: "not an HDF5 file (or truncated)") }
            let fapl = H5Pcreate(harmose_h5p_file_access())
            defer { H5Pclose(fapl) }
            if let metadataCacheLog { H5Pset_mdc_log_options(fapl, true, metadataCacheLog, true) }
            let f = H5Fopen(path, harmose_h5f_acc_rdonly(), fapl)
            guard f >= 0 else { throw HDF5Error(file: path, message: "cannot open (corrupt or truncated HDF5)") }
            return f
        }
    }

    /// Opens a file held in memory (an archive member); `name` is used in messages. Parsed by
    /// libhdf5 in a child process, like `init(readingAt:)`.
    public init(image bytes: [UInt8], name: String) throws {
        self.path = name
        id = -1
        snapshot = try HDF5Snapshot.take(name: name, byteCount: bytes.count, source: .image(bytes))
    }

    /// libhdf5 opening an in-memory image in this process (the snapshot child).
    init(inProcessImage bytes: [UInt8], name: String) throws {
        self.path = name
        snapshot = nil
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        image = buffer
        id = try withHDF5 {
            let fapl = H5Pcreate(harmose_h5p_file_access())
            defer { H5Pclose(fapl) }
            H5Pset_fapl_core(fapl, 1 << 16, false)
            guard H5Pset_file_image(fapl, buffer.baseAddress, bytes.count) >= 0 else {
                throw HDF5Error(file: name, message: "cannot load in-memory image")
            }
            let f = H5Fopen(name, harmose_h5f_acc_rdonly(), fapl)
            guard f >= 0 else { throw HDF5Error(file: name, message: "not an HDF5 file (corrupt or truncated)") }
            return f
        }
    }

    /// Creates (truncating) a file for writing.
    public init(creatingAt path: String) throws {
        self.path = path
        snapshot = nil
        id = try withHDF5 {
            // No modification times in object headers (root group here, groups and datasets
            // below): the same content gives the same bytes, so artifacts compare byte for byte.
            let fcpl = H5Pcreate(harmose_h5p_file_create())
            defer { H5Pclose(fcpl) }
            H5Pset_obj_track_times(fcpl, false)
            let f = H5Fcreate(path, harmose_h5f_acc_trunc(), fcpl, harmose_h5p_default())
            guard f >= 0 else { throw HDF5Error(file: path, message: "cannot create file\(systemReason())") }
            return f
        }
    }

    /// Creates a file in memory only (core driver, no backing store): the reader process's
    /// warm-up (HDF5ReaderProcess.swift); gone when closed.
    init(creatingInMemory name: String) throws {
        self.path = name
        snapshot = nil
        id = try withHDF5 {
            let fapl = H5Pcreate(harmose_h5p_file_access())
            defer { H5Pclose(fapl) }
            H5Pset_fapl_core(fapl, 1 << 16, false)
            let f = H5Fcreate(name, harmose_h5f_acc_trunc(), harmose_h5p_default(), fapl)
            guard f >= 0 else { throw HDF5Error(file: name, message: "cannot create file in memory") }
            return f
        }
    }

    /// A file that only records what is written to it — groups, datasets and attributes with
    /// their values (arrays are shared copy-on-write, so this costs little) — and touches no disk
    /// and no libhdf5 until `writeRecorded(to:)` creates a real file and performs the writes in
    /// the same order, giving the bytes that writing directly would have. What it is for: taking
    /// the content of a file now and paying libhdf5's per-object cost later, e.g. on another
    /// thread while the caller goes on changing the objects it saved. Nothing can be read back
    /// from it.
    public init(recording path: String) {
        self.path = path
        id = -1
        snapshot = nil
        recorded = []
    }

    /// Creates (truncating) the file at `path`, performs a recording file's writes in order and
    /// flushes and closes it.
    public func writeRecorded(to path: String) throws {
        guard let recorded else { throw HDF5Error(file: path, message: "writeRecorded needs a recording file (init(recording:))") }
        let file = try HDF5File(creatingAt: path)
        for write in recorded { try write(file) }
        try file.flush()
    }

    /// Records `write` when this is a recording file (true), else returns false.
    private func record(_ write: @escaping (HDF5File) throws -> Void) -> Bool {
        guard recorded != nil else { return false }
        recorded!.append(write)
        return true
    }

    deinit {
        if id >= 0 { withHDF5 { _ = H5Fclose(id) } }
        image?.deallocate()
    }

    /// Closes the file now (flushing writes); further use is a programming error.
    public func flush() throws {
        if recorded != nil { return }
        try withHDF5 {
            guard H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0 else { throw HDF5Error(file: path, message: "flush failed\(systemReason())") }
        }
    }

    // MARK: Listing

    /// Names of the objects directly inside a group ("/" for the root).
    public func memberNames(of group: String = "/") throws -> [String] {
        if let snapshot { return try snapshot.memberNames(of: group) }
        return try withHDF5 {
            let g = H5Gopen2(id, group, harmose_h5p_default())
            guard g >= 0 else { throw HDF5Error(file: path, object: group, message: "no such group") }
            defer { H5Gclose(g) }
            var info = H5G_info_t()
            guard H5Gget_info(g, &info) >= 0 else { throw HDF5Error(file: path, object: group, message: "cannot list") }
            guard info.nlinks <= hsize_t(HDF5File.maxMembers) else {
                throw HDF5Error(file: path, object: group, message: "\(info.nlinks) members, over the limit of \(HDF5File.maxMembers)")
            }
            // One pass in name order. Not H5Lget_name_by_idx per member: on the symbol-table groups
            // most writers make, each call walks the group's B-tree from its start, so listing n
            // members cost O(n²) (minutes for a DeepH legacy file of 10⁵ blocks).
            let listing = MemberListing(limit: Int(info.nlinks))
            var position: hsize_t = 0
            let status = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &position, { _, name, _, context in
                let listing = Unmanaged<MemberListing>.fromOpaque(context!).takeUnretainedValue()
                guard let name, listing.names.count < listing.limit, strnlen(name, 1 << 16) < 1 << 16 else { return -1 }
                listing.names.append(String(cString: name))
                return 0
            }, Unmanaged.passUnretained(listing).toOpaque())
            guard status >= 0, listing.names.count == Int(info.nlinks) else {
                throw HDF5Error(file: path, object: group, message: "cannot read member name")
            }
            return listing.names
        }
    }

    /// The names H5Literate's callback collects (its context pointer), at most `limit`.
    private final class MemberListing {
        let limit: Int
        var names: [String] = []
        init(limit: Int) { self.limit = limit; names.reserveCapacity(limit) }
    }

    public func exists(_ name: String) -> Bool {
        if let snapshot { return snapshot.exists(name) }
        return withHDF5 { H5Lexists(id, name, harmose_h5p_default()) > 0 }
    }

    /// Shape and stored element kind of a dataset.
    public func datasetInfo(_ name: String) throws -> (shape: [Int], kind: HDF5ScalarKind) {
        if let snapshot { return try snapshot.datasetInfo(name) }
        return try withDataset(name) { d in
            (try shapeOf(d, name), try kindOf(d, name))
        }
    }

    // MARK: Reading

    /// Reads any integer or floating dataset as Double (float32 and integers are converted exactly).
    public func readDoubles(_ name: String) throws -> HDF5Array<Double> {
        if let snapshot { return try snapshot.numbers(name, as: Double.self) }
        return try read(name, memType: harmose_h5t_native_double(), zero: 0.0)
    }

    public func readFloats(_ name: String) throws -> HDF5Array<Float> {
        if let snapshot { return try snapshot.numbers(name, as: Float.self) }
        return try read(name, memType: harmose_h5t_native_float(), zero: Float(0))
    }

    /// Reads an integer dataset as Int64; a floating dataset is an error (no silent truncation).
    public func readInt64s(_ name: String) throws -> HDF5Array<Int64> {
        if let snapshot { return try snapshot.integers(name) }
        let kind = try datasetInfo(name).kind
        guard kind == .int64 || kind == .int32 else {
            throw HDF5Error(file: path, object: name, message: "expected an integer dataset, found \(kind)")
        }
        return try read(name, memType: harmose_h5t_native_int64(), zero: Int64(0))
    }

    /// Reads a scalar or 1-element string dataset.
    public func readString(_ name: String) throws -> String {
        if let snapshot { return try snapshot.string(name) }
        return try withDataset(name) { d in
            let t = H5Dget_type(d)
            defer { H5Tclose(t) }
            guard H5Tget_class(t) == H5T_STRING else {
                throw HDF5Error(file: path, object: name, message: "expected a string dataset")
            }
            return try readStringValue(t, name: name) { mem, buf in H5Dread(d, mem, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), buf) }
        }
    }

    // MARK: Writing

    public func write(_ name: String, doubles: [Double], shape: [Int], compressed: Bool = false) throws {
        try write(name, values: doubles, shape: shape, fileType: harmose_h5t_native_double(), compressed: compressed)
    }

    public func write(_ name: String, floats: [Float], shape: [Int], compressed: Bool = false) throws {
        try write(name, values: floats, shape: shape, fileType: harmose_h5t_native_float(), compressed: compressed)
    }

    public func write(_ name: String, int64s: [Int64], shape: [Int], compressed: Bool = false) throws {
        try write(name, values: int64s, shape: shape, fileType: harmose_h5t_native_int64(), compressed: compressed)
    }

    /// Writes a scalar variable-length UTF-8 string dataset.
    public func write(_ name: String, string: String) throws {
        if record({ try $0.write(name, string: string) }) { return }
        try withHDF5 {
            let t = H5Tcopy(harmose_h5t_c_s1())
            defer { H5Tclose(t) }
            H5Tset_size(t, harmose_h5t_variable())
            H5Tset_cset(t, H5T_CSET_UTF8)
            let s = H5Screate(H5S_SCALAR)
            defer { H5Sclose(s) }
            let lcpl = try linkCreationProperties()
            defer { H5Pclose(lcpl) }
            let dcpl = Self.untimedDatasetProperties()
            defer { H5Pclose(dcpl) }
            let d = H5Dcreate2(id, name, t, s, lcpl, dcpl, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot create dataset") }
            defer { H5Dclose(d) }
            let status: herr_t = string.withCString { c in
                var ptr: UnsafePointer<CChar>? = c
                return H5Dwrite(d, t, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), &ptr)
            }
            guard status >= 0 else { throw HDF5Error(file: path, object: name, message: "write failed\(systemReason())") }
        }
    }

    /// Writes an n-dimensional array of variable-length UTF-8 strings (row-major), as h5py
    /// writes a numpy array of `str`.
    public func write(_ name: String, strings: [String], shape: [Int]) throws {
        guard shape.reduce(1, *) == strings.count else {
            throw HDF5Error(file: path, object: name, message: "shape \(shape) does not hold \(strings.count) strings")
        }
        if record({ try $0.write(name, strings: strings, shape: shape) }) { return }
        try withHDF5 {
            let t = H5Tcopy(harmose_h5t_c_s1())
            defer { H5Tclose(t) }
            H5Tset_size(t, harmose_h5t_variable())
            H5Tset_cset(t, H5T_CSET_UTF8)
            var dims = shape.map { hsize_t($0) }
            let s = H5Screate_simple(Int32(dims.count), &dims, nil)
            defer { H5Sclose(s) }
            let lcpl = try linkCreationProperties()
            defer { H5Pclose(lcpl) }
            let dcpl = Self.untimedDatasetProperties()
            defer { H5Pclose(dcpl) }
            let d = H5Dcreate2(id, name, t, s, lcpl, dcpl, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot create dataset (exists?)") }
            defer { H5Dclose(d) }
            let cStrings = strings.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
            guard strings.isEmpty || H5Dwrite(d, t, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), &pointers) >= 0 else {
                throw HDF5Error(file: path, object: name, message: "write failed\(systemReason())")
            }
        }
    }

    /// Reads an array of strings (variable- or fixed-length) in row-major order with its shape.
    public func readStrings(_ name: String) throws -> HDF5Array<String> {
        if let snapshot { return try snapshot.strings(name) }
        return try withDataset(name) { d in
            let t = H5Dget_type(d)
            defer { H5Tclose(t) }
            guard H5Tget_class(t) == H5T_STRING else {
                throw HDF5Error(file: path, object: name, message: "expected a string dataset")
            }
            let shape = try shapeOf(d, name)
            let count = shape.reduce(1, *)
            if H5Tis_variable_str(t) > 0 {
                let mem = H5Tcopy(harmose_h5t_c_s1())
                defer { H5Tclose(mem) }
                H5Tset_size(mem, harmose_h5t_variable())
                H5Tset_cset(mem, H5Tget_cset(t))
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                guard count == 0 || H5Dread(d, mem, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), &pointers) >= 0 else {
                    throw HDF5Error(file: path, object: name, message: "cannot read strings")
                }
                defer { pointers.forEach { free($0) } }
                return HDF5Array(values: pointers.map { $0.map { String(cString: $0) } ?? "" }, shape: shape)
            }
            let size = H5Tget_size(t)
            guard size > 0, size <= 1 << 16, size * count <= HDF5File.maxElements else {
                throw HDF5Error(file: path, object: name, message: "\(count) strings of \(size) bytes, over the limit of \(HDF5File.maxElements) bytes")
            }
            var buffer = [CChar](repeating: 0, count: size * count + 1)
            guard count == 0 || H5Dread(d, t, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), &buffer) >= 0 else {
                throw HDF5Error(file: path, object: name, message: "cannot read strings")
            }
            let values = (0 ..< count).map { k -> String in
                let bytes = buffer[(k * size) ..< ((k + 1) * size)].prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
                return String(decoding: bytes, as: UTF8.self)
            }
            return HDF5Array(values: values, shape: shape)
        }
    }

    /// Dataset creation properties without modification times (see init(creatingAt:)).
    static func untimedDatasetProperties() -> hid_t {
        let dcpl = H5Pcreate(harmose_h5p_dataset_create())
        H5Pset_obj_track_times(dcpl, false)
        return dcpl
    }

    /// Creates a group (and missing parents).
    public func createGroup(_ name: String) throws {
        if record({ try $0.createGroup(name) }) { return }
        try withHDF5 {
            let lcpl = try linkCreationProperties()
            defer { H5Pclose(lcpl) }
            let gcpl = H5Pcreate(harmose_h5p_group_create())
            defer { H5Pclose(gcpl) }
            H5Pset_obj_track_times(gcpl, false)
            let g = H5Gcreate2(id, name, lcpl, gcpl, harmose_h5p_default())
            guard g >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot create group") }
            H5Gclose(g)
        }
    }

    // MARK: Attributes (on the root group or any object)

    public func setAttribute(_ attribute: String, string value: String, on object: String = "/") throws {
        if record({ try $0.setAttribute(attribute, string: value, on: object) }) { return }
        try withObject(object) { o in
            let t = H5Tcopy(harmose_h5t_c_s1())
            defer { H5Tclose(t) }
            H5Tset_size(t, harmose_h5t_variable())
            H5Tset_cset(t, H5T_CSET_UTF8)
            let s = H5Screate(H5S_SCALAR)
            defer { H5Sclose(s) }
            if H5Aexists(o, attribute) > 0 { H5Adelete(o, attribute) }
            let a = H5Acreate2(o, attribute, t, s, harmose_h5p_default(), harmose_h5p_default())
            guard a >= 0 else { throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "cannot create attribute") }
            defer { H5Aclose(a) }
            let status: herr_t = value.withCString { c in
                var ptr: UnsafePointer<CChar>? = c
                return H5Awrite(a, t, &ptr)
            }
            guard status >= 0 else { throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "write failed\(systemReason())") }
        }
    }

    public func setAttribute(_ attribute: String, doubles value: [Double], on object: String = "/") throws {
        if record({ try $0.setAttribute(attribute, doubles: value, on: object) }) { return }
        try withObject(object) { o in
            var dims = [hsize_t(value.count)]
            let s = value.count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
            defer { H5Sclose(s) }
            if H5Aexists(o, attribute) > 0 { H5Adelete(o, attribute) }
            let a = H5Acreate2(o, attribute, harmose_h5t_native_double(), s, harmose_h5p_default(), harmose_h5p_default())
            guard a >= 0 else { throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "cannot create attribute") }
            defer { H5Aclose(a) }
            guard value.withUnsafeBytes({ H5Awrite(a, harmose_h5t_native_double(), $0.baseAddress) }) >= 0 else {
                throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "write failed\(systemReason())")
            }
        }
    }

    public func attributeNames(of object: String = "/") throws -> [String] {
        if let snapshot { return try snapshot.attributeNames(of: object) }
        return try withObject(object) { o in
            var info = H5O_info_t()
            guard H5Oget_info2(o, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else {
                throw HDF5Error(file: path, object: object, message: "cannot read attributes")
            }
            return (0 ..< info.num_attrs).map { k -> String in
                let n = H5Aget_name_by_idx(o, ".", H5_INDEX_NAME, H5_ITER_INC, k, nil, 0, harmose_h5p_default())
                var buf = [CChar](repeating: 0, count: max(Int(n), 0) + 1)
                H5Aget_name_by_idx(o, ".", H5_INDEX_NAME, H5_ITER_INC, k, &buf, buf.count, harmose_h5p_default())
                return String(cString: buf)
            }
        }
    }

    public func stringAttribute(_ attribute: String, of object: String = "/") throws -> String {
        if let snapshot { return try snapshot.stringAttribute(attribute, of: object) }
        return try withAttribute(attribute, of: object) { a in
            let t = H5Aget_type(a)
            defer { H5Tclose(t) }
            guard H5Tget_class(t) == H5T_STRING else {
                throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "expected a string attribute")
            }
            return try readStringValue(t, name: "\(object)@\(attribute)") { mem, buf in H5Aread(a, mem, buf) }
        }
    }

    public func doubleAttribute(_ attribute: String, of object: String = "/") throws -> [Double] {
        if let snapshot { return try snapshot.doubleAttribute(attribute, of: object) }
        return try withAttribute(attribute, of: object) { a in
            let s = H5Aget_space(a)
            defer { H5Sclose(s) }
            let n = Int(H5Sget_simple_extent_npoints(s))
            guard (0 ... HDF5File.maxElements).contains(n) else {
                throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "\(n) elements, outside 0…\(HDF5File.maxElements)")
            }
            var out = [Double](repeating: 0, count: n)
            guard out.withUnsafeMutableBytes({ H5Aread(a, harmose_h5t_native_double(), $0.baseAddress) }) >= 0 else {
                throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "not numeric")
            }
            return out
        }
    }

    // MARK: Internals

    private func linkCreationProperties() throws -> hid_t {
        let lcpl = H5Pcreate(harmose_h5p_link_create())
        H5Pset_create_intermediate_group(lcpl, 1)
        return lcpl
    }

    func withDataset<R>(_ name: String, _ body: (hid_t) throws -> R) throws -> R {
        try withHDF5 {
            guard H5Lexists(id, name, harmose_h5p_default()) > 0 else {
                throw HDF5Error(file: path, object: name, message: "dataset not found")
            }
            let d = H5Dopen2(id, name, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "not a dataset") }
            defer { H5Dclose(d) }
            return try body(d)
        }
    }

    private func withObject<R>(_ name: String, _ body: (hid_t) throws -> R) throws -> R {
        try withHDF5 {
            let o = H5Oopen(id, name, harmose_h5p_default())
            guard o >= 0 else { throw HDF5Error(file: path, object: name, message: "object not found") }
            defer { H5Oclose(o) }
            return try body(o)
        }
    }

    private func withAttribute<R>(_ attribute: String, of object: String, _ body: (hid_t) throws -> R) throws -> R {
        try withObject(object) { o in
            guard H5Aexists(o, attribute) > 0 else {
                throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "attribute not found")
            }
            let a = H5Aopen(o, attribute, harmose_h5p_default())
            guard a >= 0 else { throw HDF5Error(file: path, object: "\(object)@\(attribute)", message: "cannot open attribute") }
            defer { H5Aclose(a) }
            return try body(a)
        }
    }

    private func shapeOf(_ d: hid_t, _ name: String) throws -> [Int] {
        let s = H5Dget_space(d)
        defer { H5Sclose(s) }
        let rank = Int(H5Sget_simple_extent_ndims(s))
        guard rank >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot read shape") }
        guard rank <= HDF5File.maxRank else {
            throw HDF5Error(file: path, object: name, message: "\(rank) dimensions, over the limit of \(HDF5File.maxRank)")
        }
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(s, &dims, nil)
        // Checked before any Int conversion or product: dims are 64-bit unsigned on disk.
        var total: hsize_t = 1
        for d in dims {
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, d <= hsize_t(HDF5File.maxElements), product <= hsize_t(HDF5File.maxElements) else {
                throw HDF5Error(file: path, object: name, message: "shape \(dims) holds more than \(HDF5File.maxElements) elements, the limit per dataset")
            }
            total = product
        }
        return dims.map { Int($0) }
    }

    private func kindOf(_ d: hid_t, _ name: String) throws -> HDF5ScalarKind {
        let t = H5Dget_type(d)
        defer { H5Tclose(t) }
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_FLOAT: return size == 4 ? .float32 : .float64
        case H5T_INTEGER: return size <= 4 ? .int32 : .int64
        default: throw HDF5Error(file: path, object: name, message: "not a numeric dataset")
        }
    }

    /// A dataset may claim up to `maxElements` elements while storing none (unallocated, read as
    /// fill values) or a few bytes: a 10 kB file then made the reader allocate and clear 2 GiB
    /// (fuzz finding). Refused before allocating: the claimed bytes must be held by the stored
    /// bytes at a ratio no filter reaches on real data (deflate's bound is about 1032:1), unless
    /// they are small anyway.
    private func checkStored(_ d: hid_t, _ name: String, count: Int) throws {
        let t = H5Dget_type(d)
        defer { H5Tclose(t) }
        let claimed = count * max(1, Int(H5Tget_size(t)))
        let stored = Int(clamping: H5Dget_storage_size(d))
        guard claimed <= HDF5File.smallDataset || stored.multipliedReportingOverflow(by: HDF5File.maxStorageRatio).partialValue >= claimed
                || stored.multipliedReportingOverflow(by: HDF5File.maxStorageRatio).overflow else {
            throw HDF5Error(file: path, object: name, message: "shape claims \(claimed) bytes but the file stores \(stored) (truncated or corrupt data)")
        }
    }

    private func read<T>(_ name: String, memType: hid_t, zero: T) throws -> HDF5Array<T> {
        try withDataset(name) { d in try read(d, name, memType: memType, zero: zero) }
    }

    /// The snapshot child's read of one numeric dataset, opened once (not once for its shape and
    /// kind and again for its values: per-dataset opens dominate files of 10⁵ small datasets).
    /// Results and messages as `datasetInfo` and then `readDoubles`/`readFloats`/`readInt64s`
    /// give; `admit` sees the values' byte count before they are read, and what it throws is
    /// rethrown.
    func readWhole(_ name: String, admit: (_ bytes: Int) throws -> Void)
        throws -> (info: Result<(shape: [Int], kind: HDF5ScalarKind), HDF5Error>, values: Result<HDF5Snapshot.Values, HDF5Error>?) {
        var info: Result<(shape: [Int], kind: HDF5ScalarKind), HDF5Error> = .failure(HDF5Error(file: path, object: name, message: "dataset not found"))
        var values: Result<HDF5Snapshot.Values, HDF5Error>?
        var refused: Error?
        do {
            try withDataset(name) { d in
                do { info = .success((try shapeOf(d, name), try kindOf(d, name))) } catch let e as HDF5Error { info = .failure(e); return }
                guard case .success(let (shape, kind)) = info else { return }
                do { try admit(shape.reduce(1, *) * (kind == .float32 || kind == .int32 ? 4 : 8)) } catch { refused = error; return }
                do {
                    switch kind {
                    case .float64: values = .success(.doubles(try read(d, name, memType: harmose_h5t_native_double(), zero: 0.0).values))
                    case .float32: values = .success(.floats(try read(d, name, memType: harmose_h5t_native_float(), zero: Float(0)).values))
                    case .int64, .int32: values = .success(.int64s(try read(d, name, memType: harmose_h5t_native_int64(), zero: Int64(0)).values))
                    }
                } catch let e as HDF5Error { values = .failure(e) }
            }
        } catch let e as HDF5Error { info = .failure(e) }
        if let refused { throw refused }
        return (info, values)
    }

    private func read<T>(_ d: hid_t, _ name: String, memType: hid_t, zero: T) throws -> HDF5Array<T> {
        let shape = try shapeOf(d, name)
        _ = try kindOf(d, name)
        let count = shape.reduce(1, *)
        try checkStored(d, name, count: count)
        var values = [T](repeating: zero, count: count)
        if count > 0 {
            let status = values.withUnsafeMutableBytes {
                H5Dread(d, memType, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), $0.baseAddress)
            }
            guard status >= 0 else {
                throw HDF5Error(file: path, object: name, message: "read failed (truncated or corrupt data)")
            }
        }
        return HDF5Array(values: values, shape: shape)
    }

    private func readStringValue(_ t: hid_t, name: String, read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> String {
        if H5Tis_variable_str(t) > 0 {
            let mem = H5Tcopy(harmose_h5t_c_s1())
            defer { H5Tclose(mem) }
            H5Tset_size(mem, harmose_h5t_variable())
            H5Tset_cset(mem, H5Tget_cset(t))
            var ptr: UnsafeMutablePointer<CChar>? = nil
            guard read(mem, &ptr) >= 0, let p = ptr else {
                throw HDF5Error(file: path, object: name, message: "cannot read string")
            }
            defer { free(p) }
            return String(cString: p)
        }
        let size = H5Tget_size(t)
        guard size <= 1 << 24 else { throw HDF5Error(file: path, object: name, message: "string of \(size) bytes, over the limit of \(1 << 24)") }
        var buf = [CChar](repeating: 0, count: size + 1)
        guard buf.withUnsafeMutableBytes({ read(t, $0.baseAddress!) }) >= 0 else {
            throw HDF5Error(file: path, object: name, message: "cannot read string")
        }
        return String(cString: buf)
    }

    // MARK: Appendable (streamed) datasets

    /// Creates an empty dataset of `columns`-wide rows (1-D when columns == 0) that grows along
    /// its first axis with `append`; chunked (≈ `chunkRows` rows per chunk) and, when `compressed`,
    /// shuffled + gzip-compressed. Memory stays at one chunk whatever the final size. (Large
    /// streams: `FilteredChunkAppender` fills these datasets with chunks it compresses itself.)
    public func createAppendable(_ name: String, kind: HDF5ScalarKind, columns: Int = 0, chunkRows: Int = 65536,
                                 compressed: Bool = true) throws {
        try withHDF5 {
            var dims: [hsize_t] = columns > 0 ? [0, hsize_t(columns)] : [0]
            var maxDims: [hsize_t] = columns > 0 ? [harmose_h5s_unlimited(), hsize_t(columns)] : [harmose_h5s_unlimited()]
            let s = H5Screate_simple(Int32(dims.count), &dims, &maxDims)
            defer { H5Sclose(s) }
            let dcpl = H5Pcreate(harmose_h5p_dataset_create())
            defer { H5Pclose(dcpl) }
            var chunk: [hsize_t] = columns > 0 ? [hsize_t(max(1, chunkRows)), hsize_t(columns)] : [hsize_t(max(1, chunkRows))]
            H5Pset_chunk(dcpl, Int32(chunk.count), &chunk)
            if compressed { H5Pset_shuffle(dcpl); H5Pset_deflate(dcpl, UInt32(HDF5ChunkFilter.appendableDeflateLevel)) }
            let lcpl = try linkCreationProperties()
            defer { H5Pclose(lcpl) }
            let d = H5Dcreate2(id, name, Self.fileType(kind), s, lcpl, dcpl, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot create dataset (exists?)") }
            H5Dclose(d)
        }
    }

    public func append(_ name: String, doubles: [Double]) throws { try append(name, values: doubles, kind: .float64) }
    public func append(_ name: String, int64s: [Int64]) throws { try append(name, values: int64s, kind: .int64) }

    private static func fileType(_ kind: HDF5ScalarKind) -> hid_t {
        switch kind {
        case .float64: return harmose_h5t_native_double()
        case .float32: return harmose_h5t_native_float()
        default: return harmose_h5t_native_int64()
        }
    }

    private func append<T>(_ name: String, values: [T], kind: HDF5ScalarKind) throws {
        if values.isEmpty { return }
        try withHDF5 {
            let d = H5Dopen2(id, name, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "no such dataset") }
            defer { H5Dclose(d) }
            let s0 = H5Dget_space(d)
            let rank = Int(H5Sget_simple_extent_ndims(s0))
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(s0, &dims, nil)
            H5Sclose(s0)
            let width = rank > 1 ? Int(dims[1]) : 1
            guard values.count % width == 0 else {
                throw HDF5Error(file: path, object: name, message: "\(values.count) values are not whole rows of \(width)")
            }
            var start = [hsize_t](repeating: 0, count: rank)
            start[0] = dims[0]
            var count = dims
            count[0] = hsize_t(values.count / width)
            var newDims = dims
            newDims[0] += count[0]
            guard H5Dset_extent(d, &newDims) >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot extend") }
            let fs = H5Dget_space(d)
            defer { H5Sclose(fs) }
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, nil, &count, nil)
            let ms = H5Screate_simple(Int32(rank), &count, nil)
            defer { H5Sclose(ms) }
            let status = values.withUnsafeBytes { H5Dwrite(d, Self.fileType(kind), ms, fs, harmose_h5p_default(), $0.baseAddress) }
            guard status >= 0 else { throw HDF5Error(file: path, object: name, message: "append failed") }
        }
    }

    private func write<T>(_ name: String, values: [T], shape: [Int], fileType: hid_t, compressed: Bool) throws {
        guard shape.reduce(1, *) == values.count else {
            throw HDF5Error(file: path, object: name, message: "shape \(shape) does not hold \(values.count) values")
        }
        if record({ try $0.write(name, values: values, shape: shape, fileType: fileType, compressed: compressed) }) { return }
        try withHDF5 {
            var dims = shape.map { hsize_t($0) }
            let s = H5Screate_simple(Int32(dims.count), &dims, nil)
            defer { H5Sclose(s) }
            let dcpl = Self.untimedDatasetProperties()
            defer { H5Pclose(dcpl) }
            if compressed && values.count > 0 {
                var chunk = dims
                // Chunk along the first axis, about 64 KiB per chunk.
                let rowSize = max(1, dims.dropFirst().reduce(1, *))
                chunk[0] = max(1, min(dims[0], hsize_t(max(1, 16384 / Int(rowSize)))))
                H5Pset_chunk(dcpl, Int32(chunk.count), &chunk)
                H5Pset_shuffle(dcpl)
                H5Pset_deflate(dcpl, 4)
            }
            let lcpl = try linkCreationProperties()
            defer { H5Pclose(lcpl) }
            let d = H5Dcreate2(id, name, fileType, s, lcpl, dcpl, harmose_h5p_default())
            guard d >= 0 else { throw HDF5Error(file: path, object: name, message: "cannot create dataset (exists?)") }
            defer { H5Dclose(d) }
            if values.count > 0 {
                let status = values.withUnsafeBytes {
                    H5Dwrite(d, fileType, harmose_h5s_all(), harmose_h5s_all(), harmose_h5p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw HDF5Error(file: path, object: name, message: "write failed\(systemReason())") }
            }
        }
    }
}
