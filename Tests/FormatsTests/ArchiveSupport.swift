// Writes test archives with libarchive itself, so archive tests need no external tools.
import CArchive
import Foundation
import XCTest

enum TestArchive {
    enum Kind { case tar, tarGz, tarXz, zip }

    /// Archives every regular file under each of `folders` (paths relative to `root`).
    static func write(_ url: URL, kind: Kind, root: URL, folders: [String]) throws {
        var files: [(String, URL)] = []
        for folder in folders {
            let base = root.appendingPathComponent(folder)
            let names = try FileManager.default.subpathsOfDirectory(atPath: base.path).sorted()
            for name in names {
                var isDir: ObjCBool = false
                let u = base.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: u.path, isDirectory: &isDir), !isDir.boolValue {
                    files.append(("\(folder)/\(name)", u))
                }
            }
        }
        try write(url, kind: kind, members: files.map { ($0.0, [UInt8](try Data(contentsOf: $0.1))) })
    }

    static func write(_ url: URL, kind: Kind, members: [(String, [UInt8])]) throws {
        let a = archive_write_new()!
        defer { archive_write_free(a) }
        switch kind {
        case .tar: archive_write_set_format_pax_restricted(a)
        case .tarGz: archive_write_set_format_pax_restricted(a); archive_write_add_filter_gzip(a)
        case .tarXz: archive_write_set_format_pax_restricted(a); archive_write_add_filter_xz(a)
        case .zip: archive_write_set_format_zip(a)
        }
        guard archive_write_open_filename(a, url.path) == ARCHIVE_OK else {
            throw NSError(domain: "TestArchive", code: 1, userInfo: [NSLocalizedDescriptionKey: String(cString: archive_error_string(a))])
        }
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
    }
}
