// Loading what a band calculation needs from disk: a structure folder (DeepH-dock or legacy), its
// electron count, and optionally a Hamiltonian from elsewhere (e.g. a model's prediction) that
// replaces the DFT one while the structure, basis and overlap stay the structure folder's.
import Foundation
import Formats
import Structures

public struct BandInput {
    public var record: DFTRecord
    public var system: BlochSystem
    /// info.json `occupation` (electrons per cell), when present.
    public var electronCount: Double?
    /// K_PATH inside the structure folder, when present.
    public var folderKPath: URL?

    /// `hamiltonian` may be an operator file in the structure folder's layout (hamiltonian.h5
    /// for DeepH-dock, hamiltonians.h5 for legacy) or another structure folder whose Hamiltonian
    /// is taken. Its blocks must fit the structure's atoms and orbitals.
    public static func load(structure: URL, hamiltonian: URL? = nil) throws -> BandInput {
        var record = try FormatReader.readRecord(at: structure)
        var source = "\(structure.path)/hamiltonian"
        if let hamiltonian {
            let replaced = try loadHamiltonian(hamiltonian, for: structure, record: record)
            record.hamiltonian = replaced
            source = hamiltonian.path
        }
        let system = try BlochSystem(record: record, hamiltonianSource: source)
        let kpath = structure.appendingPathComponent("K_PATH")
        // The reader carries info.json `occupation` in the record (checked there), so a folder
        // written by convert or ingest keeps its electron count.
        return BandInput(record: record, system: system, electronCount: record.electronCount,
                         folderKPath: FileManager.default.fileExists(atPath: kpath.path) ? kpath : nil)
    }

    private static func loadHamiltonian(_ url: URL, for structure: URL, record: DFTRecord) throws -> BlockOperator {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw FormatError(file: url.path, message: "no such Hamiltonian file or structure folder")
        }
        if isDir.boolValue {
            let other = try FormatReader.readRecord(at: url)
            guard other.structure.atomicNumbers == record.structure.atomicNumbers else {
                throw FormatError(file: url.path, field: "atoms",
                                  message: "its atoms \(other.structure.atomicNumbers) differ from the structure's \(record.structure.atomicNumbers)")
            }
            guard let h = other.hamiltonian else { throw FormatError(file: url.path, message: "no Hamiltonian in this folder") }
            return h
        }
        // A bare operator file: read it with the structure folder's own reader by presenting a
        // folder of links to the structure's files with the Hamiltonian swapped — the reader then
        // checks every block against the structure exactly as it does for DFT data.
        let format = try FormatReader.detect(at: structure)
        let name = format == .deephDock ? DeepHDock.hamiltonianFile : DeepHLegacy.hamiltonianFile
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("harmose-bands-\(UUID().uuidString)")
        let staged = scratch.appendingPathComponent(structure.lastPathComponent)
        try fm.createDirectory(at: staged, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        for entry in try fm.contentsOfDirectory(atPath: structure.path) where entry != name {
            try fm.createSymbolicLink(at: staged.appendingPathComponent(entry),
                                      withDestinationURL: structure.appendingPathComponent(entry).absoluteURL)
        }
        try fm.createSymbolicLink(at: staged.appendingPathComponent(name), withDestinationURL: url.absoluteURL)
        do {
            guard let h = try FormatReader.readRecord(at: staged).hamiltonian else {
                throw FormatError(file: url.path, message: "no Hamiltonian blocks read")
            }
            return h
        } catch var e as FormatError {
            // Name the user's files, not the staging folder.
            if e.file.hasPrefix(staged.path) {
                let rest = String(e.file.dropFirst(staged.path.count + 1))
                e.file = rest == name ? url.path : structure.appendingPathComponent(rest).path
            }
            e.message = e.message.replacingOccurrences(of: staged.path, with: structure.path)
            throw e
        }
    }
}
