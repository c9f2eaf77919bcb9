// StageAPI: the contract between the runner (Pipeline) and the modules that do the work, plus the
// small things both sides share: JSONValue, SHA-256, atomic file output. A module owning a stage
// kind (Formats: ingest, Bands: bands, Training: features/train/…) conforms a type to `StageKind`
// and links only this module, never the runner; HarmoSECLI registers every kind in one list. The
// runner knows nothing about chemistry: it validates parameters and inputs against the kind's
// declared schema, hands the kind a temporary output directory, and records what the kind returns.
import Foundation

/// One kind of pipeline stage: a documented, versioned transformation from inputs to a directory.
public protocol StageKind: Sendable {
    /// The name used in pipeline.json's "kind" field (lowercase, dash-separated).
    var name: String { get }
    /// One or two sentences for `harmose run --list-kinds` and the docs.
    var summary: String { get }
    /// Version of what this kind writes. Bump it whenever the output changes for the same inputs
    /// and parameters (new file layout, bug fix in the numbers): every artifact of the kind is then
    /// stale and will be rebuilt.
    var artifactVersion: Int { get }
    /// Parameters accepted under "params"; anything else is rejected by validation.
    var parameters: [ParameterSpec] { get }
    /// Named inputs accepted under "inputs"; anything else is rejected by validation.
    var inputs: [InputSpec] { get }
    /// Does the work. Writes only under `context.outputDirectory` (a fresh temporary directory that
    /// the runner renames into place when this returns). Returns metrics for manifest.json.
    /// Throwing marks the stage failed; nothing it wrote is kept.
    func run(_ context: StageContext) throws -> [String: JSONValue]
    /// How `harmose run` shares this kind's work among MPI ranks (default: rank 0 alone).
    var rankParallelism: RankParallelism { get }
    /// For `.perStructure` kinds: joins the ranks' partial outputs into `parts[0].directory`
    /// (rank 0's), so that it holds exactly what one process would have written, and returns the
    /// whole run's metrics. The runner has already moved every file the parts do not share into
    /// place; what is left are the per-rank files that name several structures (index tables).
    func merge(_ parts: [StagePart]) throws -> [String: JSONValue]
}

/// How a kind runs when `harmose run` is launched by mpirun/srun (ProcessGroup.size > 1).
public enum RankParallelism: Sendable, Equatable {
    /// Rank 0 runs it; the other ranks wait.
    case rootOnly
    /// Every rank runs it on the items its `Partition` owns into its own directory; the runner
    /// moves the per-item files together and the kind's `merge` joins the rest.
    case perStructure
    /// Every rank runs it together with `StageContext.group` (data-parallel training); rank 0's
    /// directory is the artifact. A failure on any rank ends the job (its peers are inside
    /// collectives and cannot be told otherwise).
    case collective
}

/// A rank's partial output that cannot be merged.
public struct RankMergeError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// One rank's output of a `.perStructure` stage.
public struct StagePart: Sendable {
    public let rank: Int
    public let directory: URL
    public let metrics: [String: JSONValue]
    public init(rank: Int, directory: URL, metrics: [String: JSONValue]) {
        self.rank = rank
        self.directory = directory
        self.metrics = metrics
    }

