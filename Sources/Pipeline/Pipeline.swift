// Pipeline: the dependency-aware batch runner behind `harmose run`. Owns the pipeline.json schema
// and its validation, stage fingerprints (kind, parameters, artifact version, upstream fingerprints,
// content of input files, with a stat-keyed hash cache), the versioned artifact store
// outputs/<stage>/<fingerprint>/ with manifest.json and a `latest` link, staleness explanations,
// the outputs/ lock, parallel scheduling and progress display. It knows no chemistry: stage kinds
// are defined by the modules that own them (see StageKind.swift) and registered by HarmoSECLI.
import Foundation
import StageAPI

/// Every error the runner reports. Descriptions name the file and, for pipeline.json problems,
/// the JSON path of the offending field (e.g. `stages.graph.params.cutoff`).
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case duplicateKind(String)
    case invalidKindName(String)
    case unreadablePipeline(file: String, reason: String)
    case syntax(file: String, JSONSyntaxError)
    /// A schema violation: `path` is the JSON path of the field, `message` says what is wrong.
    case invalid(file: String, path: String, message: String)
    case unknownStage(String, context: String)
    case lockBusy(path: String, holder: String)
    case io(path: String, reason: String)
    case stageFailed(stage: String, reason: String)
    case upstreamNotReady(stage: String, upstream: String)
    /// Several independent problems found in one validation pass.
    case several([PipelineError])

    public var description: String {
        switch self {
        case let .duplicateKind(name): return "stage kind '\(name)' is registered twice"
        case let .invalidKindName(name): return "invalid stage kind name '\(name)' (letters, digits, '-', '_')"
        case let .unreadablePipeline(file, reason): return "\(file): cannot read pipeline: \(reason)"
        case let .syntax(file, e): return "\(file):\(e.line):\(e.column): invalid JSON: \(e.message)"
        case let .invalid(file, path, message): return "\(file): \(path): \(message)"
        case let .unknownStage(name, context): return "unknown stage '\(name)' (\(context))"
        case let .lockBusy(path, holder):
            return "another harmose process (\(holder)) holds \(path); not waiting because of --no-wait"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .stageFailed(stage, reason): return "stage '\(stage)' failed: \(reason)"
        case let .upstreamNotReady(stage, upstream):
            return "stage '\(stage)' needs '\(upstream)', which has no up-to-date artifact; run it first (drop --only)"
        case let .several(errors): return errors.map(\.description).joined(separator: "\n")
        }
    }
}

/// Describes an errno failure of a system call on a path.
func posixError(_ call: String, _ path: String, _ code: Int32 = errno) -> PipelineError {
    .io(path: path, reason: "\(call) failed: \(String(cString: strerror(code)))")
}
