// Stage kinds for exercising the runner end to end through the real `harmose` binary: crash
// recovery (kill -9 mid-stage), failure reporting, crash isolation, the no-op benchmark. Hidden unless
// HARMOSE_DIAGNOSTIC_KINDS=1; they do no science.
import Foundation
import Pipeline
import StageAPI

public enum DiagnosticStageKinds {
    public static let all: [any StageKind] = [CopyFilesKind()]
}

/// Copies every file of its inputs into its output (relative paths kept), prefixing each copy's
/// content with `tag`; optionally sleeps per file (to be killed mid-stage) or fails at the end.
struct CopyFilesKind: StageKind {
    let name = "diagnostic-copy"
    let summary = "Copies input files into the artifact, prefixed by a tag (runner diagnostics)."
    let artifactVersion = 1
    let parameters: [ParameterSpec] = [
        ParameterSpec("tag", .string, default: "", help: "text prepended to every copied file"),
        ParameterSpec("delay_ms", .integer, default: 0, minimum: 0, help: "sleep this long after each file"),
        ParameterSpec("fail", .boolean, default: false, help: "throw after copying (to test failure handling)"),
        ParameterSpec("crash", .boolean, default: false, help: "trap after copying (to test crash isolation)"),
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
        for (i, (url, rel)) in files.enumerated() {
            let dest = context.outputDirectory.appendingPathComponent(rel)
            try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = tag + (try Data(contentsOf: url))
            try data.write(to: dest)
            bytes += data.count
            context.progress(done: i + 1, total: files.count)
            if delay > 0 { usleep(useconds_t(delay * 1000)) }
        }
        context.log("copied \(files.count) files, \(bytes) bytes")
        if context.parameters.bool("fail") { throw Failure(description: "failing on request (params.fail = true)") }
        if context.parameters.bool("crash") { fatalError("crashing on request (params.crash = true)") }
        return ["files": .int(files.count), "bytes": .int(bytes)]
    }
}
