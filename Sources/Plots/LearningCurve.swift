// Learning curves from training logs: one JSON object per line and epoch, e.g.
// {"epoch": 3, "train_loss": 0.12, "val_loss": 0.15, "lr": 0.001, "elapsed_s": 41.2}.
// Every numeric key is kept; loss-like keys are plotted (log y), the best validation epoch marked.
import Foundation

public struct LearningCurve: Sendable, Equatable {
    public struct Epoch: Sendable, Equatable {
        public var epoch: Int
        /// Every numeric field of the line except `epoch`.
        public var values: [String: Double]
        public init(epoch: Int, values: [String: Double]) { self.epoch = epoch; self.values = values }
    }

    public var epochs: [Epoch]
    public init(epochs: [Epoch]) { self.epochs = epochs }

    /// Parses JSON lines; blank lines are skipped. Errors name the file, the line and the key.
    public static func parse(_ text: String, file: String = "learning_curve.jsonl") throws -> LearningCurve {
        var epochs: [Epoch] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let field = "line \(n + 1)"
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw PlotError(file: file, field: field, message: "not a JSON object")
            }
            guard let e = object["epoch"] as? NSNumber, e.doubleValue == e.doubleValue.rounded() else {
                throw PlotError(file: file, field: "\(field): epoch", message: "missing or not an integer")
            }
            var values: [String: Double] = [:]
            for (key, value) in object where key != "epoch" {
                // Booleans arrive as NSNumber too (objCType "c", which JSON numbers never get);
                // only real numbers are series.
                guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { continue }
                let v = number.doubleValue
                guard v.isFinite else { throw PlotError(file: file, field: "\(field): \(key)", message: "non-finite value") }
                values[key] = v
            }
            epochs.append(Epoch(epoch: e.intValue, values: values))
        }
        return LearningCurve(epochs: epochs)
    }

    public static func read(_ url: URL) throws -> LearningCurve {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PlotError(file: url.path, message: "cannot read: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw PlotError(file: url.path, message: "not UTF-8 text") }
        return try parse(text, file: url.path)
    }

    /// Keys present in any epoch, sorted.
    public var keys: [String] { Array(Set(epochs.flatMap(\.values.keys))).sorted() }

    /// Keys plotted by default: those containing "loss" or "mae" (train before val).
    public var lossKeys: [String] {
        keys.filter { $0.contains("loss") || $0.contains("mae") }
            .sorted { ($0.hasPrefix("train") ? 0 : 1, $0) < ($1.hasPrefix("train") ? 0 : 1, $1) }
    }

    /// (epoch, value) of one key, in file order, epochs lacking it skipped.
    public func series(_ key: String) -> [(x: Double, y: Double)] {
        epochs.compactMap { e in e.values[key].map { (x: Double(e.epoch), y: $0) } }
    }

    /// Epoch with the smallest value of `key` (first one on ties).
    public func best(_ key: String) -> (epoch: Int, value: Double)? {
        var best: (Int, Double)?
        for e in epochs { if let v = e.values[key], best == nil || v < best!.1 { best = (e.epoch, v) } }
        return best
    }

    /// The chart: `keys` (default `lossKeys`) against epoch, log y unless a value is ≤ 0, and a
    /// dashed marker at the best epoch of the first key starting with "val".
    public func chart(keys chosen: [String]? = nil, title: String = "Learning curve", logY: Bool = true) -> LineChart {
        let keys = chosen ?? lossKeys
        var chart = LineChart(title: title, xLabel: "epoch", yLabel: keys.count == 1 ? keys[0] : "loss")
        chart.series = keys.map { key in
            Series(name: key, points: series(key), style: key.hasPrefix("val") ? .dashed : .solid,
                   markers: epochs.count <= 30)
        }
        chart.logY = logY && chart.series.allSatisfy { $0.points.allSatisfy { $0.y > 0 } }
        chart.grid = true
        if let val = keys.first(where: { $0.hasPrefix("val") }), let b = best(val) {
            chart.verticalMarkers = [VerticalMarker(x: Double(b.epoch), label: "best \(val) @ \(b.epoch)", style: .dotted, color: "#555")]
        }
        let epochNumbers = epochs.map { Double($0.epoch) }
        if let lo = epochNumbers.min(), let hi = epochNumbers.max() {
            chart.xRange = lo ... (hi > lo ? hi : lo + 1)
        }
        return chart
    }

    /// Reads `jsonl` and writes its chart to `svg`.
    public static func plot(jsonLines url: URL, to svg: URL, title: String = "Learning curve") throws {
        try read(url).chart(title: title).write(to: svg)
    }
}
