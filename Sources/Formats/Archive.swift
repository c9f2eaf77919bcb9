// Streaming reads of .tar, .tar.gz/.tgz, .tar.xz/.txz and .zip datasets through libarchive. One
// pass over the archive; the member files of one structure folder are held in memory only until
// that structure has been parsed, so memory stays at about one structure however large the
// archive. Nothing is extracted to disk.
import CArchive
import Foundation

enum ArchiveReader {
    static let extensions = [".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".zip"]

    static func looksLikeArchive(_ url: URL) -> Bool {
        let name = url.lastPathComponent.lowercased()
        return extensions.contains { name.hasSuffix($0) }
    }

    /// Largest member read into memory (a hostile header or a compression bomb could ask for any
    /// size; real DeepH HDF5 files are well under this).
    static let maxMemberBytes = 4 << 30

    /// A readable member, delivered in archive order.
    struct Member {
        /// The normalised name (see `MemberPath`): relative, no `.`/`..`/empty components.
        var path: String
        var isRegularFile: Bool
        /// A symbolic or hard link: never followed, never read.
        var isLink: Bool
        /// Reads the member's bytes; callable once, before the next member.
        var read: () throws -> [UInt8]
    }

    static func forEachMember(of archive: URL, _ body: (Member) throws -> Void) throws {
        let location = archive.path
        guard FileManager.default.fileExists(atPath: location) else {
            throw FormatError(file: location, message: "no such archive")
        }
        guard let a = archive_read_new() else { throw FormatError(file: location, message: "libarchive: out of memory") }
        defer { archive_read_free(a) }
        archive_read_support_filter_all(a)
        archive_read_support_format_tar(a)
        archive_read_support_format_gnutar(a)
        archive_read_support_format_zip(a)
        func failure(_ what: String, member: String? = nil) -> FormatError {
            let detail = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
            return FormatError(file: location, field: member, message: "\(what): \(detail) (truncated or corrupt archive?)")
        }
        guard archive_read_open_filename(a, location, 1 << 16) == ARCHIVE_OK else {
            throw failure("cannot open archive")
        }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(a, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw failure("cannot read the next member header")
            }
            let path = try memberName(entry, archive: location)
            let isLink = archive_entry_filetype(entry) == 0o120000 || archive_entry_hardlink(entry) != nil
            let isFile = archive_entry_filetype(entry) == 0o100000 && !isLink
            let declared = archive_entry_size_is_set(entry) != 0 ? Int(archive_entry_size(entry)) : -1
            if isFile, declared > maxMemberBytes {
                throw FormatError(file: location, field: "member \(MemberPath.quoted(path))",
                                  message: "header declares \(declared) bytes, over the limit of \(maxMemberBytes) bytes per member")
            }
            var consumed = false
            let member = Member(path: path, isRegularFile: isFile, isLink: isLink) {
                precondition(!consumed, "archive member read twice")
                consumed = true
                var bytes: [UInt8] = []
                if declared > 0 { bytes.reserveCapacity(min(declared, 1 << 26)) }
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = chunk.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
                    if n == 0 { break }
                    guard n > 0 else { throw failure("cannot read member data", member: path) }
                    guard bytes.count + n <= maxMemberBytes else {
                        throw FormatError(file: location, field: "member \(MemberPath.quoted(path))",
                                          message: "holds more than \(maxMemberBytes) bytes, the limit per member (compression bomb?)")
                    }
                    bytes.append(contentsOf: chunk[0 ..< n])
                }
                if declared >= 0 && bytes.count != declared {
                    throw FormatError(file: location, field: path, message: "member holds \(bytes.count) bytes, header says \(declared) (truncated archive)")
                }
                return bytes
            }
            try body(member)
            if !consumed {
                guard archive_read_data_skip(a) == ARCHIVE_OK else { throw failure("cannot skip member data", member: path) }
            }
        }
    }

    /// The member's name, normalised, or a FormatError naming archive, member and reason: names
    /// that could leave a destination (`..`, absolute, drive letters), NUL/control characters,
    /// invalid UTF-8 and overlong names are refused for every member, used or not — an archive
    /// that carries one is not trusted.
    static func memberName(_ entry: OpaquePointer, archive: String) throws -> String {
        guard let c = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry) else {
            throw FormatError(file: archive, field: "member name", message: "refused: the name cannot be decoded")
        }
        let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(c).assumingMemoryBound(to: UInt8.self), count: strlen(c)))
        switch MemberPath.normalize(bytes: bytes) {
        case .success(let name): return name
        case .failure(let refusal):
            let shown = MemberPath.quoted(String(decoding: bytes, as: UTF8.self))
            throw FormatError(file: archive, field: "member \(shown)", message: "refused: the member name \(refusal)")
        }
    }

    /// Splits a (normalised) member path into (structure folder, file name), ignoring files that
    /// belong to no structure layout and macOS resource forks.
    static func split(_ path: String) -> (folder: String, file: String)? {
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.contains("__MACOSX"), !parts.contains(where: { $0.hasPrefix("._") }) else { return nil }
        // ABACUS run directories: STRU at the top, the matrices and log one level down in OUT.*.
        if parts.count >= 2, parts[parts.count - 2].hasPrefix("OUT."), ABACUS.knownOutFiles.contains(parts[parts.count - 1]) {
            return (parts.dropLast(2).joined(separator: "/"), parts.suffix(2).joined(separator: "/"))
        }
        if let file = parts.last, ABACUS.knownRunFiles.contains(file) { return (parts.dropLast().joined(separator: "/"), file) }
        // CP2K output folders: the .out/.inp files and the real-space KS/S CSR files.
        if let file = parts.last, file.hasSuffix(".out") || file.hasSuffix(".inp")
            || (file.hasSuffix(".csr") && (file.contains("-KS_SPIN_") || file.contains("-S_SPIN_"))) {
            return (parts.dropLast().joined(separator: "/"), file)
        }
        guard let file = parts.last, StructureLayout.knownFiles.contains(file),
              !parts.contains("__MACOSX"), !parts.contains(where: { $0.hasPrefix("._") }) else { return nil }
        return (parts.dropLast().joined(separator: "/"), file)
    }

    /// The structure name of a member folder: the folder itself, or for files at the archive's
    /// top level the archive's name without its extension. Either becomes an output folder name,
    /// so it must pass `MemberPath` with hidden components refused ("..tar" would name "." and
    /// ".tar.gz" nothing).
    static func structureName(folder: String, archive: URL) throws -> String {
        var name = folder
        if folder.isEmpty {
            name = archive.lastPathComponent
            for ext in extensions.sorted(by: { $0.count > $1.count }) where name.lowercased().hasSuffix(ext) {
                name = String(name.dropLast(ext.count)); break
            }
        }
        switch MemberPath.normalize(name, hiddenAllowed: false) {
        case .success(let clean): return clean
        case .failure(let refusal):
            throw FormatError(file: archive.path, field: folder.isEmpty ? "archive name" : "member folder \(MemberPath.quoted(folder))",
                              message: "refused as a structure name: it \(refusal)")
        }
    }

    /// Structure folders seen so far in one pass: refuses a folder whose name collides with an
    /// earlier one on a case-insensitive or normalising file system, or that lies inside another
    /// structure folder (writing one would replace or nest into the other).
    struct FolderNames {
        let archive: String
        var byKey: [String: String] = [:]
        var all: [String] = []

        mutating func admit(_ folder: String) throws {
            let key = MemberPath.collisionKey(folder)
            if let other = byKey[key] {
                guard other == folder else {
                    throw FormatError(file: archive, field: "member folder \(MemberPath.quoted(folder))",
                                      message: "refused: collides with structure folder \(MemberPath.quoted(other)) (names differ only in case or Unicode normalisation)")
                }
                return
            }
            for other in all {
                let (outer, inner) = other.count < folder.count ? (other, folder) : (folder, other)
                if outer.isEmpty || inner.hasPrefix(outer + "/") {
                    throw FormatError(file: archive, field: "member folder \(MemberPath.quoted(inner))",
                                      message: "refused: lies inside structure folder \(MemberPath.quoted(outer.isEmpty ? "(archive top level)" : outer)); structure folders cannot nest")
                }
            }
            byKey[key] = folder
            all.append(folder)
        }
    }

    /// Refuses a link that stands where a structure file would be (links are never followed).
    static func checkNotLink(_ m: Member, archive: String) throws {
        if m.isLink, split(m.path) != nil {
            throw FormatError(file: archive, field: "member \(MemberPath.quoted(m.path))",
                              message: "refused: a structure file that is a link (links in archives are never followed)")
        }
    }

    /// Names (member folders) of the structures in the archive, in archive order; reads headers only.
    static func structureNames(archive: URL) throws -> [String] {
        var files: [String: Set<String>] = [:]
        var order: [String] = []
        try forEachMember(of: archive) { m in
            try checkNotLink(m, archive: archive.path)
            guard m.isRegularFile, let (folder, file) = split(m.path) else { return }
            if files[folder] == nil { order.append(folder) }
            guard files[folder, default: []].insert(file).inserted else {
                throw FormatError(file: archive.path, field: "member \(MemberPath.quoted(m.path))", message: "refused: duplicate member (after normalising the name)")
            }
        }
        var seen = FolderNames(archive: archive.path)
        return try order.filter { StructureLayout.format(ofFileNames: files[$0]!) != nil }
            .map { folder in
                try seen.admit(folder)
                return try structureName(folder: folder, archive: archive)
            }
    }

    /// Thrown by a member visitor to end the pass early.
    private struct StopReading: Error {}

    /// The layout of the first structure file in the archive; stops reading there.
    static func detectFormat(archive: URL) throws -> DFTFormat {
        var found: DFTFormat?
        do {
            var names: [String: Set<String>] = [:]
            try forEachMember(of: archive) { m in
                guard m.isRegularFile, let (folder, file) = split(m.path) else { return }
                names[folder, default: []].insert(file)
                // A CP2K folder is recognised by two files together (the .out and a KS CSR file).
                if let format = StructureLayout.format(ofFileNames: names[folder]!) {
                    found = format
                    throw StopReading()
                }
            }
        } catch is StopReading {}
        guard let found else {
            throw FormatError(file: archive.path, message: "no DeepH-dock, DeepH legacy, ABACUS or CP2K structure found in the archive")
        }
        return found
    }

    /// Reads each structure of the archive in one pass. A structure folder is parsed as soon as
    /// all its layout's files have arrived, or when the archive moves on to another folder;
    /// members of a folder that was already parsed are an error (tar and zip keep a folder's
    /// files together, so this only happens for hand-assembled archives).
    static func forEachStructure(archive: URL, _ body: (String, MemoryFiles, DFTFormat) throws -> Void) throws {
        var pending: [String: [String: [UInt8]]] = [:]
        var pendingOrder: [String] = []
        var done: [String: Set<String>] = [:]
        var count = 0
        var folders = FolderNames(archive: archive.path)

        func finish(_ folder: String) throws {
            guard let members = pending.removeValue(forKey: folder) else { return }
            pendingOrder.removeAll { $0 == folder }
            done[folder] = Set(members.keys)
            let location = folder.isEmpty ? archive.path : "\(archive.path):\(folder)"
            guard let format = StructureLayout.format(ofFileNames: members.keys) else { return }
            try folders.admit(folder)
            let name = try structureName(folder: folder, archive: archive)
            count += 1
            try body(name, MemoryFiles(location: location, members: members), format)
        }

        try forEachMember(of: archive) { m in
            try checkNotLink(m, archive: archive.path)
            guard m.isRegularFile, let (folder, file) = split(m.path) else { return }
            if done[folder]?.contains(file) == true {
                throw FormatError(file: archive.path, field: "member \(MemberPath.quoted(m.path))", message: "refused: duplicate member (after normalising the name)")
            }
            if done[folder] != nil {
                // A stray .out/.inp (a job log, say) after a DeepH folder was read is no CP2K file.
                if !CP2K.isRunDirectory(names: done[folder]!), file.hasSuffix(".out") || file.hasSuffix(".inp") { return }
                throw FormatError(file: archive.path, field: m.path, message: "member of structure '\(folder)', which was already read: the archive must keep each structure's files together")
            }
            // The archive moved on: earlier folders that can be read are read now, freeing memory.
            for other in pendingOrder where other != folder && isReadable(Set(pending[other]!.keys)) {
                try finish(other)
            }
            if pending[folder] == nil { pendingOrder.append(folder); pending[folder] = [:] }
            guard pending[folder]![file] == nil else {
                throw FormatError(file: archive.path, field: "member \(MemberPath.quoted(m.path))", message: "refused: duplicate member (after normalising the name)")
            }
            pending[folder]![file] = try m.read()
            if StructureLayout.isComplete(Set(pending[folder]!.keys)) { try finish(folder) }
        }
        for folder in pendingOrder { try finish(folder) }
        guard count > 0 else {
            throw FormatError(file: archive.path, message: "no DeepH-dock, DeepH legacy, ABACUS or CP2K structure found in the archive")
        }
    }

    /// Whether a folder has the files without which its layout cannot be read at all; the
    /// Hamiltonian and overlap files are optional.
    static func isReadable(_ names: Set<String>) -> Bool {
        switch StructureLayout.format(ofFileNames: names) {
        case .deephDock: return names.isSuperset(of: ["POSCAR", "info.json"])
        case .deephLegacy: return names.isSuperset(of: ["lat.dat", "element.dat", "site_positions.dat", "orbital_types.dat", "info.json"])
        case .cp2k: return CP2K.isRunDirectory(names: names)
        case .abacus: return names.contains(ABACUS.struFile) && names.contains { $0.hasPrefix("OUT.") && $0.hasSuffix("/" + ABACUS.logFile) }
        case nil: return false
        }
    }
}
