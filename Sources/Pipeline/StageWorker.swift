// Running one stage in a worker process. `harmose run` executes every stage as a child process of
// the same binary (`harmose stage-worker <job file>`, hidden): each stage then has its own process
// state — OpenBLAS's thread count, the autograd engine's switches, its heap — so stages running at
// once cannot change each other's numbers, and a stage that traps (a precondition, an overflow, a
// segfault in a C library) kills only its worker: the runner records it as that stage's failure,
// with the worker's stderr in the stage's log, and the unrelated stages finish.
//
// Protocol. The runner writes the job (stage, kind, normalised parameters, resolved inputs, output
// folder, partition, thread budget) as JSON beside the temporary output folder `.tmp-<id>-<pid>-<n>`
// (as `.job-<id>-<pid>-<n>.json`) and starts the worker with OPENBLAS_NUM_THREADS and
// OMP_NUM_THREADS set to the stage's thread budget. The worker prints progress and log lines on
// stdout (`\u{1E}progress <done> <total>`, `\u{1E}log <text>`; any other line is logged as is),
// writes its result — `{"metrics": {…}}` or `{"error": "…"}` — to `<job>.result.json`, and exits
// 0 on success, 1 on a thrown error. A worker killed by a signal leaves no result; the runner
// reports the signal. Rank and size (MPI) travel in the job's "partition"; the worker never
// initialises MPI itself.
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the runner executes a stage.
public enum StageExecution: Sendable {
    /// On a thread of the runner's process. Stages then share process-global state (OpenBLAS's
    /// thread count and the like) and a trap ends the runner: for tests' own kinds and `--jobs 1`
    /// library use.
    case inProcess
    /// In a worker process: `executable arguments… <job file>`, a program that calls
    /// `StageWorker.main(jobFile:registry:)` with the same registry (harmose: `stage-worker`).
    case workerProcess(executable: URL, arguments: [String])
}

/// One stage's job, as the runner hands it to a worker process.
public struct StageJob: Sendable {
    public var stage: String
    public var kind: String
    public var parameters: StageParameters
    public var inputs: [String: [URL]]
    public var output: URL
    public var partition: Partition
    public var threads: Int

    var json: JSONValue {
        .object([
            ("stage", .string(stage)),
            ("kind", .string(kind)),
            ("params", parameters.json),
            ("inputs", .object(inputs.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value.map { .string($0.path) })) })),
            ("output", .string(output.path)),
            ("partition", ["rank": .int(partition.rank), "size": .int(partition.size)]),
            ("threads", .int(threads)),
        ])
    }

    init(stage: String, kind: String, parameters: StageParameters, inputs: [String: [URL]], output: URL,
         partition: Partition, threads: Int)
    {
        self.stage = stage
        self.kind = kind
        self.parameters = parameters
        self.inputs = inputs
        self.output = output
        self.partition = partition
        self.threads = threads
    }

    init(json: JSONValue, file: String) throws {
        func field(_ key: String) throws -> JSONValue {
            guard let v = json[key] else { throw PipelineError.invalid(file: file, path: key, message: "missing in stage job") }
            return v
        }
        guard let stage = try field("stage").stringValue, let kind = try field("kind").stringValue,
              let params = try field("params").objectValue, let inputs = try field("inputs").objectValue,
              let output = try field("output").stringValue, let rank = try field("partition")["rank"]?.intValue,
              let size = try field("partition")["size"]?.intValue, size >= 1, (0 ..< size).contains(rank),
              let threads = try field("threads").intValue
        else { throw PipelineError.invalid(file: file, path: "(top level)", message: "malformed stage job") }
        self.stage = stage
        self.kind = kind
        parameters = StageParameters(Dictionary(params, uniquingKeysWith: { a, _ in a }))
        self.inputs = Dictionary(inputs.map { ($0.0, ($0.1.arrayValue ?? []).compactMap(\.stringValue).map { URL(fileURLWithPath: $0) }) },
                                 uniquingKeysWith: { a, _ in a })
        self.output = URL(fileURLWithPath: output, isDirectory: true)
        partition = Partition(rank: rank, size: size)
        self.threads = max(1, threads)
    }
}

/// Line prefix of protocol messages on a worker's stdout (ASCII record separator).
let workerMessagePrefix = "\u{1E}"

public enum StageWorker {
    /// The worker side: runs the job in `jobFile` with a kind from `registry` and returns the exit
    /// status. Writes `<jobFile>.result.json`.
    public static func main(jobFile: URL, registry: StageRegistry) -> Int32 {
        // Die with the runner: the runner holds the write end of our stdin open while we run, so
        // end-of-file there means it was killed, and a worker must not go on writing after that.
        let watchdog = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(STDIN_FILENO, &byte, 1)
                if n > 0 || (n < 0 && errno == EINTR) { continue }
                break
            }
            _exit(137)
        }
        watchdog.start()
        let resultURL = URL(fileURLWithPath: jobFile.path + ".result.json")
        func finish(_ result: JSONValue, _ status: Int32) -> Int32 {
            do { try AtomicOutput.write(Data(result.prettyString.utf8), to: resultURL) } catch {
                FileHandle.standardError.write(Data("stage worker: cannot write \(resultURL.path): \(error)\n".utf8))
                return 1
            }
            return status
        }
        let job: StageJob
        do {
            job = try StageJob(json: try JSONValue.parse(Data(contentsOf: jobFile)), file: jobFile.path)
        } catch {
            return finish(["error": .string("cannot read the stage job \(jobFile.path): \(error)")], 1)
        }
        guard let kind = registry.kind(named: job.kind) else {
            return finish(["error": .string("this harmose has no stage kind '\(job.kind)'")], 1)
        }
        let context = StageContext(stageName: job.stage, parameters: job.parameters, inputs: job.inputs,
                                   outputDirectory: job.output, partition: job.partition, threads: job.threads,
                                   reporter: WorkerReporter())
        do {
            let metrics = try kind.run(context)
            return finish(["metrics": .object(metrics.sorted { $0.key < $1.key })], 0)
        } catch {
            return finish(["error": .string(ErrorText.describe(error))], 1)
        }
    }
}

