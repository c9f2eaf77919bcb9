// Formats: reading and writing DFT data files (DeepH legacy, DeepH-dock, and .tar/.tar.gz/.tar.xz/
// .zip archives of either) into the internal representation of Structures, converting orbital
// order and atom indexing at the edge. Owns: the entry points `FormatReader`, `FormatWriter`,
// `DatasetSource`; the one OpenMX ↔ internal orbital table (`OrbitalOrder`); the typed
// `FormatError`; record validation (`RecordValidation`) and the summary `harmose inspect` prints
// (`RecordSummary`). Documentation for users: docs/formats.md.
//
// Conventions at the edges (the internal one is in Structures.swift):
// - DeepH-dock: atoms 0-based, grouped by element in POSCAR order; orbitals m = −l…l (= internal).
//   Reading keeps the file's atom order; writing groups atoms by element (first appearance,
//   stable within an element) and renumbers blocks accordingly (see `DeepHDock.atomOrder`).
// - DeepH legacy: atoms 1-based in any order (kept as is on reading and writing); orbitals in
//   OpenMX order, permuted through `OrbitalOrder` on the way in and out.
// - Periodicity is not stored by either layout. A direction is periodic when some block of H or S
//   has a nonzero lattice shift along it (molecules have only R = 0 blocks: non-periodic; a slab
//   has R₃ = 0 everywhere: periodic in-plane only). With no blocks at all, all three are periodic.
import Foundation
import StageAPI
import HDF5Kit
import Structures

/// The on-disk layouts HarmoSE reads and writes.
public enum DFTFormat: String, CaseIterable, Sendable {
    case deephDock = "deeph-dock"
    case deephLegacy = "deeph-legacy"
    /// ABACUS LCAO run directories in (STRU, OUT.*/running_scf.log and H(R)/S(R) CSR text, both
    /// namings); ABACUS ≤ 3.9.0 CSR text out (ABACUS.swift, ABACUSWriter.swift).
    case abacus = "abacus-csr"
    /// CP2K output folders in (the .out file and KS/S real-space CSR text; CP2K.swift). Read only.
    case cp2k = "cp2k"
}

/// An error in input data, naming the file and the field (HDF5 key, JSON key, line) at fault.
public struct FormatError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var file: String
    public var field: String?
    public var message: String

    public init(file: String, field: String? = nil, message: String) {
        self.file = file; self.field = field; self.message = message
    }

    init(_ error: HDF5Error) {
        self.init(file: error.file, field: error.object, message: error.message)
    }

    public var description: String {
        if let field, !field.isEmpty { return "\(file): \(field): \(message)" }
        return "\(file): \(message)"
    }
    public var errorDescription: String? { description }
}

/// Runs `body`, turning HDF5Kit errors into `FormatError`s (same file and object).
@inline(__always) func mappingHDF5Errors<R>(_ body: () throws -> R) throws -> R {
    do { return try body() } catch let e as HDF5Error { throw FormatError(e) }
}

public enum FormatReader {
    /// The layout of a structure folder (or, for a folder of structures or an archive, of the first
    /// structure found in it).
    public static func detect(at url: URL) throws -> DFTFormat {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw FormatError(file: url.path, message: "no such file or folder")
        }
        if isDir.boolValue {
            if ABACUS.isRunDirectory(url) { return .abacus }
            if CP2K.isRunDirectory(names: try directoryFileNames(url)) { return .cp2k }
            if let format = StructureLayout.format(ofFileNames: try directoryFileNames(url)) { return format }
            guard let first = try DatasetSource.findStructureFolders(in: url).first else {
                throw FormatError(file: url.path, message: "no DeepH-dock (POSCAR, info.json), DeepH legacy (element.dat, lat.dat, …), ABACUS (STRU, OUT.*/running_scf.log) or CP2K (<project>.out, *-KS_SPIN_1*.csr) structure found")
            }
            return try detect(at: url.appendingPathComponent(first))
        }
        return try ArchiveReader.detectFormat(archive: url)
    }

    /// Reads one structure folder in either layout (detected from its files).
    public static func readRecord(at url: URL) throws -> DFTRecord {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw FormatError(file: url.path, message: "no such structure folder")
        }
        guard isDir.boolValue else {
            throw FormatError(file: url.path, message: "not a structure folder (archives are read with DatasetSource)")
        }
        if ABACUS.isRunDirectory(url) { return try ABACUS.readRun(at: url) }
        if CP2K.isRunDirectory(names: try directoryFileNames(url)) { return try CP2K.readRun(at: url) }
        let files = DirectoryFiles(url: url)
        guard let format = StructureLayout.format(ofFileNames: try directoryFileNames(url)) else {
            throw FormatError(file: url.path, message: "not a structure folder: expected POSCAR and info.json (DeepH-dock) or element.dat, lat.dat, site_positions.dat, orbital_types.dat, info.json (DeepH legacy)")
        }
        return try read(files, format: format, name: url.standardizedFileURL.lastPathComponent)
    }

    static func read(_ files: StructureFiles, format: DFTFormat, name: String) throws -> DFTRecord {
        switch format {
        case .deephDock: return try DeepHDock.read(files, name: name)
        case .deephLegacy: return try DeepHLegacy.read(files, name: name)
        case .abacus:
            let paths = (files as? MemoryFiles).map { Array($0.members.keys) } ?? []
            guard let out = try ABACUS.outFolder(amongPaths: paths, location: files.displayPath("")) else {
                throw FormatError(file: files.displayPath("OUT.*/running_scf.log"), message: "missing file (an ABACUS run directory needs its OUT.* folder)")
            }
            return try ABACUS.read(files, out: out, name: name)
        case .cp2k:
            return try CP2K.read(files, names: (files as? MemoryFiles).map { Array($0.members.keys) } ?? [], name: name)
        }
    }

    static func directoryFileNames(_ url: URL) throws -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw FormatError(file: url.path, message: "cannot list folder: \(ErrorText.reason(of: error))")
        }
    }
}

