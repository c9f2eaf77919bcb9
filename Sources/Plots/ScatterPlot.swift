// Scatter and parity plots. Up to a few thousand points are drawn as dots; beyond that a 2D
// histogram (heat map, log colour scale) keeps the SVG a fixed size whatever the point count —
// a parity plot of 10⁶ Hamiltonian entries stays under ~0.5 MB.
import Foundation

public struct ScatterPlot: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Dots up to `maxPoints`, a heat map above.
        case automatic(maxPoints: Int)
        case points
        /// A bins × bins 2D histogram.
        case histogram(bins: Int)
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var x: [Double]
    public var y: [Double]
    public var width = 560.0
    public var height = 540.0
    public var margins = Margins(left: 78, right: 96, top: 40, bottom: 62)
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    public var mode: Mode = .automatic(maxPoints: 4000)
    public var histogramBins = 90
    /// Draw the y = x line (parity plots).
    public var identityLine = false
    /// Lines of text in the top-left corner (e.g. "MAE 1.23 meV").
    public var annotations: [String] = []
    public var pointColor = Palette.categorical[0]
    public var pointRadius = 2.0

    public init(title: String = "", xLabel: String, yLabel: String, x: [Double], y: [Double]) {
        precondition(x.count == y.count, "scatter plot: \(x.count) x values for \(y.count) y values")
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.x = x; self.y = y
    }

    /// A parity plot: predicted against reference on equal axes with the y = x line and the MAE
    /// (in the data's unit, scaled by `maeScale` and labelled `maeUnit` — e.g. eV data, meV MAE).
    /// `mae` overrides the value computed from the points (when they are a sample of the data).
    public static func parity(reference: [Double], predicted: [Double], unit: String,
                              title: String = "", mae: Double? = nil, maeScale: Double = 1, maeUnit: String? = nil,
                              extraAnnotations: [String] = []) -> ScatterPlot {
        var plot = ScatterPlot(title: title, xLabel: "reference (\(unit))", yLabel: "predicted (\(unit))",
                               x: reference, y: predicted)
        plot.identityLine = true
        let range = dataRange(reference + predicted, pad: 0.03)
        plot.xRange = range
        plot.yRange = range
        let pairs = zip(reference, predicted).filter { $0.0.isFinite && $0.1.isFinite }
        let value = mae ?? (pairs.isEmpty ? .nan : pairs.reduce(0) { $0 + abs($1.1 - $1.0) } / Double(pairs.count))
        plot.annotations = [String(format: "MAE %.4g %@", value * maeScale, maeUnit ?? unit),
                            "N = \(reference.count)"] + extraAnnotations
        return plot
    }

    public var usesHistogram: Bool {
        switch mode {
        case .points: return false
        case .histogram: return true
        case .automatic(let maxPoints): return x.count > maxPoints
        }
    }

    public var frame: PlotFrame {
        var xr = xRange ?? dataRange(x, pad: 0.03)
        var yr = yRange ?? dataRange(y, pad: 0.03)
        if xr.upperBound <= xr.lowerBound { xr = xr.lowerBound ... xr.lowerBound + 1 }
        if yr.upperBound <= yr.lowerBound { yr = yr.lowerBound ... yr.lowerBound + 1 }
        return PlotFrame(width: width, height: height, margins: margins, xRange: xr, yRange: yr, logY: false)
    }

    /// Counts per bin, row-major [yBin][xBin] with yBin 0 at the bottom; points outside the
    /// ranges or non-finite are not counted.
    public func histogram(bins: Int) -> [[Int]] {
        let fr = frame
        var counts = [[Int]](repeating: [Int](repeating: 0, count: bins), count: bins)
        let x0 = fr.xRange.lowerBound, xs = Double(bins) / (fr.xRange.upperBound - x0)
        let y0 = fr.yRange.lowerBound, ys = Double(bins) / (fr.yRange.upperBound - y0)
        for (a, b) in zip(x, y) where a.isFinite && b.isFinite {
            let i = Int(((a - x0) * xs).rounded(.down)), j = Int(((b - y0) * ys).rounded(.down))
            // The upper edge belongs to the last bin.
            let ci = i == bins && a <= fr.xRange.upperBound ? bins - 1 : i
            let cj = j == bins && b <= fr.yRange.upperBound ? bins - 1 : j
            guard (0 ..< bins).contains(ci), (0 ..< bins).contains(cj) else { continue }
            counts[cj][ci] += 1
        }
        return counts
    }

    public func render() -> String {
        let fr = frame
        let f = SVG.f
        var s = SVG.header(width: width, height: height)
        s += SVG.clipPath(fr, id: "plot-area")
        let xs = NiceScale.step(span: fr.xRange.upperBound - fr.xRange.lowerBound)
        let ysStep = NiceScale.step(span: fr.yRange.upperBound - fr.yRange.lowerBound)
        s += SVG.axes(fr, title: title, xLabel: xLabel, yLabel: yLabel,
                      xTicks: NiceScale.ticks(fr.xRange.lowerBound, fr.xRange.upperBound).map { ($0, NiceScale.label($0, step: xs)) },
                      yTicks: NiceScale.ticks(fr.yRange.lowerBound, fr.yRange.upperBound).map { ($0, NiceScale.label($0, step: ysStep)) },
                      grid: true)
        s += "<g clip-path=\"url(#plot-area)\">\n"
        if usesHistogram {
            let bins: Int
            if case .histogram(let b) = mode { bins = max(1, b) } else { bins = max(1, histogramBins) }
            let counts = histogram(bins: bins)
            let maxCount = counts.joined().max() ?? 0
            let w = fr.plotWidth / Double(bins), h = fr.plotHeight / Double(bins)
            s += "<g class=\"heatmap\" stroke=\"none\">\n"
            for j in 0 ..< bins {
                for i in 0 ..< bins where counts[j][i] > 0 {
                    let t = maxCount > 1 ? log(Double(counts[j][i])) / log(Double(maxCount)) : 1
                    // Rectangles overlap by a hair so anti-aliasing leaves no seams.
                    s += "<rect x=\"\(f(fr.left + Double(i) * w))\" y=\"\(f(fr.bottom - Double(j + 1) * h))\" width=\"\(f(w + 0.3))\" height=\"\(f(h + 0.3))\" fill=\"\(Palette.sequential(t))\"/>\n"
                }
            }
            s += "</g>\n"
            s += "</g>\n"
            s += colorBar(fr, maxCount: maxCount)
        } else {
            s += "<g class=\"points\" fill=\"\(pointColor)\" fill-opacity=\"0.6\" stroke=\"none\">\n"
            for (a, b) in zip(x, y) where fr.drawable(a, b) {
                s += "<circle cx=\"\(f(fr.px(a)))\" cy=\"\(f(fr.py(b)))\" r=\"\(pointRadius)\"/>\n"
            }
            s += "</g>\n</g>\n"
        }
        if identityLine {
            // y = x clipped to the square where both ranges overlap.
            let lo = max(fr.xRange.lowerBound, fr.yRange.lowerBound), hi = min(fr.xRange.upperBound, fr.yRange.upperBound)
            if hi > lo {
                s += "<line class=\"identity\" x1=\"\(f(fr.px(lo)))\" y1=\"\(f(fr.py(lo)))\" x2=\"\(f(fr.px(hi)))\" y2=\"\(f(fr.py(hi)))\" stroke=\"#444\" stroke-width=\"1\" stroke-dasharray=\"6 4\"/>\n"
            }
        }
        for (n, line) in annotations.enumerated() {
            s += SVG.text(line, x: fr.left + 8, y: fr.top + 18 + 16 * Double(n), size: 12)
        }
        s += SVG.border(fr)
        s += "</svg>\n"
        return s
    }

    /// A vertical colour ramp right of the plot, labelled with counts (log scale).
    private func colorBar(_ fr: PlotFrame, maxCount: Int) -> String {
        let f = SVG.f
        let x = fr.right + 14, w = 14.0, steps = 32
        let h = fr.plotHeight / Double(steps)
        var s = "<g class=\"colorbar\">\n"
        for k in 0 ..< steps {
            let t = (Double(k) + 0.5) / Double(steps)
            s += "<rect x=\"\(f(x))\" y=\"\(f(fr.bottom - Double(k + 1) * h))\" width=\"\(f(w))\" height=\"\(f(h + 0.3))\" fill=\"\(Palette.sequential(t))\" stroke=\"none\"/>\n"
        }
        s += "<rect x=\"\(f(x))\" y=\"\(f(fr.top))\" width=\"\(f(w))\" height=\"\(f(fr.plotHeight))\" fill=\"none\" stroke=\"black\" stroke-width=\"0.6\"/>\n"
        s += SVG.text("\(maxCount)", x: x + w + 4, y: fr.top + 10, size: 11)
        s += SVG.text("1", x: x + w + 4, y: fr.bottom, size: 11)
        s += "<text transform=\"translate(\(f(x + w + 16)) \(f((fr.top + fr.bottom) / 2))) rotate(90)\" text-anchor=\"middle\" font-size=\"11\">count per bin (log)</text>\n"
        s += "</g>\n"
        return s
    }

    public func write(to url: URL) throws { try SVG.write(render(), to: url) }
}
