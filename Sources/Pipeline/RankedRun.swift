// `harmose run` under mpirun/srun: every rank runs the same runner; they agree on the inputs and
// the plan, then execute the planned stages one after another (no --jobs), each according to its
// kind's `rankParallelism`:
//   .perStructure  every rank runs the kind on its partition into its own temporary directory
//                  (in the rank's worker process, like any stage; workers never initialise MPI);
//                  rank 0 moves the per-item files together, the kind merges its tables, and rank
//                  0 publishes one artifact equal to a single process's (manifest and log aside);
//   .collective    every rank runs the kind in its own process (the group's communicator lives
//                  there) with the group: data-parallel training; rank 0's directory is the artifact;
//   .rootOnly      rank 0 runs it as a single process would; the others wait.
// A failure on any rank fails the stage on every rank with the failing rank's message; rank 0
// records it (failed.json) and nothing is published. Only rank 0 holds the outputs lock, writes
// manifests and moves `latest`. Ranks must share outputs/ and see the same input files: both are
// checked before anything runs, with an error naming the rank and the stage.
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stage failure as every rank reports it.
struct RankedStageError: Error, CustomStringConvertible {
    let description: String
}

extension PipelineRunner {
    /// Fails on every rank unless each computed the same fingerprints (same inputs, same
    /// pipeline) and, when `checkOutputs`, sees rank 0's outputs/ folder.
    func agreeAcrossRanks(_ computed: Result<[String: StageFingerprint], Error>, checkOutputs: Bool) throws {
        let mine: String
        switch computed {
        case let .success(fps): mine = "ok\n" + spec.order.map { "\($0)\t\(fps[$0]!.full)" }.joined(separator: "\n")
        case let .failure(error): mine = "error\n\(error)"
        }
        let all = group.allGather(mine, patient: true)
        if let r = all.firstIndex(where: { $0.hasPrefix("error\n") }) {
            throw RankedStageError(description: "rank \(r) of \(group.size): " + all[r].dropFirst(6))
        }
        for r in 1 ..< all.count where all[r] != all[0] {
            let here = all[0].split(separator: "\n"), there = all[r].split(separator: "\n")
            let stage = zip(here, there).first { $0 != $1 }.map { String($0.0.split(separator: "\t")[0]) } ?? "?"
            throw PipelineError.io(path: spec.file.path, reason: "rank \(r) of \(group.size) sees different inputs than rank 0 for stage '\(stage)' (its input files or parameters differ): every rank must read the same files, e.g. from a shared file system")
        }
        guard checkOutputs else { return }
        // Rank 0 leaves a token in outputs/; every other rank must see it.
        let token = store.root.appendingPathComponent(".rank-check-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        if group.isRoot { _ = FileManager.default.createFile(atPath: token.path, contents: Data(hostName().utf8)) }
        let name = String(decoding: group.broadcast(Array(token.lastPathComponent.utf8)), as: UTF8.self)
        let seen = FileManager.default.fileExists(atPath: store.root.appendingPathComponent(name).path)
        let answers = group.allGather(seen ? "" : hostName())
        if group.isRoot { try? FileManager.default.removeItem(at: token) }
        if let r = answers.firstIndex(where: { !$0.isEmpty }) {
            throw PipelineError.io(path: store.root.path, reason: "rank \(r) (host \(answers[r])) does not see rank 0's outputs folder: run from a file system every rank shares")
        }
    }

    /// Every rank planned before any executes (a rank's temporary directory would otherwise
    /// look like another process building the stage), and all planned the same.
    func agreeOnPlan(_ plan: [PlannedStage]) throws {
        let mine = plan.map { p -> String in
            switch p.action {
            case .upToDate: return "\(p.name) up-to-date"
            case .relink: return "\(p.name) relink"
            case .run: return "\(p.name) run"
            }
        }.joined(separator: "\n")
        let all = group.allGather(mine, patient: true)
        if let r = all.firstIndex(where: { $0 != all[0] }) {
            throw PipelineError.io(path: store.root.path, reason: "rank \(r) of \(group.size) planned differently from rank 0 (it sees other artifacts in outputs/): every rank must share the outputs folder")
        }
    }

    /// Executes the planned stages in plan order on every rank; a failure blocks exactly its
    /// descendants, as in a single-process run. Every rank reaches the same verdicts.
    func executeRanked(_ toRun: [PlannedStage], fingerprints: [String: StageFingerprint], threads: Int, summary: inout RunSummary) {
        let planned = Set(toRun.map(\.name))
        var bad = Set<String>()
        for p in toRun {
            let ups = spec.stages[p.name]!.upstream.filter { planned.contains($0) }
            if let failedUp = ups.first(where: { bad.contains($0) }) {
                bad.insert(p.name)
                summary.blocked.append(p.name)
                console.message("\(p.name): not run (upstream '\(failedUp)' did not complete)")
                continue
            }
            let reasons: [String] = { if case let .run(r) = p.action { return r }; return [] }()
            do {
                try executeStageRanked(p.name, fingerprint: fingerprints[p.name]!, fingerprints: fingerprints, reasons: reasons, threads: threads)
                summary.executed.append(p.name)
            } catch {
                bad.insert(p.name)
                summary.failed[p.name] = "\(error)"
            }
        }
    }

    private func executeStageRanked(_ name: String, fingerprint fp: StageFingerprint, fingerprints: [String: StageFingerprint],
                                    reasons: [String], threads: Int) throws {
        let kind = spec.stages[name]!.kind
        if kind.rankParallelism == .rootOnly {
            var failure = ""
            if group.isRoot {
                do { try executeStage(name, fingerprint: fp, fingerprints: fingerprints, reasons: reasons, threads: threads) } catch { failure = "\(error)" }
            }
            let verdict = String(decoding: group.broadcast(Array(failure.utf8), patient: true), as: UTF8.self)
            if !verdict.isEmpty { throw RankedStageError(description: verdict) }
            return
        }

        // Every rank gets its own temporary directory (for its log, and for its share of a
        // per-structure kind). A collective kind writes into rank 0's (only rank 0 writes, the
        // others read back what it wrote, e.g. the best checkpoint).
        let start = Date()
        let collective = kind.rankParallelism == .collective
        var metrics: [String: JSONValue] = [:]
        var failure: String?
        var started: (URL, RunnerStageReporter)?
        do { started = try startStage(name, fingerprint: fp) } catch { failure = "\(error)" }
        var outputDirectory = started?.0
        if collective {
            let rootPath = String(decoding: group.broadcast(Array((started?.0.path ?? "").utf8)), as: UTF8.self)
            outputDirectory = rootPath.isEmpty ? nil : URL(fileURLWithPath: rootPath)
            if outputDirectory == nil, failure == nil { failure = "rank 0 could not create the stage's temporary folder" }
        }
        if failure == nil, let (tmp, reporter) = started, let outputDirectory {
            do {
                let context = stageContext(name, fingerprints: fingerprints, outputDirectory: outputDirectory, partition: group.partition,
                                           threads: threads, group: collective ? group : SingleProcess.shared, reporter: reporter)
                announce(name, fingerprint: fp, reasons: reasons + ["rank \(group.rank) of \(group.size)"], context: context, reporter: reporter)
                console.stageStarted(name)
                defer { console.stageFinished(name) }
                if collective {
                    metrics = try group.failingTogether { try kind.run(context) }
                } else {
                    metrics = try runKind(name, context: context, temporary: tmp, reporter: reporter)
                }
            } catch {
                failure = "\(error)"
            }
        }
        let mine: JSONValue = .object([
            ("error", failure.map { .string($0) } ?? .null),
            ("directory", .string(started?.0.path ?? "")),
            ("metrics", .object(metrics.sorted { $0.key < $1.key })),
        ])
        let all = group.allGather(mine.canonicalString, patient: true).map { try? JSONValue.parse($0) }
        if let r = all.firstIndex(where: { $0?["error"]?.stringValue != nil || $0 == nil }) {
            let message = "rank \(r) of \(group.size): " + (all[r]?["error"]?.stringValue ?? "sent an unreadable status")
            if let (tmp, reporter) = started {
                if group.isRoot {
                    failStage(name, fingerprint: fp, error: message, temporary: tmp, reporter: reporter, elapsed: Date().timeIntervalSince(start))
                } else {
                    reporter.close()
                    try? FileManager.default.removeItem(at: tmp)
                }
            }
            throw RankedStageError(description: message)
        }
        let (tmp, reporter) = started!
        let end = Date()
        reporter.writeLog("finished in \(formatDuration(end.timeIntervalSince(start)))")
        reporter.close()

        // Rank 0 assembles and publishes; the others wait for its verdict, then clean up.
        var verdict = ""
        if group.isRoot {
            do {
                var merged = metrics
                if kind.rankParallelism == .perStructure {
                    let parts = all.enumerated().map { r, status in
                        StagePart(rank: r, directory: URL(fileURLWithPath: status!["directory"]!.stringValue!),
                                  metrics: status!["metrics"]!.objectValue.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) } ?? [:])
                    }
                    for part in parts.dropFirst() { try moveItems(from: part.directory, into: tmp, rank: part.rank) }
                    merged = try kind.merge(parts)
                }
                for (r, status) in all.enumerated().dropFirst() {
                    try appendLog(of: StagePart(rank: r, directory: URL(fileURLWithPath: status!["directory"]!.stringValue!), metrics: [:]), to: tmp)
                }
                try storeArtifact(name, fingerprint: fp, temporary: tmp, metrics: merged, start: start, end: end,
                                  partition: Partition(rank: 0, size: group.size))
            } catch {
                verdict = "\(error)"
                failStage(name, fingerprint: fp, error: "merging the ranks' outputs: \(error)", temporary: tmp,
                          reporter: reporter, elapsed: Date().timeIntervalSince(start))
            }
        }
        let answer = String(decoding: group.broadcast(Array(verdict.utf8), patient: true), as: UTF8.self)
        if !group.isRoot { try? FileManager.default.removeItem(at: tmp) }
        if !answer.isEmpty { throw RankedStageError(description: "rank 0 of \(group.size): merging the ranks' outputs: \(answer)") }
    }

    /// Moves what a rank wrote into rank 0's directory: folders merge, files move; a file both
    /// wrote (an index table, the log) stays for the kind's merge.
    private func moveItems(from source: URL, into destination: URL, rank: Int) throws {
        let fm = FileManager.default
        for entry in try fm.contentsOfDirectory(atPath: source.path) {
            let from = source.appendingPathComponent(entry), to = destination.appendingPathComponent(entry)
            var fromIsDir: ObjCBool = false, toIsDir: ObjCBool = false
            _ = fm.fileExists(atPath: from.path, isDirectory: &fromIsDir)
            if fm.fileExists(atPath: to.path, isDirectory: &toIsDir) {
                if fromIsDir.boolValue, toIsDir.boolValue { try moveItems(from: from, into: to, rank: rank) }
                continue
            }
            guard rename(from.path, to.path) == 0 else { throw posixError("rename (rank \(rank)'s output)", from.path) }
        }
    }

    /// Appends a rank's log to rank 0's, under a heading.
    private func appendLog(of part: StagePart, to destination: URL) throws {
        let log = (try? String(contentsOf: part.directory.appendingPathComponent(ArtifactStore.logName), encoding: .utf8)) ?? ""
        let handle = try FileHandle(forWritingTo: destination.appendingPathComponent(ArtifactStore.logName))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("--- rank \(part.rank) ---\n\(log)".utf8))
    }
}
