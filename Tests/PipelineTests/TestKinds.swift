// Stage kinds that exist only in these tests: they transform small text files deterministically and
// count how often each stage executes, so tests can assert exactly what a run redid.
import Foundation
import Pipeline
import StageAPI

/// Executions per stage name, shared by all test kinds (tests use unique stage names per case).
final class ExecutionLog: @unchecked Sendable {
    static let shared = ExecutionLog()
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    private var concurrent = 0
    private(set) var maxConcurrent = 0

    func record(_ stage: String) {
        lock.lock(); defer { lock.unlock() }
        counts[stage, default: 0] += 1
    }

    func count(_ stage: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        return counts[stage] ?? 0
    }

    func enter() { lock.lock(); concurrent += 1; maxConcurrent = max(maxConcurrent, concurrent); lock.unlock() }
    func leave() { lock.lock(); concurrent -= 1; lock.unlock() }
    var current: Int { lock.lock(); defer { lock.unlock() }; return concurrent }
    func resetConcurrency() { lock.lock(); maxConcurrent = 0; lock.unlock() }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
}

/// Reads every regular file of its input(s) and writes "<prefix><line> × factor" per line: a
/// stand-in for ingest/graph-like per-item stages.
struct ScaleKind: StageKind {
    let name = "test-scale"
    let summary = "multiplies every integer of every input file by a factor"
    let artifactVersion: Int
    let parameters: [ParameterSpec] = [
        ParameterSpec("factor", .integer, default: 1, minimum: 0, help: "multiplier"),
        ParameterSpec("prefix", .string, default: "", help: "prepended to each output line"),
        ParameterSpec("fail", .boolean, default: false, help: "throw instead of finishing"),
        ParameterSpec("wait_for_peers", .integer, default: 0, help: "wait until this many stages run at once"),
    ]
    let inputs: [InputSpec] = [
        InputSpec("source", .pathOrStage, multiple: true, help: "files or folders of integers"),
        InputSpec("extra", .path, required: false, help: "an optional extra file"),
    ]

    init(artifactVersion: Int = 1) { self.artifactVersion = artifactVersion }

    func run(_ context: StageContext) throws -> [String: JSONValue] {
        ExecutionLog.shared.record(context.stageName)
        ExecutionLog.shared.enter()
        defer { ExecutionLog.shared.leave() }
        let peers = context.parameters.int("wait_for_peers")
        if peers > 0 {
            let deadline = Date().addingTimeInterval(10)
            while ExecutionLog.shared.current < peers, Date() < deadline { usleep(1000) }
        }
        let factor = context.parameters.int("factor")
        let prefix = context.parameters.string("prefix")
        var files: [URL] = []
        for root in context.inputs["source"] ?? [] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory) else {
                throw TestError(description: "\(root.path) is missing")
            }
            guard isDirectory.boolValue else { files.append(root); continue }
            for rel in try FileManager.default.subpathsOfDirectory(atPath: root.path) {
                let url = root.appendingPathComponent(rel)
                var sub: ObjCBool = false
                if FileManager.default.fileExists(atPath: url.path, isDirectory: &sub), !sub.boolValue,
                   !["manifest.json", "log.txt", "inputs-index.tsv"].contains(rel)
                {
                    files.append(url)
                }
            }
        }
        files.sort { $0.path < $1.path }
        var total = 0
        for (i, url) in files.enumerated() {
            let text = try String(contentsOf: url, encoding: .utf8)
            let out = text.split(separator: "\n").map { line -> String in
                let digits = line.drop { !$0.isNumber && $0 != "-" }
                let value = Int(digits) ?? 0
                total += value * factor
                return "\(prefix)\(value * factor)"
            }.joined(separator: "\n") + "\n"
            try out.write(to: context.outputDirectory.appendingPathComponent("\(i)-\(url.lastPathComponent)"), atomically: false, encoding: .utf8)
            context.progress(done: i + 1, total: files.count)
        }
        context.log("scaled \(files.count) files")
        if context.parameters.bool("fail") { throw TestError(description: "test-scale failed on purpose") }
        return ["files": .int(files.count), "sum": .int(total)]
    }
}

/// Concatenates all files of several upstream stages: a fan-in stage.
struct ConcatKind: StageKind {
    let name = "test-concat"
    let summary = "concatenates the files of its input stages"
    let artifactVersion = 1
    let parameters: [ParameterSpec] = [
        ParameterSpec("separator", .choice(["newline", "none"]), default: "newline", help: "between files"),
        ParameterSpec("weights", .array(.number), default: [], help: "unused, for type checks"),
    ]
    let inputs: [InputSpec] = [
        InputSpec("parts", .stage(kinds: ["test-scale", "test-concat"]), multiple: true, help: "stages to concatenate"),
    ]

    func run(_ context: StageContext) throws -> [String: JSONValue] {
        ExecutionLog.shared.record(context.stageName)
        var text = ""
        for dir in context.inputs["parts"] ?? [] {
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
                .filter { !["manifest.json", "log.txt", "inputs-index.tsv"].contains($0) }
            for n in names {
                text += try String(contentsOf: dir.appendingPathComponent(n), encoding: .utf8)
                if context.parameters.string("separator") == "newline" { text += "\n" }
            }
        }
        try text.write(to: context.outputDirectory.appendingPathComponent("all.txt"), atomically: false, encoding: .utf8)
        return ["bytes": .int(text.utf8.count)]
    }
}

func testRegistry(scaleVersion: Int = 1) -> StageRegistry {
    try! StageRegistry([ScaleKind(artifactVersion: scaleVersion), ConcatKind()])
}
