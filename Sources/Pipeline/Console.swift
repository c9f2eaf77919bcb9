// What a run prints. On a terminal: a live block with one line per running stage (bar, items
// done/total, ETA) redrawn in place under the permanent messages. Otherwise (CI, `| tee`, cron):
// plain timestamped lines, with progress only every 10 % or 30 s so logs stay readable.
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class RunConsole: @unchecked Sendable {
    private struct Running {
        var done = 0
        var total = 0
        let started: Date
        var lastPlainDecile = -1
        var lastPlainTime: Date
    }

    private let lock = NSLock()
    private let write: @Sendable (String) -> Void
    public let isTerminal: Bool
    public let verbose: Bool
    private var running: [(String, Running)] = []
    private var drawnLines = 0
    private var lastDraw = Date.distantPast

    /// `write` receives every piece of text (default: stdout, unbuffered).
    public init(isTerminal: Bool = isatty(STDOUT_FILENO) == 1, verbose: Bool = false,
                write: @escaping @Sendable (String) -> Void = writeStandardOutput)
    {
        self.isTerminal = isTerminal
        self.verbose = verbose
        self.write = write
    }

    /// A permanent line (printed above the live block).
    public func message(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        if isTerminal {
            write(clearBlock() + text + "\n" + renderBlock())
        } else {
            write(text + "\n")
        }
    }

    func stageStarted(_ stage: String) {
        lock.lock(); defer { lock.unlock() }
        running.append((stage, Running(started: Date(), lastPlainTime: Date())))
        if isTerminal { write(clearBlock() + renderBlock()) }
    }

    func stageFinished(_ stage: String) {
        lock.lock(); defer { lock.unlock() }
        running.removeAll { $0.0 == stage }
        if isTerminal { write(clearBlock() + renderBlock()) }
    }

    func progress(_ stage: String, done: Int, total: Int) {
        lock.lock(); defer { lock.unlock() }
        guard let i = running.firstIndex(where: { $0.0 == stage }) else { return }
        running[i].1.done = done
        running[i].1.total = total
        let now = Date()
        if isTerminal {
            // Redraw at most 10 times a second: a per-item call must stay cheap.
            guard now.timeIntervalSince(lastDraw) >= 0.1 || done == total else { return }
            lastDraw = now
            write(clearBlock() + renderBlock())
        } else {
            let decile = total > 0 ? done * 10 / total : 0
            let r = running[i].1
            guard decile > r.lastPlainDecile || now.timeIntervalSince(r.lastPlainTime) >= 30 else { return }
            running[i].1.lastPlainDecile = decile
            running[i].1.lastPlainTime = now
            write("[\(stage)] " + progressText(r, now: now) + "\n")
        }
    }

    /// Redraws the live block (terminal only), so times advance between progress reports.
    func tick() {
        lock.lock(); defer { lock.unlock() }
        guard isTerminal, !running.isEmpty else { return }
        write(clearBlock() + renderBlock())
    }

    private func clearBlock() -> String {
        guard drawnLines > 0 else { return "" }
        let s = "\u{1B}[\(drawnLines)A\r\u{1B}[J"
        drawnLines = 0
        return s
    }

    private func renderBlock() -> String {
        let now = Date()
        var out = ""
        let width = running.map(\.0.count).max() ?? 0
        for (stage, r) in running {
            let name = stage.padding(toLength: width, withPad: " ", startingAt: 0)
            var bar = ""
            if r.total > 0 {
                let filled = min(20, r.done * 20 / r.total)
                bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 20 - filled) + "] "
            }
            out += "  \(name)  \(bar)\(progressText(r, now: now))\n"
        }
        drawnLines = running.count
        return out
    }

    private func progressText(_ r: Running, now: Date) -> String {
        StageAPI.progressText(done: r.done, total: r.total, elapsed: now.timeIntervalSince(r.started))
    }
}

/// Writes text to file descriptor 1 at once (no stdio buffer, which is process-global state).
@Sendable public func writeStandardOutput(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}


/// The reporter a running stage gets: log lines go to its log.txt (and the console when verbose),
/// progress to the console and, every 10 %, to the log.
final class RunnerStageReporter: StageReporter, @unchecked Sendable {
    private let stage: String
    private let console: RunConsole
    private var logHandle: FileHandle?
    private let lock = NSLock()
    private var lastLoggedDecile = -1
    private var lastTotal = 0

    init(stage: String, console: RunConsole, logURL: URL) {
        self.stage = stage
        self.console = console
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        logHandle = try? FileHandle(forWritingTo: logURL)
        super.init()
    }

    override func log(_ message: String) {
        writeLog(message)
        if console.verbose { console.message("[\(stage)] \(message)") }
    }

    override func progress(done: Int, total: Int) {
        console.progress(stage, done: done, total: total)
        let decile = total > 0 ? done * 10 / total : 0
        lock.lock()
        let shouldLog = decile != lastLoggedDecile || total != lastTotal
        lastLoggedDecile = decile
        lastTotal = total
        lock.unlock()
        if shouldLog { writeLog("progress \(done)/\(total)") }
    }

    func writeLog(_ message: String) {
        let stamp = isoTimestamp(Date())
        let text = message.split(separator: "\n", omittingEmptySubsequences: false).map { "\(stamp) \($0)\n" }.joined()
        lock.lock(); defer { lock.unlock() }
        logHandle?.write(Data(text.utf8))
    }

    func close() {
        lock.lock(); defer { lock.unlock() }
        try? logHandle?.synchronize()
        try? logHandle?.close()
        logHandle = nil
    }
}
