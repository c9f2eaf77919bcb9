// Where a dataset comes from: one structure folder, a folder holding structure folders (found at
// any depth, read in name order), or an archive of either, streamed. Record names are the folder
// name (single structure) or the path relative to the dataset root / inside the archive, so
// output folders can mirror them.
import Foundation
import Structures

public struct DatasetSource {
    public enum Kind: Equatable, Sendable {
        case structureFolder
        case folderOfStructures
        case archive
    }

    public let url: URL
    public let kind: Kind

    public init(url: URL) throws {
        self.url = url
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw FormatError(file: url.path, message: "no such file or folder")
        }
        if isDir.boolValue {
            if StructureLayout.format(ofFileNames: try FormatReader.directoryFileNames(url)) != nil {
                kind = .structureFolder
            } else {
                guard try !DatasetSource.findStructureFolders(in: url).isEmpty else {
                    throw FormatError(file: url.path, message: "no structure folders found (expected DeepH-dock folders with POSCAR and info.json, DeepH legacy folders with element.dat, lat.dat, …, ABACUS runs with STRU and OUT.*/running_scf.log, or CP2K outputs with <project>.out and <project>-KS_SPIN_1*.csr)")
                }
                kind = .folderOfStructures
            }
        } else {
            kind = .archive
        }
    }

    /// Names of the structures, in the order `forEachRecord` delivers them. For an archive this
    /// reads the member headers (one pass, no decompression of data kept).
    public func structureNames() throws -> [String] {
        switch kind {
        case .structureFolder: return [url.standardizedFileURL.lastPathComponent]
        case .folderOfStructures: return try DatasetSource.findStructureFolders(in: url)
        case .archive: return try ArchiveReader.structureNames(archive: url)
        }
    }

    /// Reads every structure in turn; stops at the first error (which names the file and field).
    public func forEachRecord(_ body: (DFTRecord) throws -> Void) throws {
        switch kind {
        case .structureFolder:
            try body(try FormatReader.readRecord(at: url))
        case .folderOfStructures:
            for name in try DatasetSource.findStructureFolders(in: url) {
                var record = try FormatReader.readRecord(at: url.appendingPathComponent(name))
                record.name = name
                try body(record)
            }
        case .archive:
            try ArchiveReader.forEachStructure(archive: url) { name, files, format in
                try body(try FormatReader.read(files, format: format, name: name))
            }
        }
    }

    /// An output folder (convert's DST, predict's --out) may be replaced only when it is what
    /// such a command writes: nothing, an empty folder, or a folder of structure folders (an
    /// earlier run). Anything else — a regular file, a link, a folder with other files — is
    /// refused, so a mistyped destination never deletes user data.
    public static func checkReplaceableOutput(_ dst: URL, field: String = "destination", allowing extra: Set<String> = []) throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: dst.path) else { return }
        let type = attributes[.type] as? FileAttributeType
        guard type == .typeDirectory else {
            let what = type == .typeRegular ? "a regular file" : type == .typeSymbolicLink ? "a symbolic link" : "not a folder"
            throw FormatError(file: dst.path, field: field, message: "exists and is \(what): refusing to replace it (choose a new output folder)")
        }
        guard holdsOnlyStructureFiles(dst, allowing: extra) else {
            throw FormatError(file: dst.path, field: field, message: "exists and holds files that are not structure folders: refusing to replace it (remove it, or choose a new output folder)")
        }
    }

    /// Whether every file under `root` (hidden ones aside) is a structure file (or one of
    /// `extra`). False past `limit` entries or on any link.
    public static func holdsOnlyStructureFiles(_ root: URL, allowing extra: Set<String> = [], limit: Int = 100_000) -> Bool {
        let allowed = StructureLayout.knownFiles.union(["K_PATH"]).union(ABACUS.knownRunFiles).union(ABACUS.knownOutFiles).union(extra)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey, .isSymbolicLinkKey],
                                                          options: [.skipsHiddenFiles]) else { return false }
        var seen = 0
        for case let url as URL in walker {
            seen += 1
            if seen > limit { return false }
            let values = try? url.resourceValues(forKeys: [.isDirectoryKey, .isSymbolicLinkKey])
            if values?.isSymbolicLink == true { return false }
            if values?.isDirectory == true { continue }
            if !allowed.contains(url.lastPathComponent) { return false }
        }
        return true
    }

    /// Relative paths of the structure folders under `root`, sorted; hidden folders (including
    /// our own temporary outputs) are skipped and structure folders are not searched further.
    static func findStructureFolders(in root: URL) throws -> [String] {
        try findFolders(under: root) { relative, names in !relative.isEmpty && StructureLayout.format(ofFileNames: names) != nil }
    }

    /// The one dataset walk (structure folders here, prediction folders in Evaluation): relative
    /// paths of the folders under `root` (itself included, as "") for which `matches(relative
    /// path, file names)` holds, sorted; matching folders are not searched further and hidden
    /// folders (including our own temporary outputs) are skipped. Errors name the folder.
    public static func findFolders(under root: URL, matching matches: (String, [String]) -> Bool) throws -> [String] {
        var found: [String] = []
        // Symbolic links are followed, but each real folder is visited once (a link back to an
        // ancestor would otherwise recurse forever) and no deeper than MemberPath.maxDepth.
        var visited = Set<String>()
        func visit(_ dir: URL, _ relative: String) throws {
            guard visited.insert(dir.resolvingSymlinksInPath().path).inserted else { return }
            if relative.split(separator: "/").count > MemberPath.maxDepth {
                throw FormatError(file: dir.path, message: "folders nested deeper than \(MemberPath.maxDepth) levels (a link loop?)")
            }
            let names = try FormatReader.directoryFileNames(dir)
            if matches(relative, names) {
                found.append(relative)
                return
            }
            for name in names.sorted() where !name.hasPrefix(".") {
                let child = dir.appendingPathComponent(name)
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: child.path, isDirectory: &isDir), isDir.boolValue {
                    try visit(child, relative.isEmpty ? name : "\(relative)/\(name)")
                }
            }
        }
        try visit(root, "")
        return found.sorted()
    }
}
