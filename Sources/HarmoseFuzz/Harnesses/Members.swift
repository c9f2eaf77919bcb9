// One fuzz input holding several files of a run folder: the members, in a fixed order, joined by
// a separator line. A seed is a real run folder joined this way; the harness splits the mutated
// bytes back into a member map for the reader's in-memory entry point.
import Foundation

enum Members {
    static let separator = Array("\n\u{1E}harmose-member\u{1E}\n".utf8)

    static func join(_ parts: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for (k, p) in parts.enumerated() { if k > 0 { out += separator }; out += p }
        return out
    }

    /// The first `names.count` parts of `bytes`, by name (missing trailing parts are absent files).
    static func split(_ bytes: [UInt8], names: [String]) -> [String: [UInt8]] {
        var map: [String: [UInt8]] = [:]
        var start = 0, k = 0, i = 0
        while k < names.count {
            if i + separator.count <= bytes.count, bytes[i ..< i + separator.count].elementsEqual(separator) {
                map[names[k]] = Array(bytes[start ..< i]); k += 1
                i += separator.count; start = i
            } else if i >= bytes.count {
                map[names[k]] = Array(bytes[start...]); break
            } else {
                i += 1
            }
        }
        return map
    }

    /// Members of a fixture tar.xz (read with the system tar: seeds only, not the fuzzed code).
    static func fromTar(_ relative: String, _ member: String) throws -> [UInt8] {
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar", "-xJOf", FuzzFixtures.root.appendingPathComponent(relative).path, member]
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileReadNoSuchFile) }
        return [UInt8](data)
    }
}
