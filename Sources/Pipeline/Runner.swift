// Planning and executing a run: which stages are up to date, which stored version can simply be
// relinked, which must execute; then executing them in dependency order on up to `jobs` threads.
// Each execution writes into outputs/<stage>/.tmp-…, which is renamed to outputs/<stage>/<id> only
// after the kind returned and manifest.json was written, so a failure or kill -9 leaves no
// artifact that looks complete.
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct RunOptions: Sendable {
    /// Run only these stages (their upstream stages must already be up to date).
    public var only: [String] = []
    /// Run these stages and everything they depend on, nothing downstream.
    public var until: [String] = []
    /// Re-execute these stages even when up to date.
    public var force: [String] = []
    public var dryRun = false
    /// How many stages may execute at once.
    public var jobs = 1
    /// Cores shared by the stages running at once: a stage starting gets `cores / n` threads
    /// (StageContext.threads, OPENBLAS_NUM_THREADS of its worker), n = the stages running or ready
    /// to start with it, at most `jobs` — a stage running alone gets every core. Results do not
    /// depend on it (kernels split work by shape, never by thread count).
    public var cores = ProcessInfo.processInfo.activeProcessorCount
    /// Wait for another runner holding the lock (false: fail at once).
    public var wait = true

    public init() {}
}

/// The state of a stage relative to its stored artifacts.
public enum StageState: Sendable, Equatable {
    case upToDate
    /// A complete version for the current fingerprint exists, but `latest` points elsewhere
    /// (e.g. a parameter was changed and changed back): running relinks it without executing.
    case stored
    case stale(reasons: [String])
    case missing
    /// The last attempt at the current fingerprint failed.
    case failed(error: String)
    /// Another live harmose process is building the current fingerprint right now.
    case running(pid: Int32)

    public var word: String {
        switch self {
        case .upToDate: return "up-to-date"
        case .stored, .stale: return "stale"
        case .missing: return "missing"
        case .failed: return "failed"
        case .running: return "running"
        }
    }

    public var reasons: [String] {
        switch self {
        case .upToDate: return []
        case .stored: return ["a stored version matches the current configuration; `harmose run` relinks it without executing"]
        case let .stale(r): return r
        case .missing: return ["no artifact yet"]
        case let .failed(e): return ["last attempt failed: \(e)"]
        case let .running(pid): return ["being built by harmose process \(pid)"]
        }
    }
}

public struct StageStatus: Sendable {
    public let name: String
    public let kind: String
    public let fingerprint: StageFingerprint
    public let state: StageState
    /// The version `latest` points to, if any, and its manifest.
    public let latestID: String?
    public let latest: Manifest?
    public let failureLog: URL?
}

public enum PlannedAction: Sendable, Equatable {
    case upToDate
    case relink
    case run(reasons: [String])
}

public struct PlannedStage: Sendable {
    public let name: String
    public let id: String
    public let action: PlannedAction
}

public struct RunSummary: Sendable {
    public var plan: [PlannedStage] = []
    /// Stages executed successfully, in completion order.
    public var executed: [String] = []
    public var relinked: [String] = []
    public var upToDate: [String] = []
    /// Stage → error description.
    public var failed: [String: String] = [:]
    /// Stages not executed because a stage they read failed.
    public var blocked: [String] = []
    /// Input files whose bytes were read to compute fingerprints (0 when the hash cache was warm).
    public var filesHashed = 0
    public var succeeded: Bool { failed.isEmpty && blocked.isEmpty }
}

public final class PipelineRunner: @unchecked Sendable {
    public let spec: PipelineSpec
    public let store: ArtifactStore
    public let toolVersion: String
    public let console: RunConsole
    public let partition: Partition
    /// Where stages execute (harmose: a worker process per stage; see StageWorker.swift).
    public let execution: StageExecution
    /// The MPI ranks running this pipeline together (RankedRun.swift), or the single process.
    public let group: any ProcessGroup
    /// Lines of the failing stage's log printed after a failure.
    public var logTailLines = 20

