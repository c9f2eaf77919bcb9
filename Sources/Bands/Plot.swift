// A small hand-written SVG line plot: enough for band structures and DOS curves, no dependencies.
import Foundation

struct SVGPlot {
    var width = 720.0, height = 540.0
    var margin = (left: 78.0, right: 24.0, top: 40.0, bottom: 62.0)
    var xRange: (Double, Double)
    var yRange: (Double, Double)
    var xLabel: String
    var yLabel: String
    var title = ""
    /// Custom x ticks (position, label); automatic numeric ticks when nil.
    var xTicks: [(Double, String)]?
    var verticalLines: [Double] = []
    var dashedHorizontal: Double?
    var dashedVertical: Double?
    var series: [[(Double, Double)]] = []
    var color = "#c0392b"

    init(xRange: (Double, Double), yRange: (Double, Double), xLabel: String, yLabel: String) {
        self.xRange = xRange; self.yRange = yRange; self.xLabel = xLabel; self.yLabel = yLabel
    }

    private var plotWidth: Double { width - margin.left - margin.right }
    private var plotHeight: Double { height - margin.top - margin.bottom }
    private func px(_ x: Double) -> Double { margin.left + (x - xRange.0) / (xRange.1 - xRange.0) * plotWidth }
    private func py(_ y: Double) -> Double { margin.top + (yRange.1 - y) / (yRange.1 - yRange.0) * plotHeight }
    private func f(_ v: Double) -> String { String(format: "%.2f", v) }

    /// Round tick positions covering `range` with about `target` intervals.
    static func niceTicks(_ range: (Double, Double), target: Int = 6) -> [Double] {
        let span = range.1 - range.0
        guard span > 0, span.isFinite else { return [range.0] }
        let raw = span / Double(target)
        let mag = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = (range.0 / step).rounded(.up) * step
        var out: [Double] = []
        while t <= range.1 + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    func render() -> String {
        let x0 = margin.left, x1 = margin.left + plotWidth, y0 = margin.top, y1 = margin.top + plotHeight
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>
        <defs><clipPath id="plot"><rect x="\(f(x0))" y="\(f(y0))" width="\(f(plotWidth))" height="\(f(plotHeight))"/></clipPath></defs>

        """
        if !title.isEmpty {
            s += "<text x=\"\(f(width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(Self.escape(title))</text>\n"
        }
        // y ticks and labels.
        for t in Self.niceTicks(yRange) {
            let y = py(t)
            s += "<line x1=\"\(f(x0 - 5))\" y1=\"\(f(y))\" x2=\"\(f(x0))\" y2=\"\(f(y))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(x0 - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(String(format: "%g", t))</text>\n"
        }
        // x ticks: labelled positions (high-symmetry points) or numbers.
        let ticks = xTicks ?? Self.niceTicks(xRange).map { ($0, String(format: "%g", $0)) }
        for (t, label) in ticks {
            let x = px(t)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(y1))\" x2=\"\(f(x))\" y2=\"\(f(y1 + 5))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(x))\" y=\"\(f(y1 + 20))\" text-anchor=\"middle\">\(Self.escape(label))</text>\n"
        }
        for v in verticalLines {
            s += "<line x1=\"\(f(px(v)))\" y1=\"\(f(y0))\" x2=\"\(f(px(v)))\" y2=\"\(f(y1))\" stroke=\"#555\" stroke-width=\"0.7\"/>\n"
        }
        s += "<g clip-path=\"url(#plot)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.3\" stroke-linejoin=\"round\">\n"
        for line in series where !line.isEmpty {
            s += "<polyline points=\"" + line.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ") + "\"/>\n"
        }
        s += "</g>\n"
        if let e = dashedHorizontal, e >= yRange.0, e <= yRange.1 {
            s += "<line x1=\"\(f(x0))\" y1=\"\(f(py(e)))\" x2=\"\(f(x1))\" y2=\"\(f(py(e)))\" stroke=\"black\" stroke-width=\"0.8\" stroke-dasharray=\"6 4\"/>\n"
            s += "<text x=\"\(f(x1 - 4))\" y=\"\(f(py(e) - 4))\" text-anchor=\"end\" font-size=\"11\">E_F</text>\n"
        }
        if let e = dashedVertical, e >= xRange.0, e <= xRange.1 {
            s += "<line x1=\"\(f(px(e)))\" y1=\"\(f(y0))\" x2=\"\(f(px(e)))\" y2=\"\(f(y1))\" stroke=\"black\" stroke-width=\"0.8\" stroke-dasharray=\"6 4\"/>\n"
            s += "<text x=\"\(f(px(e) + 4))\" y=\"\(f(y0 + 12))\" font-size=\"11\">E_F</text>\n"
        }
        s += "<rect x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"black\"/>\n"
        s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        s += "<text transform=\"translate(20 \(f((y0 + y1) / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>\n"
        s += "</svg>\n"
        return s
    }
}
