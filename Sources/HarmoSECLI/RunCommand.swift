// `harmose run`, `harmose status`, `harmose gc`: thin shells over the Pipeline module.
import ArgumentParser
import Cluster
import Foundation
import Pipeline
import StageAPI

/// Options shared by the pipeline commands.
struct PipelineLocation: ParsableArguments {
    @Option(name: .customLong("pipeline"), help: "Pipeline file (see docs/pipeline.md).")
    var pipeline: String = "pipeline.json"

    @Option(help: ArgumentHelp("Artifact store folder.", discussion: "Default: outputs/ beside the pipeline file."))
    var outputs: String?

    var pipelineURL: URL { URL(fileURLWithPath: pipeline).standardizedFileURL }

    var outputsURL: URL {
        if let outputs { return URL(fileURLWithPath: outputs).standardizedFileURL }
        return pipelineURL.deletingLastPathComponent().appendingPathComponent("outputs")
    }

    func load() throws -> PipelineSpec {
        try PipelineSpec.load(from: pipelineURL, registry: StageKinds.registry())
    }
}

/// Prints a pipeline error to stderr and exits with `code`.
func fail(_ error: Error, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(ErrorText.describe(error))\n".utf8))
    return ExitCode(code)
}

public struct RunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the stages of pipeline.json that are not up to date.",
        discussion: """
        Each stage's fingerprint covers its kind, parameters, artifact format version, the code \
        that computes it (a build-time hash of its module's sources and what it links), the \
        fingerprints of the stages it reads, and the content of its input files. A stage whose \
        fingerprint has an artifact in outputs/<stage>/ is skipped; the others run in dependency \
        order (independent ones in parallel, see --jobs), each into a temporary folder that is \
        renamed to outputs/<stage>/<fingerprint>/ on success, with manifest.json and log.txt; \
        outputs/<stage>/latest points at the current version. A failing stage stops the stages \
        that read it, keeps the ones that completed, prints the end of its log, and the command \
        exits non-zero. Every stage runs in a worker process of its own (a crash is that stage's \
        failure, recorded with its log; the others finish) with its share of the cores; artifacts are \
        byte-identical for any --jobs. Schema and details: docs/pipeline.md.

        Examples:
          harmose run                       # everything that is stale
          harmose run --dry-run             # what would run, and why
          harmose run --until features-molecules   # that stage and what it needs
          harmose run --force bands         # rebuild bands even if up to date
        """
    )

    @OptionGroup var location: PipelineLocation

    @Option(help: "Run only this stage (repeatable); the stages it reads must be up to date.")
    var only: [String] = []

    @Option(help: "Run this stage and everything it depends on, nothing after it (repeatable).")
    var until: [String] = []

    @Option(help: "Re-execute this stage even if it is up to date (repeatable).")
    var force: [String] = []

    @Flag(help: "Show what would run and why, without running or locking anything.")
    var dryRun = false

    @Option(name: [.customShort("j"), .long], help: "Stages to execute at once; defaults to the number of cores.")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "If another harmose process holds outputs/.lock, exit at once instead of waiting.")
    var noWait = false

    @Flag(name: .shortAndLong, help: "Echo stage log lines to the console.")
    var verbose = false

    @Flag(help: "List the stage kinds with their parameters and inputs, then exit.")
    var listKinds = false

    @Flag(help: ArgumentHelp("Run stages on threads of this process instead of worker processes (debugging, benchmarks): stages then share process state and a crash ends the run.", visibility: .hidden))
    var stagesInProcess = false

    public init() {}

    public func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard only.isEmpty || until.isEmpty else { throw ValidationError("--only and --until cannot be combined") }
    }

    public func run() throws {
        if listKinds {
            print(describeKinds(StageKinds.all.filter { !$0.name.hasPrefix("diagnostic-") || StageKinds.diagnosticKindsEnabled }))
            return
        }
        let spec: PipelineSpec
        do { spec = try location.load() } catch { throw fail(error, code: 2) }
        // Under mpirun/srun every rank runs the pipeline together (docs/scaling.md); rank 0 speaks.
        let group = Cluster.group()
        let console = group.isRoot ? RunConsole(verbose: verbose) : RunConsole(isTerminal: false, write: { _ in })
        let runner = PipelineRunner(spec: spec, outputs: location.outputsURL, toolVersion: HarmoSECommand.version,
                                    console: console,
                                    execution: stagesInProcess ? .inProcess : StageWorkerCommand.execution, group: group)
        var options = RunOptions()
        options.only = only
        options.until = until
        options.force = force
        options.dryRun = dryRun
        options.jobs = jobs
        options.wait = !noWait
        let summary: RunSummary
        do { summary = try runner.run(options) } catch {
            if group.isRoot { throw fail(error) }
            throw ExitCode(1)
        }
        if !summary.succeeded {
            guard group.isRoot else { throw ExitCode(1) }
            for (stage, reason) in summary.failed.sorted(by: { $0.key < $1.key }) {
                FileHandle.standardError.write(Data("error: \(PipelineError.stageFailed(stage: stage, reason: reason))\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

/// `harmose stage-worker <job>`: runs one stage for `harmose run` in a process of its own (see
/// Sources/Pipeline/StageWorker.swift). Hidden: only the runner calls it.
public struct StageWorkerCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stage-worker",
        abstract: "Run one pipeline stage from a job file written by `harmose run` (internal).",
        shouldDisplay: false
    )

    @Argument(help: "The job file.")
    var job: String

    public init() {}

    /// How `harmose run` executes stages: this binary, this subcommand.
    static var execution: StageExecution {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        return .workerProcess(executable: executable, arguments: ["stage-worker"])
    }

    public func run() throws {
        let registry: StageRegistry
        do { registry = try StageKinds.registry() } catch { throw fail(error) }
        let status = StageWorker.main(jobFile: URL(fileURLWithPath: job), registry: registry)
        if status != 0 { throw ExitCode(status) }
    }
}

/// Text for --list-kinds (and the source of docs/pipeline.md's kind reference).
func describeKinds(_ kinds: [any StageKind]) -> String {
    guard !kinds.isEmpty else { return "No stage kinds are registered in this build." }
    var out = ""
    for kind in kinds {
        out += "\(kind.name) (artifact format \(kind.artifactVersion))\n  \(kind.summary)\n"
        if !kind.inputs.isEmpty { out += "  inputs:\n" }
        for input in kind.inputs {
            let source: String
            switch input.source {
            case .path: source = "path"
            case let .stage(kinds): source = kinds.isEmpty ? "{\"stage\": …}" : "{\"stage\": …} of kind " + kinds.joined(separator: "/")
            case .pathOrStage: source = "path or {\"stage\": …}"
            case let .pathOrStageOf(kinds): source = "path or {\"stage\": …} of kind " + kinds.joined(separator: "/")
            }
            out += "    \(input.name): \(source)\(input.multiple ? ", one or a list" : "")\(input.required ? "" : ", optional") — \(input.help)\n"
        }
        if !kind.parameters.isEmpty { out += "  params:\n" }
        for p in kind.parameters {
            var line = "    \(p.name): \(p.type)"
            if let d = p.defaultValue { line += " = \(d.canonicalString)" } else { line += " (required)" }
            if p.minimum != nil || p.maximum != nil {
                line += " in [\(p.minimum.map { "\($0)" } ?? "-∞"), \(p.maximum.map { "\($0)" } ?? "∞")]"
            }
            out += line + " — \(p.help)\n"
        }
        out += "\n"
    }
    return out
}

public struct StatusCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show which stages are up to date, stale (and why), missing, or failed.",
        discussion: """
        Stale stages list what changed since their latest artifact: a parameter (old → new), an \
        input file's content (which files), an upstream stage, the kind's artifact format, or its \
        code ("code changed"). A stage whose last attempt failed or crashed is "failed", with its log. \
        Reads only; safe to run while `harmose run` is working.
        """
    )

    @OptionGroup var location: PipelineLocation

    @Flag(help: "Print machine-readable JSON instead of a table.")
    var json = false

    @Flag(help: "Exit with status 1 unless every stage is up to date (for scripts and cron jobs).")
    var check = false

    public init() {}

    public func run() throws {
        let spec: PipelineSpec
        do { spec = try location.load() } catch { throw fail(error, code: 2) }
        let runner = PipelineRunner(spec: spec, outputs: location.outputsURL, toolVersion: HarmoSECommand.version,
                                    console: RunConsole())
        let statuses: [StageStatus]
        do { statuses = try runner.status() } catch { throw fail(error) }
        print(json ? statusJSON(statuses, spec: spec, outputs: location.outputsURL).prettyString : statusTable(statuses), terminator: json ? "" : "\n")
        if check, !statuses.allSatisfy({ $0.state == .upToDate }) { throw ExitCode(1) }
    }
}

func statusJSON(_ statuses: [StageStatus], spec: PipelineSpec, outputs: URL) -> JSONValue {
    .object([
        ("pipeline", .string(spec.file.path)),
        ("outputs", .string(outputs.path)),
        ("stages", .array(statuses.map { s in
            var fields: [(String, JSONValue)] = [
                ("name", .string(s.name)),
                ("kind", .string(s.kind)),
                ("state", .string(s.state.word)),
                ("fingerprint", .string(s.fingerprint.full)),
                ("id", .string(s.fingerprint.id)),
                ("latest", s.latestID.map { .string($0) } ?? .null),
                ("reasons", .array(s.state.reasons.map { .string($0) })),
            ]
            if let m = s.latest {
                fields.append(("latestRun", ["endTime": .string(m.endTime), "durationSeconds": .double(m.durationSeconds), "metrics": m.metrics]))
            }
            if let log = s.failureLog { fields.append(("failureLog", .string(log.path))) }
            return .object(fields)
        })),
    ])
}

func statusTable(_ statuses: [StageStatus]) -> String {
    let nameWidth = max(5, statuses.map(\.name.count).max() ?? 0)
    let stateWidth = 10
    func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
    var lines = [pad("STAGE", nameWidth) + "  " + pad("STATE", stateWidth) + "  DETAIL"]
    for s in statuses {
        var details: [String]
        switch s.state {
        case .upToDate:
            let m = s.latest
            details = ["\(s.fingerprint.id)" + (m.map { ", built \($0.endTime) in \(formatDuration($0.durationSeconds))" } ?? "")]
        default:
            details = s.state.reasons
            if let log = s.failureLog { details.append("log: \(log.path)") }
        }
        for (n, d) in details.enumerated() {
            lines.append((n == 0 ? pad(s.name, nameWidth) + "  " + pad(s.state.word, stateWidth) : String(repeating: " ", count: nameWidth + stateWidth + 2)) + "  " + d)
        }
    }
    return lines.joined(separator: "\n")
}

public struct GCCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete old artifact versions from outputs/, keeping the newest of each stage.",
        discussion: """
        Keeps, for every stage folder in outputs/, the version `latest` points to plus the newest \
        others up to --keep versions in all; also removes folders and files left by killed runs \
        (`.tmp-*` versions, `.NAME.tmp-<pid>-*` temporaries inside artifacts, and with --under DIR \
        those under DIR, such as a killed convert's `.DST.tmp-*`); --dry-run lists them. Takes the \
        outputs lock, so it never deletes what a running `harmose run` reads.
        """
    )

    @OptionGroup var location: PipelineLocation

    @Option(help: "Versions to keep per stage (at least 1: the latest).")
    var keep: Int = 1

    @Flag(help: "Only list what would be deleted.")
    var dryRun = false

    @Flag(help: "If another harmose process holds outputs/.lock, exit at once instead of waiting.")
    var noWait = false

    @Option(name: .customLong("under"), help: ArgumentHelp(
        "Also remove temporaries that killed runs left under this folder (e.g. a convert or bands destination's parent); repeatable.",
        valueName: "dir"))
    var under: [String] = []

    public init() {}

    public func validate() throws {
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1 (the latest version is always kept)") }
    }

    public func run() throws {
        let console = RunConsole()
        do {
            let removed = try collectGarbage(outputs: location.outputsURL, keep: keep, dryRun: dryRun, wait: !noWait, console: console)
            for dir in under {
                for url in AtomicOutput.abandonedTemporaries(under: URL(fileURLWithPath: dir), depth: 8) {
                    if !dryRun { try? FileManager.default.removeItem(at: url) }
                    console.message("\(dryRun ? "would remove" : "removed") \(url.path) (left by a killed run)")
                }
            }
            console.message("\(dryRun ? "would remove" : "removed") \(removed.count) version\(removed.count == 1 ? "" : "s")")
        } catch { throw fail(error) }
    }
}