    public init(spec: PipelineSpec, outputs: URL, toolVersion: String, console: RunConsole, partition: Partition = .whole,
                execution: StageExecution = .inProcess, group: any ProcessGroup = SingleProcess.shared)
    {
        self.group = group
        self.spec = spec
        store = ArtifactStore(root: outputs)
        self.toolVersion = toolVersion
        self.console = console
        self.partition = partition
        self.execution = execution
    }

    private var hashCacheURL: URL { store.root.appendingPathComponent(".cache/content-hashes.tsv") }

    // MARK: Status

    /// Every stage's state, in topological order. Reads only (plus the hash cache).
    public func status() throws -> [StageStatus] {
        let hasher = ContentHasher(cacheURL: hashCacheURL, excluding: [store.root])
        let fingerprints = try computeFingerprints(spec, hasher: hasher)
        if FileManager.default.fileExists(atPath: store.root.path) { try? hasher.save() }
        return status(fingerprints)
    }

    func status(_ fingerprints: [String: StageFingerprint]) -> [StageStatus] {
        var states: [String: StageState] = [:]
        var out: [StageStatus] = []
        for name in spec.order {
            let stage = spec.stages[name]!
            let fp = fingerprints[name]!
            let latestID = store.latestID(stage: name)
            let latest = latestID.flatMap { store.manifest(stage: name, id: $0) }
            let failure = store.failure(stage: name)
            let state: StageState
            if store.hasArtifact(stage: name, id: fp.id) {
                state = latestID == fp.id ? .upToDate : .stored
            } else if let pid = store.builder(stage: name, id: fp.id) {
                state = .running(pid: pid)
            } else if let failure, failure.fingerprint == fp.full {
                state = .failed(error: failure.error)
            } else if let latest, let latestID {
                state = .stale(reasons: staleReasons(stage: stage, fingerprint: fp, latest: latest,
                                                     latestDirectory: store.artifactDirectory(stage: name, id: latestID),
                                                     upstreamStates: states))
            } else {
                state = .missing
            }
            states[name] = state
            out.append(StageStatus(name: name, kind: stage.kind.name, fingerprint: fp, state: state, latestID: latestID,
                                   latest: latest, failureLog: (failure?.fingerprint == fp.full) ? failure?.log : nil))
        }
        return out
    }

    // MARK: Planning

    func selectStages(_ options: RunOptions) throws -> Set<String> {
        for (flag, names) in [("--only", options.only), ("--until", options.until), ("--force", options.force)] {
            for n in names where spec.stages[n] == nil {
                throw PipelineError.unknownStage(n, context: "given to \(flag); stages: " + spec.order.joined(separator: ", "))
            }
        }
        if !options.only.isEmpty {
            return Set(options.only)
        }
        if !options.until.isEmpty {
            var selected = Set(options.until)
            for s in options.until { selected.formUnion(spec.ancestors(of: s)) }
            return selected
        }
        return Set(spec.order)
    }

    func plan(_ options: RunOptions, statuses: [StageStatus]) throws -> [PlannedStage] {
        let selected = try selectStages(options)
        let byName = Dictionary(uniqueKeysWithValues: statuses.map { ($0.name, $0) })
        var plan: [PlannedStage] = []
        for name in spec.order where selected.contains(name) {
            let st = byName[name]!
            for up in spec.stages[name]!.upstream where !selected.contains(up) {
                if !store.hasArtifact(stage: up, id: byName[up]!.fingerprint.id) {
                    throw PipelineError.upstreamNotReady(stage: name, upstream: up)
                }
            }
            let action: PlannedAction
            if options.force.contains(name) {
                action = .run(reasons: ["forced (--force)"])
            } else {
                switch st.state {
                case .upToDate: action = .upToDate
                case .stored: action = .relink
                default: action = .run(reasons: st.state.reasons)
                }
            }
            plan.append(PlannedStage(name: name, id: st.fingerprint.id, action: action))
        }
        return plan
    }

