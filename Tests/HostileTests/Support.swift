// Support for the hostile-input suite: archives with arbitrary member names (hand-written ustar
// headers for raw bytes, libarchive for pax/zip), a snapshot of every path under a sandbox so a
// test can prove nothing was written outside the destination, and a runner for the built
// `harmose` binary (exit status, stdout, stderr).
import CArchive
import Foundation
import TestSupport
import XCTest

enum HostileArchive {
    enum Kind: String, CaseIterable { case tar, tgz, zip
        var ext: String { switch self { case .tar: ".tar"; case .tgz: ".tar.gz"; case .zip: ".zip" } }
    }

    /// Writes members with libarchive (pax tar, gzip'd pax tar, or zip) under the names given.
    static func write(_ url: URL, kind: Kind, members: [(String, [UInt8])], symlinks: [(String, String)] = []) throws {
        let a = archive_write_new()!
        defer { archive_write_free(a) }
        switch kind {
        case .tar: archive_write_set_format_pax_restricted(a)
        case .tgz: archive_write_set_format_pax_restricted(a); archive_write_add_filter_gzip(a)
        case .zip: archive_write_set_format_zip(a)
        }
        guard archive_write_open_filename(a, url.path) == ARCHIVE_OK else {
            throw HostileTestError(description: "cannot write \(url.path): \(String(cString: archive_error_string(a)))")
        }
        for (path, bytes) in members {
            let e = archive_entry_new()!
            archive_entry_set_pathname(e, path)
            archive_entry_set_size(e, la_int64_t(bytes.count))
            archive_entry_set_filetype(e, 0o100000)
            archive_entry_set_perm(e, 0o644)
            guard archive_write_header(a, e) == ARCHIVE_OK else {
                throw HostileTestError(description: "cannot write header \(path): \(String(cString: archive_error_string(a)))")
            }
            _ = bytes.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) }
            archive_entry_free(e)
        }
        for (path, target) in symlinks {
            let e = archive_entry_new()!
            archive_entry_set_pathname(e, path)
            archive_entry_set_filetype(e, 0o120000)
            archive_entry_set_symlink(e, target)
            archive_entry_set_perm(e, 0o777)
            archive_write_header(a, e)
            archive_entry_free(e)
        }
        archive_write_close(a)
    }

    /// A plain ustar archive written byte by byte: names are raw bytes (NUL, invalid UTF-8,
    /// anything up to 100 bytes) exactly as a hostile tool would write them.
    static func writeRawTar(_ url: URL, members: [([UInt8], [UInt8])]) throws {
        var out: [UInt8] = []
        for (name, bytes) in members {
            precondition(name.count <= 100)
            var h = [UInt8](repeating: 0, count: 512)
            func put(_ offset: Int, _ field: [UInt8]) { for (k, b) in field.enumerated() { h[offset + k] = b } }
            func octal(_ value: Int, _ width: Int) -> [UInt8] { Array(String(format: "%0\(width - 1)o", value).utf8) + [0] }
            put(0, name)
            put(100, octal(0o644, 8)); put(108, octal(0, 8)); put(116, octal(0, 8))
            put(124, octal(bytes.count, 12)); put(136, octal(0, 12))
            h[156] = UInt8(ascii: "0")
            put(257, Array("ustar\0".utf8)); put(263, Array("00".utf8))
            put(148, Array(repeating: UInt8(ascii: " "), count: 8))
            let sum = h.reduce(0) { $0 + Int($1) }
            put(148, Array(String(format: "%06o", sum).utf8) + [0, UInt8(ascii: " ")])
            out += h + bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
        }
        out += [UInt8](repeating: 0, count: 1024)
        try Data(out).write(to: url)
    }

    /// The files of a small valid DeepH-dock structure (water, 3 atoms), by file name.
    static func waterFiles() throws -> [(String, [UInt8])] {
        let dir = Fixtures.url("training/water-0000")
        return try ["POSCAR", "info.json", "hamiltonian.h5", "overlap.h5"].map { ($0, [UInt8](try Data(contentsOf: dir.appendingPathComponent($0)))) }
    }

    /// One structure's members under folder `folder` ("" for the top level).
    static func structure(at folder: String) throws -> [(String, [UInt8])] {
        try waterFiles().map { (folder.isEmpty ? $0.0 : "\(folder)/\($0.0)", $0.1) }
    }
}

/// Every path under a root (hidden ones included) with its size and modification date: two
/// snapshots differ exactly where something was created, removed or rewritten.
struct TreeSnapshot: Equatable {
    var entries: [String: String]

    init(_ root: URL) {
        entries = [:]
        let fm = FileManager.default
        for rel in (try? fm.subpathsOfDirectory(atPath: root.path)) ?? [] {
            let attrs = (try? fm.attributesOfItem(atPath: root.appendingPathComponent(rel).path)) ?? [:]
            let size = (attrs[.size] as? NSNumber)?.intValue ?? -1
            let date = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            entries[rel] = "\(attrs[.type] as? FileAttributeType ?? .typeUnknown) \(size) \(date)"
        }
    }

    /// Paths added, removed or changed relative to `before`, outside the paths under `allowed`.
    func changes(since before: TreeSnapshot, allowing allowed: [String] = []) -> [String] {
        let keys = Set(entries.keys).union(before.entries.keys)
        return keys.filter { k in
            entries[k] != before.entries[k] && !allowed.contains { k == $0 || k.hasPrefix($0 + "/") }
        }.sorted()
    }
}

struct ProcessOutcome {
    var status: Int32
    var stdout: String
    var stderr: String
    var signalled: Bool
}

enum Harmose {
    /// The `harmose` executable built with the test bundle.
    static func binary() throws -> URL { try builtHarmoseExecutable() }

    /// Runs `harmose args` in `dir`, killing it after `timeout` seconds (a hang is a failure).
    static func run(_ args: [String], in dir: URL, timeout: TimeInterval = 60, environment: [String: String] = [:]) throws -> ProcessOutcome {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = args
        p.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let outURL = dir.appendingPathComponent(".stdout-\(UUID().uuidString)")
        let errURL = dir.appendingPathComponent(".stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(2000) }
        if p.isRunning { p.terminate(); usleep(100_000); if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        p.waitUntilExit()
        try out.close(); try err.close()
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        return ProcessOutcome(status: p.terminationStatus,
                              stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                              stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
                              signalled: p.terminationReason == .uncaughtSignal)
    }
}

struct HostileTestError: Error, CustomStringConvertible { var description: String }
