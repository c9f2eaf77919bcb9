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
        removeAbandonedTemporaries(besides: destination)
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
        // The first existing ancestor must be a folder (or a link to one): say so plainly instead
        // of Foundation's "already exists".
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: u.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw AtomicOutputError(path: u.path, message: "is a file, not a folder (it is part of the output path \(dir.path))")
        }
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw AtomicOutputError(path: dir.path, message: "cannot create the output folder: \(ErrorText.reason(of: error))")
        }
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
        removeAbandonedTemporaries(besides: destination)
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

    /// Writes several files into `directory` as one unit: `body` fills a staging folder beside
    /// them (hidden, `.<first name>.tmp-<pid>-<random>`) with every file in `names`; only when it
    /// returns are they moved into place, one rename each. A failure leaves the old files (or none)
    /// and removes the staging folder; a kill leaves it for `harmose gc` / the next run.
    public static func writeFiles(in directory: URL, names: [String], _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        for name in names {
            let target = directory.appendingPathComponent(name)
            if let kind = kind(of: target), kind != .typeRegular {
                throw AtomicOutputError(path: target.path, message: "exists and is not a regular file (\(describe(kind))): refusing to replace it")
            }
        }
        if let kind = kind(of: directory), kind != .typeDirectory {
            throw AtomicOutputError(path: directory.path, message: "exists and is not a folder (\(describe(kind)))")
        }
        let created = try createParents(directory)
        if let first = names.first { removeAbandonedTemporaries(besides: directory.appendingPathComponent(first)) }
        let stage = directory.appendingPathComponent(".\(names.first ?? "out").tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))")
        do {
            try fm.createDirectory(at: stage, withIntermediateDirectories: false)
            try body(stage)
            for name in names where kind(of: stage.appendingPathComponent(name)) != .typeRegular {
                throw AtomicOutputError(path: stage.appendingPathComponent(name).path, message: "was not written")
            }
            for name in names {
                let target = directory.appendingPathComponent(name)
                if kind(of: target) != nil { try fm.removeItem(at: target) }
                try fm.moveItem(at: stage.appendingPathComponent(name), to: target)
            }
            try fm.removeItem(at: stage)
        } catch {
            try? fm.removeItem(at: stage)
            removeIfEmpty(created)
            throw error
        }
    }

    /// Whether `name` is a temporary of an atomic write — AtomicOutput's `.X.tmp-<pid>-<random>`
    /// and `.X.old-<random>`, the pipeline's `.tmp-<id>-<pid>-…`, checkpoints' `.X.tmp-<pid>-…` —
    /// and the process id that made it when the name records one.
    public static func temporaryOwner(_ name: String) -> (isTemporary: Bool, pid: Int32?) {
        guard name.hasPrefix(".") else { return (false, nil) }
        if let r = name.range(of: ".tmp-", options: .backwards) {
            let fields = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
            guard let first = fields.first, !first.isEmpty, first.allSatisfy(\.isNumber) else { return (false, nil) }
            return (true, Int32(first))
        }
        if let r = name.range(of: ".old-", options: .backwards), name[r.upperBound...].first?.isNumber == true { return (true, nil) }
        return (false, nil)
    }

    /// AtomicOutput temporaries directly inside `directory` whose process is gone (killed runs):
    /// safe to remove. A temporary of a live process is kept.
    public static func abandonedTemporaries(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().compactMap { name in
            let (isTemporary, pid) = temporaryOwner(name)
            guard isTemporary else { return nil }
            if let pid, pid > 0, kill(pid, 0) == 0 || errno == EPERM { return nil }
            return directory.appendingPathComponent(name)
        }
    }

    /// Abandoned temporaries anywhere under `root`, at most `depth` folders down (temporaries
    /// themselves are not searched); links are not followed.
    public static func abandonedTemporaries(under root: URL, depth: Int) -> [URL] {
        var out = abandonedTemporaries(in: root)
        guard depth > 0 else { return out }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
        for name in names where !temporaryOwner(name).isTemporary {
            let child = root.appendingPathComponent(name)
            if kind(of: child) == .typeDirectory { out += abandonedTemporaries(under: child, depth: depth - 1) }
        }
        return out
    }

    /// Removes abandoned temporaries beside `destination` (what a killed earlier run of the same
    /// command left); returns what it removed.
    @discardableResult
    public static func removeAbandonedTemporaries(besides destination: URL) -> [URL] {
        let dir = destination.deletingLastPathComponent()
        let prefix = ".\(destination.lastPathComponent)."
        let stale = abandonedTemporaries(in: dir).filter { $0.lastPathComponent.hasPrefix(prefix) }
        for url in stale { try? FileManager.default.removeItem(at: url) }
        return stale
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
