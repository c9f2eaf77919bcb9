// Harnesses for archives: member names on their own (the confinement rules) and whole archives
// (tar, gzip/xz tar, zip headers and data, streamed through libarchive into records).
import CArchive
@testable import Formats
import Foundation

enum SeedArchive {
    /// An archive of the given members, written by libarchive (format: "tar", "tgz" or "zip").
    static func make(_ format: String, _ members: [(String, [UInt8])]) throws -> [UInt8] {
        let url = Scratch.folder.appendingPathComponent("seed.\(format)")
        let a = archive_write_new()!
        defer { archive_write_free(a) }
        switch format {
        case "zip": archive_write_set_format_zip(a)
        case "tgz": archive_write_set_format_pax_restricted(a); archive_write_add_filter_gzip(a)
        default: archive_write_set_format_pax_restricted(a)
        }
        archive_write_open_filename(a, url.path)
        for (path, bytes) in members {
            let e = archive_entry_new()!
            archive_entry_set_pathname(e, path)
            archive_entry_set_size(e, la_int64_t(bytes.count))
            archive_entry_set_filetype(e, 0o100000)
            archive_entry_set_perm(e, 0o644)
            archive_write_header(a, e)
            _ = bytes.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) }
            archive_entry_free(e)
        }
        archive_write_close(a)
        return [UInt8](try Data(contentsOf: url))
    }

    static func water(at folder: String) throws -> [(String, [UInt8])] {
        try ["POSCAR", "info.json", "hamiltonian.h5", "overlap.h5"].map { ("\(folder)/\($0)", try Water.dock($0)) }
    }
}

extension Harnesses {
    static let memberName = Harness(
        name: "member-name", summary: "archive member names (newline-separated): normalisation, confinement, structure folders",
        seeds: { ["water/POSCAR\n./a//b/info.json\n../x/POSCAR", "/etc/passwd\nC:/x\\y\nW\nw", "a/b/c/POSCAR\na/POSCAR"].map { Array($0.utf8) } }
    ) { bytes in
        var folders = ArchiveReader.FolderNames(archive: "fuzz")
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            guard case .success(let name) = MemberPath.normalize(bytes: Array(line)) else { continue }
            _ = try? MemberPath.confined(name, in: URL(fileURLWithPath: "/nonexistent/dst"), source: "fuzz")
            if let (folder, _) = ArchiveReader.split(name) {
                try folders.admit(folder)
                _ = try ArchiveReader.structureName(folder: folder, archive: URL(fileURLWithPath: "/x/fuzz.tar"))
            }
        }
    }

    static let archive = Harness(
        name: "archive", summary: "whole archives (tar, tar.gz, zip; headers, names, data) read into records",
        seeds: {
            [try SeedArchive.make("tar", SeedArchive.water(at: "water")),
             try SeedArchive.make("tgz", SeedArchive.water(at: "a") + SeedArchive.water(at: "b/c")),
             try SeedArchive.make("zip", SeedArchive.water(at: "water")),
             try SeedArchive.make("tar", SeedArchive.water(at: "../evil"))]
        }
    ) { bytes in
        let source = try DatasetSource(url: Scratch.file("input.archive", bytes))
        _ = try source.structureNames()
        try source.forEachRecord { _ = RecordValidation.validate($0) }
    }
}
