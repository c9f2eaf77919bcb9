// Stage kinds for exercising the runner end to end through the real `harmose` binary: crash
// recovery (kill -9 mid-stage), failure reporting, crash isolation, the no-op benchmark. Hidden unless
// HARMOSE_DIAGNOSTIC_KINDS=1; they do no science.
import Foundation
import Pipeline
import StageAPI

public enum DiagnosticStageKinds {
    public static let all: [any StageKind] = [CopyFilesKind(), AllReduceKind()]
}

/// Copies every file of its inputs into its output (relative paths kept), prefixing each copy's
/// content with `tag`; optionally sleeps per file (to be killed mid-stage) or fails at the end.
/// Under mpirun each rank copies the files its partition owns; `fail_rank` / `kill_rank` make
/// one rank throw or die (SIGKILL) after its first file.
struct CopyFilesKind: StageKind {
    let name = "diagnostic-copy"
    let summary = "Copies input files into the artifact, prefixed by a tag (runner diagnostics)."
    let artifactVersion = 1
    let parameters: [ParameterSpec] = [
        ParameterSpec("tag", .string, default: "", help: "text prepended to every copied file"),
        ParameterSpec("delay_ms", .integer, default: 0, minimum: 0, help: "sleep this long after each file"),
        ParameterSpec("fail", .boolean, default: false, help: "throw after copying (to test failure handling)"),
        ParameterSpec("crash", .boolean, default: false, help: "trap after copying (to test crash isolation)"),
        ParameterSpec("fail_rank", .integer, default: -1, minimum: -1, help: "under mpirun: this rank throws after its first file"),
        ParameterSpec("kill_rank", .integer, default: -1, minimum: -1, help: "under mpirun: this rank kills itself (SIGKILL) after its first file"),
    ]
    let inputs: [InputSpec] = [
        InputSpec("source", .pathOrStage, multiple: true, help: "files or directories to copy"),
    ]

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func run(_ context: StageContext) throws -> [String: JSONValue] {
        let fm = FileManager.default
        var files: [(URL, String)] = []
        for (n, root) in (context.inputs["source"] ?? []).enumerated() {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: root.path, isDirectory: &isDir) else { throw Failure(description: "\(root.path): missing") }
            if !isDir.boolValue { files.append((root, "\(n)/\(root.lastPathComponent)")); continue }
            let names = try fm.subpathsOfDirectory(atPath: root.path).sorted()
            for rel in names where !rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
                var sub: ObjCBool = false
                let url = root.appendingPathComponent(rel)
                if fm.fileExists(atPath: url.path, isDirectory: &sub), !sub.boolValue,
                   !["manifest.json", "log.txt", "inputs-index.tsv"].contains(rel) {
                    files.append((url, "\(n)/\(rel)"))
                }
            }
        }
        let tag = Data(context.parameters.string("tag").utf8)
        let delay = context.parameters.int("delay_ms")
        var bytes = 0
        let rank = context.partition.size > 1 ? context.partition.rank : -2
        for (i, (url, rel)) in files.enumerated() where context.partition.owns(i) {
            let dest = context.outputDirectory.appendingPathComponent(rel)
            try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = tag + (try Data(contentsOf: url))
            try data.write(to: dest)
            bytes += data.count
            context.progress(done: i + 1, total: files.count)
            if delay > 0 { usleep(useconds_t(delay * 1000)) }
            if rank == context.parameters.int("fail_rank") { throw Failure(description: "rank \(rank) failing on request (params.fail_rank)") }
            if rank == context.parameters.int("kill_rank") { kill(getpid(), SIGKILL) }
        }
        context.log("copied \(files.count) files, \(bytes) bytes")
        if context.parameters.bool("fail") { throw Failure(description: "failing on request (params.fail = true)") }
        if context.parameters.bool("crash") { fatalError("crashing on request (params.crash = true)") }
        return ["files": .int(files.count), "bytes": .int(bytes)]
    }

    var rankParallelism: RankParallelism { .perStructure }

    func merge(_ parts: [StagePart]) throws -> [String: JSONValue] {
        ["files": StagePart.sum(parts, "files"), "bytes": StagePart.sum(parts, "bytes")]
    }
}

/// Sums a buffer over the ranks `steps` times (the collective path of training without a
/// model); `stall_rank` sleeps `stall_seconds` before its first sum, to exercise the timeout.
/// Writes sum.txt (the last sum's first value: the rank count times `value`).
struct AllReduceKind: StageKind {
    let name = "diagnostic-allreduce"
    let summary = "Sums a buffer over the MPI ranks (runner diagnostics)."
    let artifactVersion = 1
    let parameters: [ParameterSpec] = [
        ParameterSpec("steps", .integer, default: 3, minimum: 1, help: "how many all-reduces"),
        ParameterSpec("count", .integer, default: 1000, minimum: 1, help: "values per all-reduce"),
        ParameterSpec("value", .number, default: 1.5, help: "every value of every rank's buffer"),
        ParameterSpec("stall_rank", .integer, default: -1, minimum: -1, help: "this rank sleeps before its first sum"),
        ParameterSpec("stall_seconds", .number, default: 0, minimum: 0, help: "how long the stalled rank sleeps"),
    ]
    let inputs: [InputSpec] = []

    func run(_ context: StageContext) throws -> [String: JSONValue] {
        let p = context.parameters, group = context.group
        if group.size > 1, group.rank == p.int("stall_rank") { usleep(useconds_t(p.double("stall_seconds") * 1e6)) }
        var sum: [Float] = []
        for _ in 0 ..< p.int("steps") { sum = group.sum([Float](repeating: Float(p.double("value")), count: p.int("count"))) }
        try Data("\(sum[0])\n".utf8).write(to: context.outputDirectory.appendingPathComponent("sum.txt"))
        return ["ranks": .int(group.size), "sum": .double(Double(sum[0]))]
    }

    var rankParallelism: RankParallelism { .collective }
}
