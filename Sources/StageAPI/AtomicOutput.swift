// Atomic artifact writing: every output file or folder is produced under a temporary name beside
// its destination and renamed into place only when complete, so a failure or a kill never leaves
// a half-written artifact where a reader (or the pipeline runner) would take it for a good one.
import Foundation

/// A destination AtomicOutput will not write: names the path and the reason.
public struct AtomicOutputError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
    public var errorDescription: String? { description }
}

public enum AtomicOutput {
    /// What is at `url` without following a final symbolic link: nil when nothing.
    static func kind(of url: URL) -> FileAttributeType? {
        (try? FileManager.default.attributesOfItem(atPath: url.path))?[.type] as? FileAttributeType
    }

    /// Writes a file atomically: `body` receives a temporary path in the same directory. An
    /// existing folder (or anything but a regular file) at `destination` is refused, not replaced.
    public static func writeFile(at destination: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let dir = destination.deletingLastPathComponent()
        if let kind = kind(of: destination), kind != .typeRegular {
            throw AtomicOutputError(path: destination.path, message: "exists and is not a regular file (\(describe(kind))): refusing to replace it")
        }
        let created = try createParents(dir)
        let tmp = dir.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))")
        do {
            try body(tmp)
            if fm.fileExists(atPath: destination.path) { try fm.removeItem(at: destination) }
            try fm.moveItem(at: tmp, to: destination)
        } catch {
            try? fm.removeItem(at: tmp)
            removeIfEmpty(created)
            throw error
        }
    }

    /// Creates `dir` and its missing ancestors; returns the folders it created, deepest first,
    /// so that a failed write can take them away again (no empty output folders left behind).
    static func createParents(_ dir: URL) throws -> [URL] {
        var missing: [URL] = []
        var u = dir.standardizedFileURL
        while kind(of: u) == nil, u.path != "/" {
            missing.append(u)
            u = u.deletingLastPathComponent()
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return missing
    }

    /// Removes the given folders (deepest first) while they are empty.
    static func removeIfEmpty(_ folders: [URL]) {
        for f in folders {
            guard (try? FileManager.default.contentsOfDirectory(atPath: f.path))?.isEmpty == true else { return }
            try? FileManager.default.removeItem(at: f)
        }
    }

    /// Writes data to a file atomically.
    public static func write(_ data: Data, to destination: URL) throws {
        try writeFile(at: destination) { try data.write(to: $0) }
    }

    /// Builds a directory atomically: `body` fills a temporary directory, which then replaces
    /// `destination` (an existing folder is replaced whole when `replacing` is true, refused
    /// otherwise; an existing file, link or anything else is always refused).
    public static func writeDirectory(at destination: URL, replacing: Bool = true, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = destination.deletingLastPathComponent()
        if let kind = kind(of: destination) {
            guard kind == .typeDirectory else {
                throw AtomicOutputError(path: destination.path, message: "exists and is not a folder (\(describe(kind))): refusing to replace it")
            }
            guard replacing else {
                throw AtomicOutputError(path: destination.path, message: "already exists: refusing to replace it (two outputs with the same name?)")
            }
        }
        let created = try createParents(parent)
        let tmp = parent.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))")
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            try body(tmp)
            if kind(of: destination) != nil {
                guard replacing else {
                    throw AtomicOutputError(path: destination.path, message: "appeared while it was being written: refusing to replace it")
                }
                let old = parent.appendingPathComponent(".\(destination.lastPathComponent).old-\(UInt32.random(in: 0 ... .max))")
                try fm.moveItem(at: destination, to: old)
                try fm.moveItem(at: tmp, to: destination)
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: tmp, to: destination)
            }
        } catch {
            try? fm.removeItem(at: tmp)
            removeIfEmpty(created)
            throw error
        }
    }

    static func describe(_ kind: FileAttributeType) -> String {
        switch kind {
        case .typeRegular: return "a regular file"
        case .typeDirectory: return "a folder"
        case .typeSymbolicLink: return "a symbolic link"
        default: return "a special file"
        }
    }
}
