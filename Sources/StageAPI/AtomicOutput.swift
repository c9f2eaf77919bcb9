// Atomic artifact writing: every output file or folder is produced under a temporary name beside
// its destination and renamed into place only when complete, so a failure or a kill never leaves
// a half-written artifact where a reader (or the pipeline runner) would take it for a good one.
import Foundation

public enum AtomicOutput {
    /// Writes a file atomically: `body` receives a temporary path in the same directory.
    public static func writeFile(at destination: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let dir = destination.deletingLastPathComponent()
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))")
        do {
            try body(tmp)
            if fm.fileExists(atPath: destination.path) { try fm.removeItem(at: destination) }
            try fm.moveItem(at: tmp, to: destination)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// Writes data to a file atomically.
    public static func write(_ data: Data, to destination: URL) throws {
        try writeFile(at: destination) { try data.write(to: $0) }
    }

    /// Builds a directory atomically: `body` fills a temporary directory, which then replaces
    /// `destination` (an existing destination is replaced whole).
    public static func writeDirectory(at destination: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = destination.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0 ... .max))")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        do {
            try body(tmp)
            if fm.fileExists(atPath: destination.path) {
                let old = parent.appendingPathComponent(".\(destination.lastPathComponent).old-\(UInt32.random(in: 0 ... .max))")
                try fm.moveItem(at: destination, to: old)
                try fm.moveItem(at: tmp, to: destination)
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: tmp, to: destination)
            }
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }
}