public enum FormatWriter {
    /// Writes `record` as one structure folder at `url`, atomically: the folder is built under a
    /// temporary name and renamed into place only when complete. An existing folder at `url` is
    /// replaced whole when `replacing` is true and refused otherwise (writers that place many
    /// structures in one fresh folder pass false, so two records can never overwrite each other).
    /// Entries are written as Float64.
    public static func write(_ record: DFTRecord, to url: URL, format: DFTFormat, replacing: Bool = true) throws {
        if format == .cp2k {
            throw FormatError(file: url.path, message: "cp2k is an input format only; write deeph-dock, deeph-legacy or abacus-csr")
        }
        if format == .abacus {
            try ABACUSWriter.check(record, destination: url.path)
            try AtomicOutput.writeDirectory(at: url, replacing: replacing) { try ABACUSWriter.write(record, to: $0) }
            return
        }
        if record.spinful {
            throw FormatError(file: url.path, field: "spinful", message: "spinful (nspin = 2) records cannot be written as \(format.rawValue) yet; write them as abacus-csr")
        }
        try RecordValidation.checkWritable(record, destination: url.path)
        try AtomicOutput.writeDirectory(at: url, replacing: replacing) { dir in
            try mappingHDF5Errors {
                switch format {
                case .deephDock: try DeepHDock.write(record, to: dir)
                case .deephLegacy: try DeepHLegacy.write(record, to: dir)
                case .abacus: try ABACUSWriter.write(record, to: dir)
                case .cp2k: break   // refused above
                }
            }
        }
    }
}

/// Which files make a structure folder of each layout.
enum StructureLayout {
    static let dockFiles = ["POSCAR", "info.json", "hamiltonian.h5", "overlap.h5"]
    static let legacyFiles = ["lat.dat", "rlat.dat", "site_positions.dat", "element.dat", "orbital_types.dat",
                              "info.json", "hamiltonians.h5", "overlaps.h5"]
    static let knownFiles = Set(dockFiles + legacyFiles)

    static func format(ofFileNames names: some Sequence<String>) -> DFTFormat? {
        let set = Set(names)
        if set.contains(ABACUS.struFile) || set.contains(ABACUS.logFile)
            || set.contains(where: { $0.hasPrefix("OUT.") && $0.hasSuffix("/" + ABACUS.logFile) }) {
            return .abacus
        }
        if CP2K.isRunDirectory(names: set) { return .cp2k }
        if set.contains("element.dat") || set.contains("site_positions.dat") || set.contains("orbital_types.dat") {
            return .deephLegacy
        }
        if set.contains("POSCAR") || set.contains("hamiltonian.h5") || set.contains("overlap.h5") { return .deephDock }
        return nil
    }

    /// Whether a group of member files holds everything a reader of `format` may look at, so it
    /// can be parsed before the rest of an archive has been read.
    static func isComplete(_ names: Set<String>) -> Bool {
        guard let format = format(ofFileNames: names) else { return false }
        switch format {
        case .deephDock: return Set(dockFiles).isSubset(of: names)
        case .deephLegacy: return Set(legacyFiles).isSubset(of: names)
        // How many H files an ABACUS run has depends on its log: read when the archive moves on.
        case .abacus, .cp2k: return false
        }
    }
}
