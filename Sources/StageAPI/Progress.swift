// Progress reporting, defined once: how a duration and a "done/total, ETA" status read, and the
// one-line terminal progress bar the CLI commands draw on stderr. The runner's live display
// (Pipeline.RunConsole) and the worker protocol use the same text.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// "0.4 s", "12 s", "3:05", "1:02:03".
public func formatDuration(_ seconds: Double) -> String {
    if seconds < 10 { return String(format: "%.1f s", max(0, seconds)) }
    let s = Int(seconds.rounded())
    if s < 60 { return "\(s) s" }
    if s < 3600 { return String(format: "%d:%02d", s / 60, s % 60) }
    return String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
}

/// "7/20 (35%), ETA 1:05" while running; "20/20 (100%), 3:10" when done; "running, 12 s" without
/// a total.
public func progressText(done: Int, total: Int, elapsed: Double) -> String {
    guard total > 0 else { return "running, \(formatDuration(elapsed))" }
    let percent = Int((Double(done) / Double(total) * 100).rounded(.down))
    var text = "\(done)/\(total) (\(percent)%)"
    if done > 0, done < total {
        text += ", ETA " + formatDuration(elapsed * Double(total - done) / Double(done))
    } else {
        text += ", \(formatDuration(elapsed))"
    }
    return text
}

/// A one-line progress bar on stderr, redrawn in place on a terminal (at most 5 times a second)
/// and silent elsewhere, where callers print plain lines.
public final class TerminalProgress: @unchecked Sendable {
    public let isTerminal: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false
    private let lock = NSLock()

    public init(isTerminal: Bool = isatty(STDERR_FILENO) == 1) { self.isTerminal = isTerminal }

    public func update(done: Int, total: Int, suffix: String = "") {
        guard isTerminal, total > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let width = 24, filled = min(width, width * done / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = "\r\u{1B}[K[\(bar)] " + progressText(done: done, total: total, elapsed: now.timeIntervalSince(started))
            + (suffix.isEmpty ? "" : "  " + suffix)
        FileHandle.standardError.write(Data(text.utf8))
        drawn = true
    }

    /// A permanent line on stdout; on a terminal the bar is cleared first (the next update redraws it).
    public func message(_ line: String) {
        finish()
        print(line)
        fflush(nil)  // every C stream, stdout included, without touching the global `stdout`
    }

    /// Clears the bar (before a permanent line, or at the end).
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        if isTerminal && drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); drawn = false }
    }
}