/// The worker's reporter: protocol lines on stdout, which the runner turns into log lines and progress.
final class WorkerReporter: StageReporter, @unchecked Sendable {
    private let lock = NSLock()

    private func send(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        writeStandardOutput(workerMessagePrefix + line + "\n")
    }

    override func log(_ message: String) {
        for line in message.split(separator: "\n", omittingEmptySubsequences: false) { send("log " + line) }
    }

    override func progress(done: Int, total: Int) { send("progress \(done) \(total)") }
}

/// A worker that ended without a result: killed by a signal or exited without writing one.
struct WorkerCrash: Error, CustomStringConvertible {
    let description: String
}

/// The runner side: runs `job` in a worker process and returns its metrics; throws the stage's
/// error, or a `WorkerCrash` naming the signal. The worker's stdout and stderr go to `reporter`.
func runInWorker(_ job: StageJob, jobFile: URL, executable: URL, arguments: [String], reporter: RunnerStageReporter) throws -> [String: JSONValue] {
    try Data(job.json.prettyString.utf8).write(to: jobFile)
    let resultURL = URL(fileURLWithPath: jobFile.path + ".result.json")
    defer {
        unlink(jobFile.path)
        unlink(resultURL.path)
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments + [jobFile.path]
    var environment = ProcessInfo.processInfo.environment
    environment["OPENBLAS_NUM_THREADS"] = String(job.threads)
    environment["OMP_NUM_THREADS"] = String(job.threads)
    // The same Dictionary and Set iteration order in every run: code that iterates a dictionary
    // (writing JSON keys, summing values) then gives the same bytes; owners still sort where
    // order matters, so results do not hang on this.
    environment["SWIFT_DETERMINISTIC_HASHING"] = "1"
    process.environment = environment
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    // Held open until the worker exits: its end-of-file tells the worker the runner died.
    let lifeline = Pipe()
    process.standardInput = lifeline
    try process.run()
    defer { try? lifeline.fileHandleForWriting.close() }

    // Both streams are drained on their own threads so a chatty worker never blocks on a full pipe.
    let group = DispatchGroup()
    func drain(_ handle: FileHandle, _ line: @escaping @Sendable (String) -> Void) {
        group.enter()
        let thread = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    line(String(decoding: pending[pending.startIndex ..< newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex ... newline)
                }
            }
            if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
            group.leave()
        }
        thread.start()
    }
    drain(out.fileHandleForReading) { text in
        guard text.hasPrefix(workerMessagePrefix) else { reporter.log(text); return }
        let body = text.dropFirst(workerMessagePrefix.count)
        if body.hasPrefix("progress ") {
            let numbers = body.dropFirst("progress ".count).split(separator: " ").compactMap { Int($0) }
            if numbers.count == 2 { reporter.progress(done: numbers[0], total: numbers[1]) }
        } else if body.hasPrefix("log ") {
            reporter.log(String(body.dropFirst("log ".count)))
        } else {
            reporter.log(String(body))
        }
    }
    // The first line of a Swift trap's message ("…/File.swift:12: Fatal error: …") names the
    // cause; it goes into the failure itself, the backtrace stays in the log.
    final class TrapMessage: @unchecked Sendable {
        let lock = NSLock()
        var line: String?
    }
    let trap = TrapMessage()
    drain(err.fileHandleForReading) { text in
        reporter.log("stderr: " + text)
        if ["Fatal error", "Precondition failed", "Assertion failed", "Illegal instruction", "Segmentation fault"].contains(where: text.contains) {
            trap.lock.lock()
            if trap.line == nil { trap.line = text.trimmingCharacters(in: .whitespaces) }
            trap.lock.unlock()
        }
    }
    process.waitUntilExit()
    group.wait()

    let result = (try? Data(contentsOf: resultURL)).flatMap { try? JSONValue.parse($0) }
    if process.terminationReason == .uncaughtSignal {
        let signal = process.terminationStatus
        let name = String(cString: strsignal(signal))
        let cause = trap.line.map { ": \($0)" }
            ?? (signal == SIGILL || signal == SIGTRAP ? " — a trap (failed precondition, overflow or fatal error)" : "")
        throw WorkerCrash(description: "stage worker crashed: signal \(signal) (\(name))\(cause); the backtrace is in the log")
    }
    if let metrics = result?["metrics"]?.objectValue, process.terminationStatus == 0 {
        return Dictionary(metrics, uniquingKeysWith: { a, _ in a })
    }
    if let error = result?["error"]?.stringValue { throw WorkerCrash(description: error) }
    throw WorkerCrash(description: "stage worker exited with status \(process.terminationStatus) without a result; see the log")
}