    // MARK: Running

    public func run(_ options: RunOptions) throws -> RunSummary {
        var lock: OutputsLock?
        var lockFailure: Error?
        if !options.dryRun, group.isRoot {
            do {
                lock = try OutputsLock.acquire(outputs: store.root, wait: options.wait) { console.message($0) }
                store.removeAbandonedTemporaries()
            } catch { lockFailure = error }
        }
        defer { lock?.release() }

        let hasher = ContentHasher(cacheURL: hashCacheURL, excluding: [store.root])
        let computed = lockFailure.map { Result.failure($0) } ?? Result { try computeFingerprints(spec, hasher: hasher) }
        if group.size > 1 { try agreeAcrossRanks(computed, checkOutputs: !options.dryRun) }
        let fingerprints = try computed.get()
        if !options.dryRun, group.isRoot { try hasher.save() }
        let statuses = status(fingerprints)
        var summary = RunSummary()
        summary.filesHashed = hasher.filesRead
        summary.plan = try plan(options, statuses: statuses)
        if group.size > 1 { try agreeOnPlan(summary.plan) }

        if options.dryRun {
            for p in summary.plan {
                switch p.action {
                case .upToDate: console.message("\(p.name): up to date (\(p.id))")
                case .relink: console.message("\(p.name): would relink stored version \(p.id)")
                case let .run(reasons): console.message("\(p.name): would run → \(p.id) (\(reasons.joined(separator: "; ")))")
                }
            }
            return summary
        }

        for p in summary.plan {
            switch p.action {
            case .upToDate:
                summary.upToDate.append(p.name)
                console.message("\(p.name): up to date (\(p.id))")
            case .relink:
                if group.isRoot {
                    try store.setLatest(stage: p.name, id: p.id)
                    store.clearFailure(stage: p.name)
                }
                summary.relinked.append(p.name)
                console.message("\(p.name): relinked stored version \(p.id)")
            case .run:
                break
            }
        }
        let toRun = summary.plan.filter { if case .run = $0.action { return true }; return false }
        if !toRun.isEmpty, group.size > 1 {
            // Ranks execute one stage at a time, each with the cores a single process would use.
            executeRanked(toRun, fingerprints: fingerprints, threads: max(1, options.cores), summary: &summary)
        } else if !toRun.isEmpty {
            execute(toRun, fingerprints: fingerprints, jobs: max(1, options.jobs),
                    cores: max(1, options.cores), summary: &summary)
        }

        let parts = [("ran", summary.executed.count), ("relinked", summary.relinked.count),
                     ("up to date", summary.upToDate.count), ("failed", summary.failed.count),
                     ("not run", summary.blocked.count)].filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }
        console.message("\(summary.succeeded ? "done" : "FAILED"): " + parts.joined(separator: ", "))
        return summary
    }

    /// Runs the planned stages: a stage starts once every stage it reads that is also in `toRun`
    /// has finished; a failure blocks exactly its descendants.
    private func execute(_ toRun: [PlannedStage], fingerprints: [String: StageFingerprint], jobs: Int, cores: Int,
                         summary: inout RunSummary)
    {
        let condition = NSCondition()
        var pending = toRun.map(\.name)
        let planned = Set(pending)
        var finished = Set<String>()
        var bad = Set<String>()  // failed or blocked
        // Shared with worker threads; guarded by `condition`.
        final class Shared: @unchecked Sendable {
            var running = 0
            var results: [(String, Result<Void, Error>)] = []
        }
        let shared = Shared()

        condition.lock()
        while true {
            // Collect finished work.
            for (name, result) in shared.results {
                switch result {
                case .success: finished.insert(name); summary.executed.append(name)
                case let .failure(e): bad.insert(name); summary.failed[name] = "\(e)"
                }
            }
            shared.results.removeAll()
            // Block dependents of failures; start ready stages, each with its share of the cores
            // among the stages running or ready now (at most `jobs`).
            let ready = pending.filter { name in
                spec.stages[name]!.upstream.filter { planned.contains($0) }.allSatisfy { finished.contains($0) }
            }.count
            let threads = max(1, cores / max(1, min(jobs, shared.running + ready)))
            var i = 0
            while i < pending.count {
                let name = pending[i]
                let ups = spec.stages[name]!.upstream.filter { planned.contains($0) }
                if let failedUp = ups.first(where: { bad.contains($0) }) {
                    bad.insert(name)
                    summary.blocked.append(name)
                    console.message("\(name): not run (upstream '\(failedUp)' did not complete)")
                    pending.remove(at: i)
                    i = 0  // a newly blocked stage may block others earlier in the list
                    continue
                }
                if shared.running < jobs, ups.allSatisfy({ finished.contains($0) }) {
                    pending.remove(at: i)
                    shared.running += 1
                    let fp = fingerprints[name]!
                    let reasons: [String] = {
                        if case let .run(r) = toRun.first(where: { $0.name == name })!.action { return r }
                        return []
                    }()
                    let thread = Thread { [self] in
                        let result = Result {
                            try self.executeStage(name, fingerprint: fp, fingerprints: fingerprints, reasons: reasons, threads: threads)
                        }
                        condition.lock()
                        shared.results.append((name, result))
                        shared.running -= 1
                        condition.signal()
                        condition.unlock()
                    }
                    thread.stackSize = 16 << 20
                    thread.start()
                    continue
                }
                i += 1
            }
            if pending.isEmpty && shared.running == 0 && shared.results.isEmpty { break }
            // Wake twice a second so the live display's elapsed times and ETAs keep moving even
            // for stages that report progress rarely.
            if shared.results.isEmpty, !condition.wait(until: Date().addingTimeInterval(0.5)) { console.tick() }
        }
        condition.unlock()
    }

    /// Executes one stage into a temporary directory and publishes it. Runs on a thread of its
    /// own, which runs the kind itself or waits for the stage's worker process.
    func executeStage(_ name: String, fingerprint fp: StageFingerprint, fingerprints: [String: StageFingerprint],
                      reasons: [String], threads: Int) throws
    {
        let (tmp, reporter) = try startStage(name, fingerprint: fp)
        let context = stageContext(name, fingerprints: fingerprints, outputDirectory: tmp, partition: partition,
                                   threads: threads, reporter: reporter)
        let start = Date()
        announce(name, fingerprint: fp, reasons: reasons, context: context, reporter: reporter)
        console.stageStarted(name)
        let metrics: [String: JSONValue]
        do {
            metrics = try runKind(name, context: context, temporary: tmp, reporter: reporter)
        } catch {
            console.stageFinished(name)
            failStage(name, fingerprint: fp, error: ErrorText.describe(error), temporary: tmp, reporter: reporter, elapsed: Date().timeIntervalSince(start))
            throw error
        }
        let end = Date()
        console.stageFinished(name)
        reporter.writeLog("finished in \(formatDuration(end.timeIntervalSince(start)))")
        reporter.close()
        try storeArtifact(name, fingerprint: fp, temporary: tmp, metrics: metrics, start: start, end: end, partition: partition)
    }

    /// A fresh temporary directory for one execution of a stage, with its log reporter.
    func startStage(_ name: String, fingerprint fp: StageFingerprint) throws -> (URL, RunnerStageReporter) {
        let stageDir = store.stageDirectory(name)
        try FileManager.default.createDirectory(at: stageDir, withIntermediateDirectories: true)
        let tmp = stageDir.appendingPathComponent(".tmp-\(fp.id)-\(getpid())-\(UInt32.random(in: 0 ... .max))", isDirectory: true)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        return (tmp, RunnerStageReporter(stage: name, console: console, logURL: tmp.appendingPathComponent(ArtifactStore.logName)))
    }

    /// What a stage sees: its parameters and resolved inputs, writing into `outputDirectory`.
    func stageContext(_ name: String, fingerprints: [String: StageFingerprint], outputDirectory: URL, partition: Partition,
                      threads: Int, group: any ProcessGroup = SingleProcess.shared, reporter: StageReporter) -> StageContext {
        let stage = spec.stages[name]!
        var inputs: [String: [URL]] = [:]
        for (input, refs) in stage.inputs {
            inputs[input] = refs.map { ref in
                switch ref {
                case let .path(p): return spec.resolve(path: p)
                case let .stage(up): return store.artifactDirectory(stage: up, id: fingerprints[up]!.id)
                }
            }
        }
        return StageContext(stageName: name, parameters: stage.parameters, inputs: inputs, outputDirectory: outputDirectory,
                            partition: partition, threads: threads, group: group, reporter: reporter)
    }

    /// The console line and the log header of a starting stage.
    func announce(_ name: String, fingerprint fp: StageFingerprint, reasons: [String], context: StageContext,
                  reporter: RunnerStageReporter) {
        let stage = spec.stages[name]!
        console.message("\(name): running \(stage.kind.name) (\(reasons.joined(separator: "; ")))")
        reporter.writeLog("stage \(name), kind \(stage.kind.name) v\(stage.kind.artifactVersion), fingerprint \(fp.full)")
        if let code = stage.codeIdentity { reporter.writeLog("code \(code.module) \(code.digest)") }
        reporter.writeLog("threads \(context.threads), partition \(context.partition.rank)/\(context.partition.size)")
        reporter.writeLog("params \(stage.parameters.json.canonicalString)")
        for (input, urls) in context.inputs.sorted(by: { $0.key < $1.key }) {
            reporter.writeLog("input \(input): " + urls.map(\.path).joined(separator: ", "))
        }
    }

    /// Runs the stage's kind where `execution` says (in this process or a worker process).
    func runKind(_ name: String, context: StageContext, temporary tmp: URL, reporter: RunnerStageReporter) throws -> [String: JSONValue] {
        let stage = spec.stages[name]!
        switch execution {
        case .inProcess:
            return try stage.kind.run(context)
        case let .workerProcess(executable, arguments):
            let job = StageJob(stage: name, kind: stage.kind.name, parameters: stage.parameters, inputs: context.inputs,
                               output: tmp, partition: context.partition, threads: context.threads)
            let jobFile = store.stageDirectory(name).appendingPathComponent(".job" + tmp.lastPathComponent.dropFirst(".tmp".count) + ".json")
            return try runInWorker(job, jobFile: jobFile, executable: executable, arguments: arguments, reporter: reporter)
        }
    }

    /// Records a failed execution (failed.json and failed.log), removes its temporary directory
    /// and prints the end of its log.
    func failStage(_ name: String, fingerprint fp: StageFingerprint, error: String, temporary tmp: URL,
                   reporter: RunnerStageReporter, elapsed: Double) {
        reporter.writeLog("FAILED after \(formatDuration(elapsed)): \(error)")
        reporter.close()
        let logURL = tmp.appendingPathComponent(ArtifactStore.logName)
        try? store.recordFailure(stage: name, fingerprint: fp.full, error: error, time: isoTimestamp(Date()), log: logURL)
        try? FileManager.default.removeItem(at: tmp)
        let logPath = store.stageDirectory(name).appendingPathComponent("failed.log")
        let tail = ((try? String(contentsOf: logPath, encoding: .utf8)) ?? "")
            .split(separator: "\n", omittingEmptySubsequences: false).suffix(logTailLines + 1)
            .map { "    " + $0 }.joined(separator: "\n")
        console.message("\(name): FAILED after \(formatDuration(elapsed)): \(error)\n  last lines of \(logPath.path):\n\(tail)")
    }

    /// Writes manifest.json into a finished temporary directory and publishes it as the stage's
    /// version `fp.id`. `partition`: rank 0 and the number of ranks that produced it.
    func storeArtifact(_ name: String, fingerprint fp: StageFingerprint, temporary tmp: URL, metrics: [String: JSONValue],
                       start: Date, end: Date, partition: Partition) throws {
        let stage = spec.stages[name]!
        let manifest: JSONValue = .object([
            ("format", 1),
            ("stage", .string(name)),
            ("kind", .string(stage.kind.name)),
            ("artifactVersion", .int(stage.kind.artifactVersion)),
            ("code", stage.codeIdentity.map { ["module": .string($0.module), "digest": .string($0.digest)] } ?? .null),
            ("fingerprint", .string(fp.full)),
            ("params", stage.parameters.json),
            ("inputs", .object(fp.inputRecords.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value)) })),
            ("metrics", .object(metrics.sorted { $0.key < $1.key })),
            ("startTime", .string(isoTimestamp(start))),
            ("endTime", .string(isoTimestamp(end))),
            ("durationSeconds", .double((end.timeIntervalSince(start) * 1000).rounded() / 1000)),
            ("harmoseVersion", .string(toolVersion)),
            ("host", .string(hostName())),
            ("pipeline", .string(spec.file.path)),
            ("partition", ["rank": .int(partition.rank), "size": .int(partition.size)]),
        ])
        do {
            try Data(inputIndexText(fp).utf8).write(to: tmp.appendingPathComponent(ArtifactStore.indexName))
            // The manifest goes in last: its presence is what makes a version complete.
            try Data(manifest.prettyString.utf8).write(to: tmp.appendingPathComponent(ArtifactStore.manifestName))
            try publish(tmp, stage: name, id: fp.id)
            try store.setLatest(stage: name, id: fp.id)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            console.message("\(name): FAILED while storing its artifact: \(ErrorText.describe(error))")
            throw error
        }
        store.clearFailure(stage: name)
        console.message("\(name): done in \(formatDuration(end.timeIntervalSince(start))) → \(store.artifactDirectory(stage: name, id: fp.id).path)")
    }

    /// Renames a finished temporary directory to its version folder, replacing a forced rebuild's
    /// previous copy (moved aside first, so the folder name never points at a partial tree).
    private func publish(_ tmp: URL, stage: String, id: String) throws {
        let final = store.artifactDirectory(stage: stage, id: id)
        var old: URL?
        if FileManager.default.fileExists(atPath: final.path) {
            let aside = store.stageDirectory(stage).appendingPathComponent(".old-\(id)-\(getpid())")
            guard rename(final.path, aside.path) == 0 else { throw posixError("rename", final.path) }
            old = aside
        }
        guard rename(tmp.path, final.path) == 0 else { throw posixError("rename", tmp.path) }
        if let old { try? FileManager.default.removeItem(at: old) }
    }
}

/// Deletes all but the `keep` newest versions of every stage under `outputs` (the one `latest`
/// points to is always kept). Takes the lock so it never deletes what a running runner reads.
public func collectGarbage(outputs: URL, keep: Int, dryRun: Bool, wait: Bool, console: RunConsole) throws -> [ArtifactStore.Removal] {
    let store = ArtifactStore(root: outputs)
    let lock = try OutputsLock.acquire(outputs: store.root, wait: wait) { console.message($0) }
    defer { lock.release() }
    let removals = store.collectable(keep: max(1, keep))
    for r in removals {
        if !dryRun { try store.remove(r) }
        console.message("\(dryRun ? "would remove" : "removed") \(store.artifactDirectory(stage: r.stage, id: r.id).path)")
    }
    // Folders and files left by killed runs: listed by --dry-run exactly as gc removes them.
    for url in store.abandonedTemporaries() {
        if !dryRun { try? FileManager.default.removeItem(at: url) }
        console.message("\(dryRun ? "would remove" : "removed") \(url.path) (left by a killed run)")
    }
    return removals
}
