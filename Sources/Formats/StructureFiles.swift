// The files of one structure, wherever they live: a folder on disk or archive members held in
// memory. Readers see only this, so the same parsing code serves folders and archives.
import Foundation
import HDF5Kit
import StageAPI
import Structures

protocol StructureFiles {
    /// How messages name the file `name` of this structure.
    func displayPath(_ name: String) -> String
    func contains(_ name: String) -> Bool
    func data(_ name: String) throws -> Data
    func hdf5(_ name: String) throws -> HDF5File
}

extension StructureFiles {
    func text(_ name: String) throws -> String {
        let bytes = try data(name)
        guard let s = String(data: bytes, encoding: .utf8) else {
            throw FormatError(file: displayPath(name), message: "not UTF-8 text")
        }
        return s
    }

    func require(_ name: String) throws {
        guard contains(name) else { throw FormatError(file: displayPath(name), message: "missing file") }
    }
}

struct DirectoryFiles: StructureFiles {
    var url: URL
    func displayPath(_ name: String) -> String { url.appendingPathComponent(name).path }
    func contains(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path)
    }
    func data(_ name: String) throws -> Data {
        try require(name)
        do { return try Data(contentsOf: url.appendingPathComponent(name)) } catch {
            throw FormatError(file: displayPath(name), message: "cannot read: \(ErrorText.reason(of: error))")
        }
    }
    func hdf5(_ name: String) throws -> HDF5File {
        try require(name)
        return try mappingHDF5Errors { try HDF5File(readingAt: displayPath(name)) }
    }
}

/// Members of one structure folder inside an archive, read into memory.
struct MemoryFiles: StructureFiles {
    /// "archive.tar.gz:folder" — the prefix of every message.
    var location: String
    var members: [String: [UInt8]]
    func displayPath(_ name: String) -> String { "\(location)/\(name)" }
    func contains(_ name: String) -> Bool { members[name] != nil }
    func data(_ name: String) throws -> Data {
        guard let bytes = members[name] else { throw FormatError(file: displayPath(name), message: "missing file") }
        return Data(bytes)
    }
    func hdf5(_ name: String) throws -> HDF5File {
        guard let bytes = members[name] else { throw FormatError(file: displayPath(name), message: "missing file") }
        return try mappingHDF5Errors { try HDF5File(image: bytes, name: displayPath(name)) }
    }
}
