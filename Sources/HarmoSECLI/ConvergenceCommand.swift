// `harmose convergence`: error against wall clock of several training runs on one log–log chart
// (convergence studies, docs/accuracy.md), from their learning_curve.jsonl and timings.jsonl files.
import ArgumentParser
import Foundation
import Plots
import StageAPI

public struct ConvergenceCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "convergence",
        abstract: "Plot validation error against cumulative training time (log–log) for several runs.",
        discussion: """
        Each RUN is NAME=DIR, DIR a train or refine output folder (or a pipeline version folder): its \
        learning_curve.jsonl gives the error per epoch (--key, default val_mae_meV), its timings.jsonl \
        the epoch_seconds, summed into wall-clock time (folders written before timings.jsonl existed: \
        epoch_seconds from the learning curve). \
        A run that continues another (a refine on a stage-1 run) can start at that run's end: NAME=DIR@SECONDS.

        Example:
          harmose convergence --out conv.svg today=runs/today recipe=runs/recipe strict=runs/strict/hybrid@900
        """
    )

    @Option(help: ArgumentHelp("Output SVG.", valueName: "FILE.svg"))
    public var out: String

    @Option(help: "The learning-curve field plotted.")
    public var key = "val_mae_meV"

    @Option(help: "Chart title.")
    public var title = "Validation error vs training time"

    @Argument(help: "NAME=DIR or NAME=DIR@OFFSET_SECONDS")
    public var runs: [String]

    public init() {}

    public func run() throws {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
        var chart = LineChart(title: title, xLabel: "training wall clock (s, log scale)", yLabel: "\(key) (log scale)")
        chart.logY = true
        var lo = Double.infinity, hi = -Double.infinity
        for (n, spec) in runs.enumerated() {
            guard let eq = spec.firstIndex(of: "=") else { throw ValidationError("run \"\(spec)\": expected NAME=DIR") }
            let name = String(spec[..<eq])
            var dir = String(spec[spec.index(after: eq)...]), offset = 0.0
            if let at = dir.lastIndex(of: "@"), let o = Double(dir[dir.index(after: at)...]) { offset = o; dir = String(dir[..<at]) }
            let folder = URL(fileURLWithPath: dir)
            let curve = try LearningCurve.read(folder.appendingPathComponent("learning_curve.jsonl"))
            let timingsURL = folder.appendingPathComponent(StageContext.timingsFileName)
            let timings = FileManager.default.fileExists(atPath: timingsURL.path) ? try LearningCurve.read(timingsURL) : curve
            let epochSeconds = Dictionary(timings.epochs.map { ($0.epoch, $0.values["epoch_seconds"] ?? 0) }, uniquingKeysWith: { _, last in last })
            var t = offset
            var points: [(x: Double, y: Double)] = []
            for e in curve.epochs {
                t += epochSeconds[e.epoch] ?? 0
                guard let y = e.values[key], y > 0, t > 0 else { continue }
                points.append((log10(t), y))
                lo = min(lo, t); hi = max(hi, t)
            }
            chart.series.append(Series(name: name, points: points, color: colors[n % colors.count], markers: true))
        }
        guard lo.isFinite else { throw ValidationError("no epoch with \(key) and epoch_seconds in the given runs") }
        let first = floor(log10(lo)), last = ceil(log10(hi))
        chart.xRange = first ... max(last, first + 1)
        var ticks: [(Double, String)] = []
        var decade = first
        while decade <= last {
            for m in [1.0, 2, 5] where decade + log10(m) <= last {
                let v = m * pow(10, decade)
                ticks.append((log10(v), v >= 1 ? String(format: "%g", v) : String(format: "%.2g", v)))
            }
            decade += 1
        }
        chart.xTicks = ticks
        try chart.write(to: URL(fileURLWithPath: out))
    }
}