    /// The lines of a table every rank wrote (header first): the header once, then the rows
    /// in the order one process writes them. Rank r owns items r, r + size, …, in order, so row k
    /// of rank r is item r + k·size.
    public static func interleavedTable(_ parts: [StagePart], file: String) throws -> String {
        let tables = try parts.map { part -> [Substring] in
            let url = part.directory.appendingPathComponent(file)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw RankMergeError(description: "\(url.path): rank \(part.rank) wrote no \(file)") }
            return text.split(separator: "\n")
        }
        guard let header = tables.first?.first else { return "" }
        var lines = [header]
        let rows = tables.map { $0.dropFirst() }
        for k in 0 ..< (rows.map(\.count).max() ?? 0) {
            for r in rows.indices where k < rows[r].count { lines.append(rows[r][rows[r].startIndex + k]) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Sum of an integer metric over the parts.
    public static func sum(_ parts: [StagePart], _ key: String) -> JSONValue {
        .int(parts.reduce(0) { $0 + ($1.metrics[key]?.intValue ?? 0) })
    }
}

extension StageKind {
    public var rankParallelism: RankParallelism { .rootOnly }
    public func merge(_ parts: [StagePart]) throws -> [String: JSONValue] {
        throw RankMergeError(description: "kind \(name) is not split across ranks")
    }
}

/// The JSON type of a parameter. Validation checks values against it; the runner normalises values
/// (an integer given for a `.number` becomes a Double) so equal settings give equal fingerprints.
public indirect enum ParameterType: Equatable, Sendable, CustomStringConvertible {
    case integer
    case number
    case boolean
    case string
    /// A string from a fixed set.
    case choice([String])
    case array(ParameterType)

    public var description: String {
        switch self {
        case .integer: return "integer"
        case .number: return "number"
        case .boolean: return "boolean"
        case .string: return "string"
        case let .choice(values): return "one of " + values.map { "\"\($0)\"" }.joined(separator: ", ")
        case let .array(element): return "array of \(element)"
        }
    }
}

/// A documented parameter of a stage kind.
public struct ParameterSpec: Sendable {
    public let name: String
    public let type: ParameterType
    /// nil: the parameter is required.
    public let defaultValue: JSONValue?
    public let help: String
    /// Inclusive bounds for `.integer` and `.number` (and their arrays' elements).
    public let minimum: Double?
    public let maximum: Double?

    public init(_ name: String, _ type: ParameterType, default defaultValue: JSONValue? = nil,
                minimum: Double? = nil, maximum: Double? = nil, help: String)
    {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
    }

    public var isRequired: Bool { defaultValue == nil }
}

/// A named input of a stage kind.
public struct InputSpec: Sendable {
    public enum Source: Sendable, Equatable {
        /// A file or directory given by path (relative to pipeline.json), hashed by content.
        case path
        /// The output directory of another stage; `kinds` restricts which kinds may feed it
        /// (empty: any kind).
        case stage(kinds: [String])
        /// Either of the above.
        case pathOrStage
        /// A path, or the output of a stage of one of `kinds` (a stage of another kind is a
        /// validation error naming the stage).
        case pathOrStageOf(kinds: [String])
    }

    public let name: String
    public let source: Source
    public let required: Bool
    /// Whether a list of references is accepted (the kind then receives several URLs).
    public let multiple: Bool
    public let help: String

    public init(_ name: String, _ source: Source, required: Bool = true, multiple: Bool = false, help: String) {
        self.name = name
        self.source = source
        self.required = required
        self.multiple = multiple
        self.help = help
    }
}

/// Which share of per-item work this process does. Per-structure stages process item `i` only when
/// `owns(i)`, so the same stage can later be split across MPI ranks without changing its code.
/// A stage running in a worker process receives the runner's partition in its job file.
public struct Partition: Sendable, Equatable {
    public let rank: Int
    public let size: Int
    public init(rank: Int = 0, size: Int = 1) {
        precondition(size >= 1 && (0 ..< size).contains(rank), "invalid partition \(rank)/\(size)")
        self.rank = rank
        self.size = size
    }
    public static let whole = Partition()
    public func owns(_ index: Int) -> Bool { index % size == rank }
}

/// Validated, normalised parameter values of one stage, with defaults filled in.
public struct StageParameters: Sendable, Equatable {
    public let values: [String: JSONValue]
    public init(_ values: [String: JSONValue]) { self.values = values }

    public subscript(name: String) -> JSONValue? { values[name] }

    // Accessors trap on a name the kind did not declare: that is a programming error in the kind,
    // while user errors were already reported by validation with the stage and field named.
    public func int(_ name: String) -> Int { value(name, \.intValue, "integer") }
    public func double(_ name: String) -> Double { value(name, \.doubleValue, "number") }
    public func bool(_ name: String) -> Bool { value(name, \.boolValue, "boolean") }
    public func string(_ name: String) -> String { value(name, \.stringValue, "string") }
    public func strings(_ name: String) -> [String] {
        value(name, { $0.arrayValue?.compactMap(\.stringValue) }, "array of strings")
    }
    public func doubles(_ name: String) -> [Double] {
        value(name, { $0.arrayValue?.compactMap(\.doubleValue) }, "array of numbers")
    }
    public func ints(_ name: String) -> [Int] {
        value(name, { $0.arrayValue?.compactMap(\.intValue) }, "array of integers")
    }

    private func value<T>(_ name: String, _ get: (JSONValue) -> T?, _ what: String) -> T {
        guard let v = values[name] else { fatalError("stage kind read undeclared parameter '\(name)'") }
        guard let t = get(v) else { fatalError("parameter '\(name)' is not a \(what): \(v.canonicalString)") }
        return t
    }

    /// The parameters as one JSON object (sorted keys), as recorded in manifest.json.
    public var json: JSONValue { .object(values.sorted { $0.key < $1.key }) }
}

/// What a running stage sees: its parameters, its resolved inputs, where to write, and how to report.
public final class StageContext: @unchecked Sendable {
    public let stageName: String
    public let parameters: StageParameters
    /// Input name → resolved locations: data files/directories, or other stages' artifact
    /// directories. Single inputs have one URL; absent optional inputs are missing from the map.
    public let inputs: [String: [URL]]
    /// Fresh, empty directory; everything the stage produces goes here. The runner adds
    /// manifest.json, log.txt and inputs-index.tsv beside it: kinds must not use those names.
    /// What a kind writes here must be determined by its inputs, parameters and code (the same
    /// bytes in every run); wall-clock measurements go to `timingsFileName` instead.
    public let outputDirectory: URL
    /// The one file of `outputDirectory` a kind may fill with wall-clock measurements (JSON lines,
    /// e.g. seconds per epoch). Like log.txt and manifest.json it records how the run went and is
    /// not part of the artifact's content: the runner keeps it with them, and nothing downstream
    /// may read it as an input.
    public static let timingsFileName = "timings.jsonl"
    public let partition: Partition
    /// Threads this stage may keep busy (the runner's share of the cores for it). Kinds size their
    /// own worker pools with it; results must not depend on it. In a stage worker process
    /// OPENBLAS_NUM_THREADS is set to the same number before the process starts.
    public let threads: Int
    /// The ranks of the job: `.collective` kinds train together through it. Per-structure kinds
    /// use only `partition`.
    public let group: any ProcessGroup
    private let reporter: StageReporter

    public init(stageName: String, parameters: StageParameters, inputs: [String: [URL]],
                outputDirectory: URL, partition: Partition = .whole,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, group: any ProcessGroup = SingleProcess.shared,
                reporter: StageReporter)
    {
        self.stageName = stageName
        self.parameters = parameters
        self.inputs = inputs
        self.outputDirectory = outputDirectory
        self.partition = partition
        self.threads = max(1, threads)
        self.group = group
        self.reporter = reporter
    }

    /// The single location of a required input (validation guarantees it exists).
    public func input(_ name: String) -> URL {
        guard let url = inputs[name]?.first else { fatalError("stage kind read undeclared or absent input '\(name)'") }
        return url
    }

    /// Appends a line to the stage's log file (and echoes it to the console when verbose).
    public func log(_ message: String) { reporter.log(message) }

    /// Reports progress: `done` of `total` items. Cheap enough to call once per item.
    public func progress(done: Int, total: Int) { reporter.progress(done: done, total: total) }
}

/// Receives a stage's log lines and progress. The runner provides one per running stage; tests and
/// callers that run a kind directly can use `StageReporter.discard`.
open class StageReporter: @unchecked Sendable {
    public init() {}
    open func log(_ message: String) {}
    open func progress(done: Int, total: Int) {}
    public static let discard = StageReporter()
}

extension InputSpec.Source {
    /// The stage kinds a stage reference may name (empty: any); nil when only paths are accepted.
    public var stageKinds: [String]? {
        switch self {
        case .path: return nil
        case let .stage(kinds), let .pathOrStageOf(kinds): return kinds
        case .pathOrStage: return []
        }
    }
}
