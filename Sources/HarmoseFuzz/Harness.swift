// harmose-fuzz: libFuzzer harnesses for every parser of outside data (issue #12), and a replayer
// of their seed corpora that `make test` runs. A harness is one small file in Harnesses/: a name,
// the seeds (built from Tests/Fixtures), and a function that feeds bytes to the parser and
// swallows the errors it is expected to throw; anything else — a trap, an AddressSanitizer
// report, a hang past libFuzzer's -timeout — is a finding. Register a new harness by adding it
// to `Harnesses.all` below (new formats' readers join the same way).
import Foundation

struct Harness: Sendable {
    let name: String
    /// What the harness feeds, for `harmose-fuzz list`.
    let summary: String
    /// Seed inputs, built from Tests/Fixtures (so nothing binary is committed twice).
    let seeds: @Sendable () throws -> [[UInt8]]
    /// Parses one input. Thrown errors are the parser rejecting bad input: not findings.
    let body: @Sendable ([UInt8]) throws -> Void

    /// Runs the parser on one input; returns the rejection message, nil when accepted.
    @discardableResult
    func run(_ input: [UInt8]) -> String? {
        do { try body(input); return nil } catch {
            // Every rejection must still produce a message (the formatter never traps).
            return "\(error)"
        }
    }
}

enum Harnesses {
    static let all: [Harness] = [
        poscar, infoJSON, dockHDF5, legacyText, legacyHDF5, legacyKey, kpath,
        pipelineJSON, trainConfig, refineConfig, memberName, archive, checkpoint, abacus, cp2k,
    ]

    static func named(_ name: String) -> Harness? { all.first { $0.name == name } }
}

/// Tests/Fixtures of this checkout.
enum FuzzFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures")

    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent(relative)))
    }

    static func text(_ relative: String) throws -> String {
        String(decoding: try bytes(relative), as: UTF8.self)
    }
}

/// A per-process scratch folder for harnesses whose parser reads a path (configs, archives,
/// checkpoints): the input is written to one file there and overwritten on every run.
enum Scratch {
    static let folder: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("harmose-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: "/dev/shm/harmose-fuzz-\(getpid())") }
        return url
    }()

    static func file(_ name: String, _ bytes: [UInt8]) -> URL {
        let url = folder.appendingPathComponent(name)
        FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
        return url
    }
}
