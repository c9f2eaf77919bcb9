// Timings.swift: the wall-clock record of a train or refine run, `timings.jsonl` beside its
// outputs (StageAPI's `StageContext.timingsFileName`; in a pipeline version folder it is part of the
// run record with log.txt and manifest.json, not of the artifact's content). One line per epoch:
// its duration, the run's training time so far and the throughput.
//
// Why a file of its own: checkpoints, learning curves and metrics.json hold only what the inputs,
// parameters and code determine, so two runs write the same bytes (ReproducibilityTests). The
// elapsed training time a `--resume` needs for `max_seconds` (and for a time-based learning-rate
// schedule) is read back from here.
import Foundation
import StageAPI

/// One epoch's wall-clock numbers.
struct EpochTiming {
    var epoch: Int
    /// Seconds of this epoch (training, validation and checkpoints).
    var epochSeconds: Double
    /// Training seconds of the run up to the end of this epoch, earlier sessions of a resumed run included.
    var elapsedSeconds: Double
    /// Training structures and edges of the epoch (throughput = these ÷ epochSeconds).
    var structures: Int
    var edges: Int

    /// One JSON line, keys sorted.
    var line: String {
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        let perSecond = max(epochSeconds, 1e-9)
        var fields = [
            ("elapsed_seconds", number(elapsedSeconds)), ("epoch", "\(epoch)"), ("epoch_seconds", number(epochSeconds)),
            ("structures_per_second", number(Double(structures) / perSecond)),
        ]
        if edges > 0 { fields.insert(("edges_per_second", number(Double(edges) / perSecond)), at: 0) }
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}\n"
    }
}

/// timings.jsonl of an output folder.
struct TimingsFile {
    let url: URL

    init(directory: URL) { url = directory.appendingPathComponent(StageContext.timingsFileName) }

    /// The lines of epochs ≤ `epoch` (all when nil), with their epoch and elapsed time.
    private func entries() -> [(line: Substring, epoch: Int, elapsed: Double?)] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONValue.parse(Data(line.utf8)), let e = obj["epoch"]?.intValue else { return nil }
            return (line, e, obj["elapsed_seconds"]?.doubleValue)
        }
    }

    /// A new run: no earlier timings.
    func reset() { try? FileManager.default.removeItem(at: url) }

    /// A resumed run: keeps the lines of epochs ≤ `epoch` and returns the training time through
    /// that epoch (nil when the file or that epoch's line is missing).
    func resume(after epoch: Int) throws -> Double? {
        let kept = entries().filter { $0.epoch <= epoch }
        try AtomicOutput.write(Data(kept.map { $0.line + "\n" }.joined().utf8), to: url)
        return kept.last { $0.epoch == epoch }?.elapsed
    }

    func append(_ timing: EpochTiming) throws {
        let data = Data(timing.line.utf8)
        if let handle = try? FileHandle(forWritingTo: url) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: data)
        } else {
            try data.write(to: url)
        }
    }
}
